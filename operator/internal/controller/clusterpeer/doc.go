// Package clusterpeer holds the operator's ClusterPeer controller. It keeps
// the status of every ClusterPeer true: the self peer's discovered CIDRs and
// public key, and on every peer the conditions that come from comparing the
// peers with each other and with the cluster key.
//
//	ClusterPeers ─┐
//	Nodes ────────┤  (any change)      ┌──────────────┐   changed statuses
//	ServiceCIDRs ─┼──► one work item ──► Reconcile    ├──► Status().Update
//	key Secret ───┘    "clusterset"    │  discover    │
//	                                   │  clusterKey  │
//	                                   │  peerstatus. │
//	                                   │   Compute    │
//	                                   └──────────────┘
//
// Every event maps to the same work item because an overlap couples every
// peer to every other: a Node's new podCIDR can put a remote peer in
// conflict. The workqueue folds bursts of events into one pass.
package clusterpeer
