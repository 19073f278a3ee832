// Package gossip is the gateways' membership pool and the exchange of each
// cluster's state over it.
//
// The gateways of all clusters form one hashicorp/memberlist pool, bound to
// their clusters' tunnel addresses, so gossip travels inside WireGuard.
// Member names are "<cluster>/<node>". Each cluster's active gateway
// publishes a ClusterState (CIDRs, active gateway, exports) with a version
// that only grows; every gateway keeps the newest verified state of every
// other cluster (Clusters).
//
// # Authentication
//
// WireGuard proves which cluster a packet came from only at the tunnel, and
// memberlist does not say which member a message came from, so each message
// authenticates itself. Every cluster has a Curve25519 key pair (its
// WireGuard keys); every gateway of a cluster has the private key and
// everyone has every public key, from Git. Clusters A and B share a key
// that only they can compute:
//
//	K(A,B) = HKDF-SHA256(X25519(privA, pubB), info "wirespan gossip v1" ‖ 0 ‖ min(A,B) ‖ 0 ‖ max(A,B))
//
// which B computes as X25519(privB, pubA). A message from A carries, for
// each cluster B that A knows, HMAC-SHA256(K(A,B), signed part). B accepts a
// message that says it is A's state only if A is one of B's peers and the
// MAC addressed to B matches (constant-time compare). Nobody but A, or B
// itself, can produce it: a cluster C in the pool, which holds K(C,B) but not
// K(A,B), cannot speak for A. The codec (Encode, Decode) is pure and fuzzed.
// Authentication is per cluster, not per node: any gateway of A may speak
// for A, and the highest version wins.
//
// # No relaying
//
// A gateway sends only its own cluster's state: directly to every member
// when it changes and when a member joins (SendReliable, retried while the
// member stays in the pool), and as its part of memberlist's push/pull,
// which heals anything missed. It never forwards another cluster's state.
// So a receiver judges a message by its speaker alone, and a push/pull
// carries one state, not up to MaxPeers of them. Relaying would buy little:
// tunnels are a full mesh and carry the data too, so a gateway that cannot
// reach A's gateway to hear from it cannot route to A either.
//
// # Replay and staleness
//
// Versions are Unix nanoseconds (or the last version plus one), so they
// grow across restarts and failovers. A version below the highest accepted
// for that cluster is stale and dropped, even after the cluster was removed
// from the peers and added again; the same version is a duplicate (the
// normal result of push/pull). Each drop is counted by reason in
// wirespan_gossip_messages_received_total.
package gossip
