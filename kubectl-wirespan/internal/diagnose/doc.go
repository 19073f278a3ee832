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
// Checks that need a node's point of view (path-mtu, rp-filter,
// gossip-members, dns-answer, and handshake's UDP evidence) judge the
// active gateway's answer to the ProbeRequest that package kube made
// (model.Probe). Without an answer they SKIP or WARN, with why and what
// to do; they never FAIL for want of one.
package diagnose
