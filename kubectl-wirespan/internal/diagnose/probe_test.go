package diagnose

import (
	"slices"
	"strings"
	"testing"

	"github.com/wirespan/wirespan/kubectl-wirespan/internal/fixture"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/model"
)

// nodeChecks read the probe's answer alone; handshake judges without it.
var nodeChecks = []string{"path-mtu", "rp-filter", "gossip-members", "dns-answer"}

// TestNoProbeAnswerNeverFails: without an answer the node's checks skip or
// warn with why and what to do, and the read-only checks are unaffected.
func TestNoProbeAnswerNeverFails(t *testing.T) {
	for _, tc := range []struct {
		name   string
		probe  *model.Probe
		want   Status
		inText string // in the summary or hint
	}{
		{"not asked", nil, Skip, "--probe=false"},
		{"older release", &model.Probe{Namespace: "wirespan-system", Missing: model.ProbeUnsupported, Detail: "no kind ProbeRequest"}, Skip, "upgrade Wirespan"},
		{"forbidden", &model.Probe{Namespace: "wirespan-system", Missing: model.ProbeForbidden, Detail: "forbidden"}, Warn,
			"create, get and delete on proberequests.wirespan.io in namespace wirespan-system"},
		{"no answer in time", &model.Probe{Namespace: "wirespan-system", Request: "diagnose-x", Missing: model.ProbeTimeout, Detail: "no gateway completed"}, Warn,
			"the active gateway is down, or older"},
		{"interrupted", &model.Probe{Namespace: "wirespan-system", Request: "diagnose-x", Missing: model.ProbeFailed, Detail: "context canceled"}, Warn, "run diagnose again"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := fixture.Lab()
			for i := range set.Clusters {
				set.Clusters[i].Probe = tc.probe
			}
			for _, r := range Run(set, Options{}, nil) {
				node := slices.Contains(nodeChecks, r.Check)
				switch {
				case !node && r.Status != Pass:
					t.Errorf("%s on %s = %s (%s): a check that only reads must not change", r.Check, r.Cluster, r.Status, r.Summary)
				case node && r.Status != tc.want:
					t.Errorf("%s on %s = %s (%s), want %s", r.Check, r.Cluster, r.Status, r.Summary, tc.want)
				case node && !strings.Contains(r.Summary+" "+r.Hint, tc.inText):
					t.Errorf("%s on %s says %q, hint %q; want %q in them", r.Check, r.Cluster, r.Summary, r.Hint, tc.inText)
				case node && r.Status == Warn && len(r.Evidence) == 0:
					t.Errorf("%s on %s warns without evidence", r.Check, r.Cluster)
				}
			}
		})
	}
}

func TestGatewayErrorWarns(t *testing.T) {
	set := fixture.Lab()
	set.Clusters[0].Probe.Answer.Error = "no tunnel link: the dataplane is not set up yet"
	for _, r := range Run(set, Options{}, nodeChecks) {
		if want := map[bool]Status{true: Warn, false: Pass}[r.Cluster == "c1"]; r.Status != want {
			t.Errorf("%s on %s = %s, want %s", r.Check, r.Cluster, r.Status, want)
		}
	}
}

func TestNeedsProbe(t *testing.T) {
	if !NeedsProbe(nil) || !NeedsProbe([]string{"versions", "dns-answer"}) || NeedsProbe([]string{"key-matches", "versions"}) {
		t.Error("NeedsProbe")
	}
}
