// Package claims decides which address ranges a cluster's claims may be
// routed: the one rule that the operator's ClusterPeer status and the
// gateway's routes both call, so the two can never disagree about what is
// accepted. It is pure: no kernel, no API server, no clock.
//
// A claim is judged in two passes:
//
//  1. On its own (Check): wider than the limit, a range never routed
//     (loopback, link-local, multicast, "this network"), a range this
//     cluster protects (its node networks, the peers' endpoints, the tunnel
//     range), or not inside the claimer's allowedCIDRs from Git. An empty
//     allowedCIDRs accepts nothing.
//  2. Against the others: overlaps are looked for only among the claims
//     that passed the first pass, and this cluster's own ranges. A claim
//     refused in the first pass is not a claim at all, so it can never
//     knock another cluster's rightful range out of routing.
package claims
