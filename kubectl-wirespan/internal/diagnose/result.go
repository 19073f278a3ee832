package diagnose

import (
	"slices"

	"github.com/wirespan/wirespan/kubectl-wirespan/internal/model"
)

// Status is a check's verdict on one cluster.
type Status string

// The verdicts, worst last.
const (
	Pass Status = "PASS"
	Skip Status = "SKIP" // could not judge: not enough contexts, nothing to check
	Warn Status = "WARN"
	Fail Status = "FAIL"
)

// Result is one check on one cluster (or on the clusterset: Cluster "*").
type Result struct {
	Check   string `json:"check"`
	Cluster string `json:"cluster"`
	Status  Status `json:"status"`
	Summary string `json:"summary"`
	// Evidence is what the verdict rests on, each line naming the context
	// and object it was read from.
	Evidence []string `json:"evidence,omitempty"`
	// Hint says what to do; empty on PASS.
	Hint string `json:"hint,omitempty"`
}

// Check is one named check.
type Check struct {
	Name string
	// Doc says what it checks, for --help and docs/cli.md.
	Doc string
	run func(*input) []Result
}

// Options tune the checks.
type Options struct {
	// Zone is the clusterset DNS zone the CoreDNS block must forward.
	Zone string
}

// input is what every check reads: the clusterset and, for each cluster,
// the status report and its self name.
type input struct {
	set  model.Clusterset
	opts Options
}

// Checks are every check, in the order they run and print: each builds on
// what the ones before it establish.
var Checks = []Check{
	{"self-clusterpeer", "every cluster has its own ClusterPeer, with role Self written by its operator", checkSelf},
	{"key-matches", "spec.publicKey in Git is the key the cluster's gateways use, in every cluster that was read", checkKeys},
	{"allowed-cidrs", "spec.allowedCIDRs cover the ranges each cluster discovered, and no claim is refused for another reason", checkAllowed},
	{"overlaps", "no range of one cluster overlaps a range of another", checkOverlaps},
	{"handshake", "every tunnel had a WireGuard handshake in the last 3 minutes (and, from the node, whether the peer's endpoint answers on UDP)", checkHandshakes},
	// path-mtu, rp-filter, gossip-members and dns-answer judge what the
	// active gateway saw from its node, answering a ProbeRequest.
	{"path-mtu", "every tunnel carries packets of its MTU, and its full packets fit the underlay path (don't-fragment probes from the node)", checkPathMTU},
	{"rp-filter", "the kernel's reverse-path filter accepts packets from the peers' ranges on Wirespan's links (from the node)", checkRPFilter},
	{"gossip-members", "the active gateway hears authenticated gossip from every peer with a key (from the node)", checkGossip},
	{"coredns-forward", "the CoreDNS Corefile forwards the clusterset zone to Wirespan's DNS Service", checkCoreDNS},
	{"dns-endpoint", "Wirespan's DNS Service has a ready endpoint: a gateway's DNS server", checkDNSEndpoint},
	{"exports-imported", "every valid ServiceExport is imported, with an address, in every cluster that was read", checkImported},
	{"dns-answer", "the cluster DNS answers each imported service's clusterset name with its clusterset IPs, as a pod asks (from the node)", checkDNSAnswer},
	{"export-conflicts", "no ServiceExport reports a conflict with another cluster's export", checkConflicts},
	{"git-drift", "every context holds the same ClusterPeer folder (names and specs)", checkDrift},
	{"versions", "every cluster's operator and active gateway report the same version (their images where they report none)", checkVersions},
}

// Names lists the checks' names.
func Names() []string {
	out := make([]string, 0, len(Checks))
	for _, c := range Checks {
		out = append(out, c.Name)
	}
	return out
}

// Run runs the named checks (all when only is empty), in Checks' order.
func Run(set model.Clusterset, opts Options, only []string) []Result {
	if opts.Zone == "" {
		opts.Zone = "clusterset.local"
	}
	in := &input{set: set, opts: opts}
	var out []Result
	for _, c := range Checks {
		if len(only) > 0 && !slices.Contains(only, c.Name) {
			continue
		}
		for _, r := range c.run(in) {
			r.Check = c.Name
			out = append(out, r)
		}
	}
	return out
}

// Worst returns the worst status among the results (Pass when none).
func Worst(results []Result) Status {
	rank := map[Status]int{Pass: 0, Skip: 1, Warn: 2, Fail: 3}
	worst := Pass
	for _, r := range results {
		if rank[r.Status] > rank[worst] {
			worst = r.Status
		}
	}
	return worst
}

// unreadable returns a WARN result when what a check needs could not be
// read from the cluster, or nil.
func unreadable(c *model.Cluster, what ...string) *Result {
	for _, w := range what {
		if msg, ok := c.Errors[w]; ok {
			return &Result{Cluster: c.Name(), Status: Warn, Summary: "cannot read " + w + " through context " + c.Context,
				Evidence: []string{msg}, Hint: "check that it exists where the flags say, that the kubeconfig user may read it, and that the API server answers"}
		}
	}
	return nil
}
