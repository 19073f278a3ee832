// Package diagnose runs kubectl-wirespan's named checks on what was read
// from one or more clusters. Each check gives, per cluster, PASS, WARN,
// FAIL or SKIP with the evidence it judged on and what to do. The package
// is pure: it sees only model.Clusterset, so every check is table-tested
// on the fixture clusterset with one thing broken.
//
// A check judges only its own subject. When the cause of what it sees is
// another check's subject (no handshake because the key in Git is wrong),
// it says WARN and names that check, so a broken thing fails exactly one
// check and the report points at the cause, not at every consequence.
//
// Checks that need a node (UDP reachability of a peer's endpoint, the path
// MTU through a tunnel, reverse-path filtering, gossip membership) are not
// here: they need the gateway to answer a request through the API, which
// is not built yet (docs/cli.md).
package diagnose
