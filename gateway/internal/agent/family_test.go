package agent

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wirespan/wirespan/gateway/internal/dataplane"
	"github.com/wirespan/wirespan/internal/golden"
)

// dualStackPeer is c1's view when c2 turns dual-stack: it claims IPv6 pod
// and Service ranges too, inside its allowedCIDRs.
func dualStackPeer(node string, mode RouteMode) Inputs {
	in := threeClusters(node, mode)
	in.Config.TunnelCIDR6 = netip.MustParsePrefix("fd77:7370:616e::/64")
	in.Peers[0].AllowedCIDRs = append(in.Peers[0].AllowedCIDRs, pfx("fd00:2::/48", "fd00:102::/108")...)
	in.Peers[0].Claims = append(in.Peers[0].Claims, pfx("fd00:2::/56", "fd00:102::/112")...)
	return in
}

// dualStackSelf is c1 turned dual-stack too, next to the dual-stack c2
// and the IPv4-only c3.
func dualStackSelf(node string, mode RouteMode) Inputs {
	in := dualStackPeer(node, mode)
	in.SelfRanges = append(in.SelfRanges, pfx("fd00:1::/56", "fd00:101::/112")...)
	return in
}

// ipv6Only is c1 with IPv6 ranges and an IPv6 node network only, next to
// the dual-stack c2 and the IPv4-only c3.
func ipv6Only(node string, mode RouteMode) Inputs {
	in := dualStackPeer(node, mode)
	in.SelfRanges = pfx("fd00:1::/56", "fd00:101::/112")
	in.Node.IP = netip.MustParseAddr(map[string]string{"c1-n0": "fd00:28:1::10", "c1-n1": "fd00:28:1::11"}[node])
	in.Gateways = []Gateway{{Node: "c1-n0", IP: netip.MustParseAddr("fd00:28:1::10")}}
	return in
}

// The regression test of issue 15: a dual-stack peer joins an IPv4-only
// clusterset and nothing changes in the kernel of any node, not even on a
// host with IPv6 turned off. (Before, its IPv6 ranges got the IPv4 tunnel
// address as source, or an IPv4 next hop on node agents; the kernel
// refused them and Apply stopped there on every sync.) Its IPv6 ranges
// are refused in the plan, with the reason, so the peer's status and the
// refused-ranges metric say so, and they are never attempted.
func TestDualStackPeerChangesNothingForIPv4(t *testing.T) {
	for _, tc := range goldenStates {
		t.Run(tc.name, func(t *testing.T) {
			k := freshNode()
			if err := k.SetSysctl("net/ipv6/conf/all/disable_ipv6", "1"); err != nil {
				t.Fatal(err)
			}
			in := dualStackPeer(tc.node, tc.mode)
			plan := Desired(in)
			if _, err := newApplier(k).Apply(plan.State); err != nil {
				t.Fatalf("apply: %v", err)
			}
			golden.Check(t, tc.name, strings.Replace(k.Dump(), "sysctl net/ipv6/conf/all/disable_ipv6=1\n", "", 1))
			c2 := plan.Peers[0]
			if len(c2.Refused) != 2 || c2.TunnelAddr6.IsValid() {
				t.Fatalf("c2 refused %v (IPv6 tunnel address %v), want its two IPv6 ranges and no IPv6 tunnel", c2.Refused, c2.TunnelAddr6)
			}
			for _, r := range c2.Refused {
				if !r.Prefix.Addr().Is6() || r.Code != ReasonFamily || !strings.Contains(r.Reason, "cluster c1 has no IPv6 pod or Service range") {
					t.Errorf("refusal %s: %s %q", r.Prefix, r.Code, r.Reason)
				}
			}
		})
	}
}

// A dual-stack cluster routes both families to a dual-stack peer and IPv4
// only to an IPv4-only one; an IPv6-only cluster routes IPv6 only, over an
// IPv6 node network. The whole kernel state is kept as golden text.
func TestGoldenKernelStateFamilies(t *testing.T) {
	for _, setup := range []struct {
		prefix string
		inputs func(string, RouteMode) Inputs
	}{{"dual", dualStackSelf}, {"ipv6", ipv6Only}} {
		for _, tc := range goldenStates {
			name := setup.prefix + "-" + tc.name
			t.Run(name, func(t *testing.T) {
				k := freshNode()
				a := newApplier(k)
				in := setup.inputs(tc.node, tc.mode)
				apply(t, a, in)
				golden.Check(t, name, k.Dump())
				if ch := apply(t, a, in); len(ch) != 0 {
					t.Errorf("second apply changed %q", ch)
				}
			})
		}
	}
}

