// Package gossip is the exchange of each cluster's state and exports
// between the active gateways of all clusters, over their tunnel
// addresses, so gossip travels inside WireGuard.
//
// Each cluster's active gateway publishes a ClusterState (CIDRs, active
// gateway) and its exports; every gateway keeps the newest verified state
// and exports of every other cluster (Clusters, RemoteExports), and knows
// which clusters are present (Members) from their authenticated messages
// alone.
//
// # Authentication
//
// Every cluster has a Curve25519 key pair (its WireGuard keys); every
// gateway of a cluster has the private key and everyone has every public
// key, from Git. Clusters A and B share a key that only they can compute:
//
//	K(A,B) = HKDF-SHA256(X25519(privA, pubB), info "wirespan gossip v1" ‖ 0 ‖ min(A,B) ‖ 0 ‖ max(A,B))
//
// which B computes as X25519(privB, pubA). A message from A carries, for
// each cluster B that A knows, a MAC with K(A,B) over its header, B's ID,
// B's epoch as A knows it, and the SHA-256 of its body (envelope.go).
// Nobody but A, or B itself, can produce it: a cluster C, which holds
// K(C,B) but not K(A,B), cannot speak for A. Authentication is per
// cluster, not per node: any gateway of A may speak for A.
//
// # Checked before decoded
//
// A receiver reads the header and the recipient list first, and refuses
// without hashing what is too large for its kind, from no peer, not
// addressed to it, from a retired epoch, or unproven (below); hashes the
// body and checks the MAC outside the lock; decodes the body only then,
// outside the lock, within its limits; and merges under the lock
// (receive.go). Before any of that, the transport (transport.go) takes
// packets and streams only from the peers' tunnel addresses, only
// Wirespan's messages and pings, and a bounded number of bounded streams.
//
// # Epochs, echoes and versions
//
// Each gateway process draws a random epoch. A message proves itself
// fresh by echoing the receiver's current epoch; the receiver then knows
// the sender's epoch, and retires the one it replaces (session.go).
// Versions count changes within an epoch; a new epoch (a restart, a
// failover) supersedes the old one's versions. No clock is involved, and
// nothing recorded before a receiver started can be replayed to it.
//
// # memberlist, as a transport
//
// hashicorp/memberlist carries the messages and pings. Its membership is
// never used (every other node is refused as a member, and membership
// messages do not pass the transport), because any host that reaches the
// port could rewrite it; its push/pull is off, because it cannot say whom
// it exchanges with.
//
// # No relaying
//
// A gateway sends only its own cluster's messages, directly: heartbeats to
// every peer every ProbeInterval, its state and export changes to every
// present peer when they change, its whole export set to a peer that
// arrives, restarts or asks, and every PushPullInterval to one present
// peer. So a receiver judges a message by its speaker alone.
package gossip
