// Package peerstatus computes, with no I/O, the status the operator wants on
// every ClusterPeer: the self peer's role, key and discovered CIDRs, and on
// every peer the conditions that follow from comparing peers with each other
// (overlapping ranges, claims outside allowedCIDRs) and with the cluster key.
//
// The controller feeds it what it read from the API and writes back only the
// statuses that differ from what is stored. Fields other writers own (the
// gateways' Connected condition, tunnel figures, gateways, a remote peer's
// learned CIDRs) are carried over untouched.
package peerstatus