// Each pair talks over the families both sides have: what is routed and
// refused, and which tunnel addresses each WireGuard peer carries.
func TestMixedClustersetFamilies(t *testing.T) {
	for _, tc := range []struct {
		name       string
		in         Inputs
		c2, c3     []string // routed
		c2Tunnel6  bool
		selfTunnel int // addresses on the device
	}{
		{"IPv4 self", dualStackPeer("c1-n0", RouteVXLAN), []string{"10.2.0.0/16", "10.102.0.0/16"}, []string{"10.3.0.0/16", "10.103.0.0/16"}, false, 1},
		{"dual-stack self", dualStackSelf("c1-n0", RouteVXLAN), []string{"10.2.0.0/16", "10.102.0.0/16", "fd00:2::/56", "fd00:102::/112"}, []string{"10.3.0.0/16", "10.103.0.0/16"}, true, 2},
		{"IPv6-only self", ipv6Only("c1-n0", RouteVXLAN), []string{"fd00:2::/56", "fd00:102::/112"}, nil, true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := Desired(tc.in)
			c2, c3 := plan.Peers[0], plan.Peers[1]
			if got := prefixStrings(c2.Routed); !slices.Equal(got, tc.c2) {
				t.Errorf("c2 routed %v, want %v", got, tc.c2)
			}
			if got := prefixStrings(c3.Routed); !slices.Equal(got, tc.c3) {
				t.Errorf("c3 routed %v, want %v", got, tc.c3)
			}
			if len(c2.Routed)+len(c2.Refused) != 4 || len(c3.Routed)+len(c3.Refused) != 2 {
				t.Errorf("a claim is neither routed nor refused: c2 %v / %v, c3 %v / %v", c2.Routed, c2.Refused, c3.Routed, c3.Refused)
			}
			if c2.TunnelAddr6.IsValid() != tc.c2Tunnel6 || c3.TunnelAddr6.IsValid() {
				t.Errorf("IPv6 tunnel addresses: c2 %v, c3 %v", c2.TunnelAddr6, c3.TunnelAddr6)
			}
			if n := len(plan.State.WireGuard.Addresses); n != tc.selfTunnel {
				t.Errorf("device addresses %v", plan.State.WireGuard.Addresses)
			}
			// Gossip stays on the IPv4 tunnel address, whatever the families.
			if want := TunnelAddress(tc.in.Config.TunnelCIDR, keyC1.PublicKey()); plan.GossipAddr != want {
				t.Errorf("gossip address %v, want %v", plan.GossipAddr, want)
			}
			for _, p := range plan.State.WireGuard.Peers {
				if !slices.Contains(p.AllowedIPs, netip.PrefixFrom(TunnelAddress(tc.in.Config.TunnelCIDR, p.PublicKey), 32)) {
					t.Errorf("peer %s lacks its IPv4 tunnel address (gossip): %v", p.PublicKey, p.AllowedIPs)
				}
			}
		})
	}
}

