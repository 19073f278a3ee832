package graph

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/wirespan/wirespan/internal/golden"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/fixture"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/model"
)

func TestDOT(t *testing.T) {
	oneSide := fixture.Lab()
	oneSide.Clusters = oneSide.Clusters[:1]
	// As today's gateways leave status.gateways empty.
	unreported := fixture.Lab()
	for i := range unreported.Clusters {
		for j := range unreported.Clusters[i].Peers {
			unreported.Clusters[i].Peers[j].Status.Gateways = nil
		}
	}
	for _, tc := range []struct {
		name string
		set  model.Clusterset
	}{
		{"lab.dot", fixture.Lab()},
		{"troubled.dot", fixture.Troubled()},
		{"one-context.dot", oneSide},
		{"no-gateways-reported.dot", unreported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := DOT(tc.set)
			golden.Check(t, tc.name, got)
			renders(t, got)
		})
	}
}

// renders checks Graphviz itself accepts the text, when it is installed.
func renders(t *testing.T, dot string) {
	t.Helper()
	bin, err := exec.LookPath("dot")
	if err != nil {
		t.Log("Graphviz's dot is not installed (apt-get install graphviz): the DOT text is checked against the golden file only")
		return
	}
	cmd := exec.Command(bin, "-Tsvg")
	cmd.Stdin = strings.NewReader(dot)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "<svg") {
		t.Errorf("dot -Tsvg refused the graph: %v\n%s", err, out)
	}
}

func TestTroubledEdgeIsHalfUpAndRefusalIsRed(t *testing.T) {
	got := DOT(fixture.Troubled())
	if !strings.Contains(got, `"c1/c1-n0" -> "c3/c3-n0" [label="c1→c3: down (NoHandshake)\nc3→c1: up`) ||
		!strings.Contains(got, "color=orange") {
		t.Errorf("the c1-c3 tunnel, down from c1's side only, should be orange with both sides' words:\n%s", got)
	}
	if !strings.Contains(got, `[label="10.9.0.0/16\nrefused by c1: OutsideAllowedCIDRs", color=red`) {
		t.Errorf("c3's refused claim should be a red note:\n%s", got)
	}
}

func TestQuote(t *testing.T) {
	if got := quote("a\"b\\c\nd"); got != `"a\"b\\c\nd"` {
		t.Errorf("quote = %s", got)
	}
}
