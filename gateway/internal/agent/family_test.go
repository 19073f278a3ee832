package agent

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/wirespan/wirespan/internal/golden"
)

// dualStackPeer is c1's view when c2 turns dual-stack: it claims IPv6 pod
// and Service ranges too, inside its allowedCIDRs.
func dualStackPeer(node string, mode RouteMode) Inputs {
	in := threeClusters(node, mode)
	in.Peers[0].AllowedCIDRs = append(in.Peers[0].AllowedCIDRs, pfx("fd00:2::/48", "fd00:102::/108")...)
	in.Peers[0].Claims = append(in.Peers[0].Claims, pfx("fd00:2::/56", "fd00:102::/112")...)
	return in
}

// The regression test of issue 15: a dual-stack peer joins an IPv4-only
// clusterset and nothing changes in the kernel of any node. (Before, its
// IPv6 ranges got the IPv4 tunnel address as source, or an IPv4 next hop
// on node agents; the kernel refused them and Apply stopped there on every
// sync.) Its IPv6 ranges are refused in the plan, with the reason, so the
// peer's status and the refused-ranges metric say so.
func TestDualStackPeerChangesNothingForIPv4(t *testing.T) {
	for _, tc := range goldenStates {
		t.Run(tc.name, func(t *testing.T) {
			k := freshNode()
			in := dualStackPeer(tc.node, tc.mode)
			plan := Desired(in)
			if _, err := newApplier(k).Apply(plan.State); err != nil {
				t.Fatalf("apply: %v", err)
			}
			golden.Check(t, tc.name, k.Dump())
			c2 := plan.Peers[0]
			if len(c2.Refused) != 2 {
				t.Fatalf("c2 refused %v, want its two IPv6 ranges", c2.Refused)
			}
			for _, r := range c2.Refused {
				if !r.Prefix.Addr().Is6() || !strings.Contains(r.Reason, "IPv6 is not routed yet") {
					t.Errorf("refusal %s: %q", r.Prefix, r.Reason)
				}
			}
		})
	}
}

// No plan ever holds a route whose source or next hop is of another
// family than its destination, whatever the peers claim.
func TestNoMixedFamilyRoutes(t *testing.T) {
	for _, node := range []string{"c1-n0", "c1-n1"} {
		for _, mode := range []RouteMode{RouteVXLAN, RouteDirect} {
			in := dualStackPeer(node, mode)
			in.Peers[1].Claims = append(in.Peers[1].Claims, pfx("fd00:3::/56")...)
			for _, r := range Desired(in).State.Routes {
				is6 := r.Dst.Addr().Is6()
				if (r.Src.IsValid() && r.Src.Is6() != is6) || (r.Via.IsValid() && r.Via.Is6() != is6) {
					t.Errorf("%s %s: mixed-family route %s", node, mode, r)
				}
			}
		}
	}
}

// A node agent refuses a range of a family its active gateway has no node
// address of: its route would need a next hop of that family. (Gateways
// are found by IPv4 InternalIP today; an IPv6 node network needs this.)
func TestNodeAgentNeedsGatewayFamily(t *testing.T) {
	in := threeClusters("c1-n1", RouteDirect)
	in.Gateways = []Gateway{{Node: "c1-n0", IP: netip.MustParseAddr("fd00:28::10")}}
	plan := Desired(in)
	if len(plan.State.Routes) != 0 {
		t.Errorf("routes %v, want none", plan.State.Routes)
	}
	for _, p := range plan.Peers {
		if len(p.Routed) != 0 || len(p.Refused) != 2 || !strings.Contains(p.Refused[0].Reason, "has no IPv4 node address") {
			t.Errorf("%s: routed %v, refused %v", p.Cluster, p.Routed, p.Refused)
		}
	}
}
