package status

import (
	"bytes"
	"testing"

	"github.com/wirespan/wirespan/internal/golden"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/fixture"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/model"
)

func TestWrite(t *testing.T) {
	for _, tc := range []struct {
		name, format string
		set          model.Clusterset
	}{
		{"lab.txt", FormatTable, fixture.Lab()},
		{"lab-wide.txt", FormatWide, fixture.Lab()},
		{"lab.json", FormatJSON, fixture.Lab()},
		{"lab.yaml", FormatYAML, fixture.Lab()},
		{"troubled.txt", FormatTable, fixture.Troubled()},
		{"troubled-wide.txt", FormatWide, fixture.Troubled()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := Write(&out, Build(tc.set), tc.format); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, tc.name, out.String())
		})
	}
}

func TestRefusalsAreTheOperatorsDecision(t *testing.T) {
	r := Build(fixture.Troubled())
	var c3 Peer
	for _, p := range r.Clusters[0].Peers {
		if p.Name == "c3" {
			c3 = p
		}
	}
	if len(c3.Refused) != 1 || c3.Refused[0].Range != "10.9.0.0/16" || c3.Refused[0].Reason != "OutsideAllowedCIDRs" {
		t.Errorf("refused = %+v, want 10.9.0.0/16 OutsideAllowedCIDRs", c3.Refused)
	}
	if want := []string{"10.3.0.0/16", "10.103.0.0/16"}; len(c3.Routed) != 2 || c3.Routed[0] != want[0] || c3.Routed[1] != want[1] {
		t.Errorf("routed = %v, want %v", c3.Routed, want)
	}
	if c3.Reason != "CIDRsAccepted/OutsideAllowedCIDRs" {
		t.Errorf("reason = %q: the most specific unhealthy condition should be named", c3.Reason)
	}
}

func TestUnknownFormat(t *testing.T) {
	if err := Write(&bytes.Buffer{}, Report{}, "xml"); err == nil {
		t.Error("xml accepted")
	}
}
