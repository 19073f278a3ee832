package app

import (
	"testing"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/gateway/internal/agent"
)

// TestProbesAnswerOnlyTheirOwn: a request naming a node is that node's,
// whatever its role; one naming none is the active gateway's alone; a
// node that has not synced yet answers nothing.
func TestProbesAnswerOnlyTheirOwn(t *testing.T) {
	req := func(node string) *wirespanv1alpha1.ProbeRequest {
		return &wirespanv1alpha1.ProbeRequest{Spec: wirespanv1alpha1.ProbeRequestSpec{NodeName: node}}
	}
	for _, c := range []struct {
		planRole, node, want string
	}{
		{agent.RoleGateway, "", wirespanv1alpha1.ProbeRoleGateway},
		{agent.RoleGateway, "n0", wirespanv1alpha1.ProbeRoleGateway},
		{agent.RoleGateway, "n1", ""},
		{agent.RoleNode, "", ""},
		{agent.RoleNode, "n0", wirespanv1alpha1.ProbeRoleNodeAgent},
		{agent.RoleNode, "n1", ""},
	} {
		p := &probes{opts: Options{NodeName: "n0"}}
		if got := p.role(req(c.node)); got != "" {
			t.Errorf("before any sync, request for %q: role %q, want none", c.node, got)
		}
		p.learn(agent.Plan{Role: c.planRole}, nil, nil)
		if got := p.role(req(c.node)); got != c.want {
			t.Errorf("%s, request for %q: role %q, want %q", c.planRole, c.node, got, c.want)
		}
	}
	var none *probes
	none.learn(agent.Plan{}, nil, nil) // a syncer without probes (tests) has nothing to tell
}