// No plan ever holds a route whose source or next hop is of another
// family than its destination, whatever the peers claim and whatever
// the families of the cluster and its node network.
func TestNoMixedFamilyRoutes(t *testing.T) {
	for _, inputs := range []func(string, RouteMode) Inputs{dualStackPeer, dualStackSelf, ipv6Only} {
		for _, node := range []string{"c1-n0", "c1-n1"} {
			for _, mode := range []RouteMode{RouteVXLAN, RouteDirect} {
				in := inputs(node, mode)
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
}

// A node agent refuses an IPv4 range when its active gateway has no IPv4
// node address: its route would need an IPv4 next hop. (IPv6 goes to the
// gateway's IPv6 node address when direct, and to a link-local next hop
// over VXLAN.)
func TestNodeAgentNeedsGatewayFamily(t *testing.T) {
	for _, mode := range []RouteMode{RouteDirect, RouteVXLAN} {
		in := dualStackSelf("c1-n1", mode)
		in.Gateways = []Gateway{{Node: "c1-n0", IP: netip.MustParseAddr("fd00:28::10")}}
		plan := Desired(in)
		for _, r := range plan.State.Routes {
			if r.Dst.Addr().Is4() {
				t.Errorf("%s: route %s, want none of IPv4", mode, r)
			}
		}
		for _, p := range plan.Peers {
			for _, r := range p.Refused {
				if r.Prefix.Addr().Is4() && !strings.Contains(r.Reason, "has no IPv4 node address") {
					t.Errorf("%s %s: refusal %s %q", mode, p.Cluster, r.Prefix, r.Reason)
				}
			}
		}
	}
}

// Without an IPv6 tunnel range a dual-stack cluster routes IPv4 only and
// says why.
func TestNoIPv6TunnelRange(t *testing.T) {
	in := dualStackSelf("c1-n0", RouteVXLAN)
	in.Config.TunnelCIDR6 = netip.Prefix{}
	plan := Desired(in)
	for _, r := range plan.State.Routes {
		if r.Dst.Addr().Is6() {
			t.Errorf("IPv6 route %s without an IPv6 tunnel range", r)
		}
	}
	if len(plan.State.Rules) != 1 || len(plan.State.WireGuard.Addresses) != 1 {
		t.Errorf("rules %v, addresses %v: want IPv4 only", plan.State.Rules, plan.State.WireGuard.Addresses)
	}
	if r := plan.Peers[0].Refused; len(r) != 2 || !strings.Contains(r[0].Reason, "--tunnel-cidr-v6") {
		t.Errorf("c2 refused %v", r)
	}
}

// A dual-stack peer that becomes IPv4-only loses its IPv6 routes and its
// IPv6 tunnel address, and nothing else changes.
func TestPeerDropsIPv6(t *testing.T) {
	k := freshNode()
	a := newApplier(k)
	in := dualStackSelf("c1-n0", RouteVXLAN)
	apply(t, a, in)
	in.Peers[0].Claims = in.Peers[0].Claims[:2]
	ch := apply(t, a, in)
	k2 := freshNode()
	apply(t, newApplier(k2), in)
	if k.Dump() != k2.Dump() {
		t.Errorf("state after the change differs from a fresh apply:\n%s--- fresh\n%s", k.Dump(), k2.Dump())
	}
	for _, c := range ch {
		if !strings.Contains(c, "fd") && !strings.Contains(c, "peer "+keyC2.PublicKey().String()[:8]) {
			t.Errorf("unrelated change %q", c)
		}
	}
}

func TestTunnelAddress6StaysInRange(t *testing.T) {
	for _, s := range []string{"fd77:7370:616e::/64", "fd00::/48", "fd00:0:0:1::/96", "fd00::ff00/120", "fd00::/8"} {
		r := netip.MustParsePrefix(s)
		seen := map[netip.Addr]bool{}
		for _, k := range []wgtypes.Key{keyC1, keyC2, keyC3} {
			a := TunnelAddress(r, k)
			if !r.Contains(a) || a == r.Addr() || seen[a] {
				t.Errorf("%s in %s: %s", k, r, a)
			}
			seen[a] = true
		}
	}
	// The IPv4 derivation is what it always was (gossip finds peers by it).
	if got := TunnelAddress(netip.MustParsePrefix("100.96.0.0/16"), keyC1.PublicKey()).String(); got != "100.96.134.77" {
		t.Errorf("IPv4 tunnel address of c1 is %s, was 100.96.134.77", got)
	}
}

func TestVXLANLinkLocal(t *testing.T) {
	gw := netip.MustParseAddr("172.28.1.10")
	mac := MAC(gw) // fa:7a:70:30:00:3c
	if got, want := VXLANLinkLocal(gw).String(), "fe80::f87a:70ff:fe30:3c"; got != want || mac.String() != "fa:7a:70:30:00:3c" {
		t.Errorf("link-local of %s (%s) is %s, want %s", gw, mac, got, want)
	}
}

// The plan's IPv6 neighbor is the gateway's VXLAN MAC, under the
// link-local address the routes name.
func TestNodeAgentIPv6NextHop(t *testing.T) {
	plan := Desired(dualStackSelf("c1-n1", RouteVXLAN))
	ll := VXLANLinkLocal(netip.MustParseAddr("172.28.1.10"))
	if !slices.ContainsFunc(plan.State.Neighbors, func(n dataplane.Neighbor) bool { return n.IP == ll }) {
		t.Errorf("no neighbor entry for %s: %v", ll, plan.State.Neighbors)
	}
	for _, r := range plan.State.Routes {
		if r.Dst.Addr().Is6() && (r.Via != ll || r.Dev != "wirespan-vx") {
			t.Errorf("IPv6 route %s", r)
		}
	}
}

// A node picks the first endpoint of its own node network's family, else
// the first.
func TestEndpointFor(t *testing.T) {
	v4, v6 := netip.MustParseAddrPort("172.28.2.10:51820"), netip.MustParseAddrPort("[fd00:28:2::10]:51820")
	for _, tc := range []struct {
		eps  []netip.AddrPort
		node string
		want netip.AddrPort
	}{
		{[]netip.AddrPort{v4, v6}, "172.28.1.10", v4},
		{[]netip.AddrPort{v4, v6}, "fd00:28:1::10", v6},
		{[]netip.AddrPort{v6, v4}, "172.28.1.10", v4},
		{[]netip.AddrPort{v6}, "172.28.1.10", v6},
		{nil, "172.28.1.10", netip.AddrPort{}},
	} {
		if got := endpointFor(tc.eps, netip.MustParseAddr(tc.node)); got != tc.want {
			t.Errorf("endpointFor(%v, %s) = %v, want %v", tc.eps, tc.node, got, tc.want)
		}
	}
}

// A claim over the IPv6 tunnel range is refused like one over the IPv4
// range: it would capture other clusters' IPv6 tunnel addresses.
func TestClaimOverIPv6TunnelRangeIsRefused(t *testing.T) {
	in := dualStackSelf("c1-n0", RouteVXLAN)
	in.Peers[0].AllowedCIDRs = append(in.Peers[0].AllowedCIDRs, pfx("fd77:7370:616e::/48")...)
	in.Peers[0].Claims = append(in.Peers[0].Claims, pfx("fd77:7370:616e::/56")...)
	c2 := Desired(in).Peers[0]
	if slices.Contains(c2.Routed, netip.MustParsePrefix("fd77:7370:616e::/56")) {
		t.Fatalf("a claim over the IPv6 tunnel range is routed: %v", c2.Routed)
	}
	if !slices.ContainsFunc(c2.Refused, func(r Refusal) bool { return strings.Contains(r.Reason, "--tunnel-cidr-v6") }) {
		t.Errorf("refusals %v do not name --tunnel-cidr-v6", c2.Refused)
	}
}
