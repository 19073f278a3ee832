package status

import (
	"bytes"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/internal/golden"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/fixture"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/model"
)

// troubled is the lab as c1 sees it when c3 claims a range Git does not
// allow and its tunnel has not come up, and c2's imports cannot be read.
func troubled() model.Clusterset {
	set := fixture.Lab()
	c1 := &set.Clusters[0]
	c3 := c1.Peer("c3")
	c3.Status.PodCIDRs = append(c3.Status.PodCIDRs, "10.9.0.0/16")
	c3.Status.Tunnel = nil
	c3.Status.Conditions = []metav1.Condition{
		{Type: wirespanv1alpha1.ConditionConnected, Status: metav1.ConditionFalse, Reason: wirespanv1alpha1.ReasonNoHandshake,
			Message: "no handshake yet:\n  c3 has no endpoint and has not dialled in"},
		{Type: wirespanv1alpha1.ConditionCIDRsAccepted, Status: metav1.ConditionFalse, Reason: wirespanv1alpha1.ReasonOutsideAllowedCIDRs,
			Message: "10.9.0.0/16 is outside spec.allowedCIDRs"},
		{Type: wirespanv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: wirespanv1alpha1.ReasonNotReady},
	}
	set.Clusters[1].Errors = map[string]string{model.ReadImports: `serviceimports.multicluster.x-k8s.io is forbidden: User "alice" cannot list resource "serviceimports"`}
	set.Clusters[1].Imports = nil
	return set
}

func TestWrite(t *testing.T) {
	for _, tc := range []struct {
		name, format string
		set          model.Clusterset
	}{
		{"lab.txt", FormatTable, fixture.Lab()},
		{"lab-wide.txt", FormatWide, fixture.Lab()},
		{"lab.json", FormatJSON, fixture.Lab()},
		{"lab.yaml", FormatYAML, fixture.Lab()},
		{"troubled.txt", FormatTable, troubled()},
		{"troubled-wide.txt", FormatWide, troubled()},
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
	r := Build(troubled())
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
