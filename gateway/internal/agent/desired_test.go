package agent

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wirespan/wirespan/gateway/internal/dataplane"
	"github.com/wirespan/wirespan/gateway/internal/dataplane/fake"
	"github.com/wirespan/wirespan/internal/golden"
)

// Fixed keys, so golden files are stable.
var (
	keyC1 = mustKey("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAEE=")
	keyC2 = mustKey("AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAkI=")
	keyC3 = mustKey("AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA0M=")
)

func mustKey(s string) wgtypes.Key {
	k, err := wgtypes.ParseKey(s)
	if err != nil {
		panic(err)
	}
	return k
}

func pfx(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(s))
	for _, v := range s {
		out = append(out, netip.MustParsePrefix(v))
	}
	return out
}

func testConfig(mode RouteMode) Config {
	return Config{
		WireGuardName: "wirespan0", ListenPort: 51820, TunnelCIDR: netip.MustParsePrefix("100.96.0.0/16"),
		Table: 51820, RulePriority: 100, FirewallMark: 0xca, Mode: mode,
		VXLANName: "wirespan-vx", VXLANVNI: 5182, VXLANPort: 4790, Keepalive: 25 * time.Second,
	}
}

// threeClusters is c1's view: c2 with an endpoint, c3 behind NAT.
func threeClusters(node string, mode RouteMode) Inputs {
	priv := keyC1
	return Inputs{
		Config:  testConfig(mode),
		Cluster: "c1",
		Node:    Node{Name: node, IP: netip.MustParseAddr(map[string]string{"c1-n0": "172.28.1.10", "c1-n1": "172.28.1.11"}[node]), Underlay: "eth0", UnderlayMTU: 1500},
		Gateways: []Gateway{
			{Node: "c1-n0", IP: netip.MustParseAddr("172.28.1.10")},
		},
		Active:          "c1-n0",
		PrivateKey:      &priv,
		SelfRanges:      pfx("10.1.0.0/16", "10.101.0.0/16"),
		SelfHasEndpoint: true,
		Peers: []Peer{
			{Cluster: "c2", PublicKey: keyC2.PublicKey().String(), Endpoints: []netip.AddrPort{netip.MustParseAddrPort("172.28.2.10:51820")},
				AllowedCIDRs: pfx("10.2.0.0/16", "10.102.0.0/16"), Claims: pfx("10.2.0.0/16", "10.102.0.0/16")},
			{Cluster: "c3", PublicKey: keyC3.PublicKey().String(), AllowedCIDRs: pfx("10.3.0.0/16", "10.103.0.0/16"),
				Claims: pfx("10.3.0.0/16", "10.103.0.0/16")},
		},
	}
}

func newApplier(k *fake.Kernel) *dataplane.Applier {
	return &dataplane.Applier{Kernel: k, WireGuardName: "wirespan0", VXLANName: "wirespan-vx"}
}

func apply(t *testing.T, a *dataplane.Applier, in Inputs) []string {
	t.Helper()
	ch, err := a.Apply(Desired(in).State)
	if err != nil {
		t.Fatalf("apply: %v (changes so far: %q)", err, ch)
	}
	return ch
}

// goldenStates are the nodes and modes whose whole kernel state is kept
// in testdata, by file name.
var goldenStates = []struct {
	name, node string
	mode       RouteMode
}{
	{"gateway-vxlan.txt", "c1-n0", RouteVXLAN},
	{"gateway-direct.txt", "c1-n0", RouteDirect},
	{"node-vxlan.txt", "c1-n1", RouteVXLAN},
	{"node-direct.txt", "c1-n1", RouteDirect},
}

// freshNode is an empty kernel with the node network's link.
func freshNode() *fake.Kernel {
	k := fake.New()
	k.AddLink(dataplane.Link{Name: "eth0", Kind: "veth", MTU: 1500, Up: true})
	return k
}

func TestGoldenKernelState(t *testing.T) {
	for _, tc := range goldenStates {
		t.Run(tc.name, func(t *testing.T) {
			k := freshNode()
			apply(t, newApplier(k), threeClusters(tc.node, tc.mode))
			golden.Check(t, tc.name, k.Dump())
		})
	}
}

func TestSecondApplyChangesNothing(t *testing.T) {
	for _, node := range []string{"c1-n0", "c1-n1"} {
		k := freshNode()
		a := newApplier(k)
		in := threeClusters(node, RouteVXLAN)
		apply(t, a, in)
		before, calls := k.Dump(), k.ChangeCount()
		if ch := apply(t, a, in); len(ch) != 0 {
			t.Errorf("%s: second apply changed %q", node, ch)
		}
		if k.ChangeCount() != calls || k.Dump() != before {
			t.Errorf("%s: second apply made changing calls", node)
		}
	}
}

// A cluster key that is not clamped yet (any 32 random bytes are an
// X25519 key; crypto/ecdh makes such keys) is stored clamped by
// WireGuard, and must not look changed on the next apply. It did: the
// gateway set its private key again on every resync.
func TestUnclampedKeyIsSetOnce(t *testing.T) {
	unclamped := mustKey("BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHB/8=")
	if dataplane.StoredKey(unclamped) == unclamped {
		t.Fatal("the test key is already clamped")
	}
	k := freshNode()
	a := newApplier(k)
	in := threeClusters("c1-n0", RouteVXLAN)
	in.PrivateKey = &unclamped
	apply(t, a, in)
	if ch := apply(t, a, in); len(ch) != 0 {
		t.Errorf("second apply changed %q", ch)
	}
}

// A restarted gateway finds the userspace device's link, addresses and
// routes as it left them, attaches a new device and configures its peers;
// nothing else in the kernel changes, and no route is ever deleted.
func TestRestartChangesNothingButTheDevice(t *testing.T) {
	k := freshNode()
	in := threeClusters("c1-n0", RouteVXLAN)
	apply(t, newApplier(k), in)
	before := k.Dump()
	k.StopDevices()
	k.Calls = map[string]int{}
	ch := apply(t, newApplier(k), in)
	if k.Dump() != before {
		t.Errorf("state after restart differs:\n--- before\n%s--- after\n%s", before, k.Dump())
	}
	for method := range k.Calls {
		if method != "CreateWireGuard" && method != "ConfigureDevice" {
			t.Errorf("restart called %s (changes %q)", method, ch)
		}
	}
}

// Peers change one by one: a new claim of one peer touches only that peer.
func TestPeersUpdatedOneByOne(t *testing.T) {
	k := freshNode()
	in := threeClusters("c1-n0", RouteVXLAN)
	a := newApplier(k)
	apply(t, a, in)
	in.Peers[1].AllowedCIDRs = append(in.Peers[1].AllowedCIDRs, netip.MustParsePrefix("10.4.0.0/16"))
	in.Peers[1].Claims = append(in.Peers[1].Claims, netip.MustParsePrefix("10.4.0.0/16"))
	ch := apply(t, a, in)
	tunnelC3 := TunnelAddress(in.Config.TunnelCIDR, keyC3.PublicKey())
	self := TunnelAddress(in.Config.TunnelCIDR, keyC1.PublicKey())
	want := []string{
		"wireguard wirespan0: peer " + keyC3.PublicKey().String()[:8] + ": allowed-ips 10.3.0.0/16,10.4.0.0/16,10.103.0.0/16," + tunnelC3.String() + "/32",
		"replace route 10.4.0.0/16 dev wirespan0 src " + self.String() + " table 51820",
	}
	if !slices.Equal(ch, want) {
		t.Errorf("changes = %q\nwant     %q", ch, want)
	}
}

// Pruning removes only what Wirespan owns: a foreign route in the same
// table survives, and so does anything not named by the Applier.
func TestTeardownRemovesOnlyOwnedState(t *testing.T) {
	k := freshNode()
	foreign := dataplane.Route{Dst: netip.MustParsePrefix("192.168.50.0/24"), Dev: "eth0"}
	k.AddForeignRoute(51820, 4, foreign)
	a := newApplier(k)
	apply(t, a, threeClusters("c1-n0", RouteVXLAN))
	if _, err := a.Apply(dataplane.State{Table: 51820}); err != nil {
		t.Fatal(err)
	}
	got := k.Dump()
	for _, gone := range []string{"link wirespan0", "link wirespan-vx", "wireguard ", "proto 201", "rule ", "nft ", "neighbor "} {
		if strings.Contains(got, gone) {
			t.Errorf("teardown left %q:\n%s", gone, got)
		}
	}
	if !strings.Contains(got, "route table 51820 192.168.50.0/24 dev eth0 proto 4") {
		t.Errorf("teardown removed a foreign route:\n%s", got)
	}
}

// A change the kernel refuses holds back nothing else: the rest is
// applied, the refusal names the object, and the next apply finishes.
func TestApplyResumesAfterError(t *testing.T) {
	k := freshNode()
	k.FailOn["ReplaceRoute"] = os.ErrPermission
	a := newApplier(k)
	in := threeClusters("c1-n0", RouteVXLAN)
	_, err := a.Apply(Desired(in).State)
	var ae *dataplane.ApplyError
	if !errors.As(err, &ae) || len(ae.Refused) != 1 || ae.Refused[0].Kind != dataplane.KindRoute || !errors.Is(err, os.ErrPermission) {
		t.Fatalf("error from one failing route: %v, want an ApplyError naming that route", err)
	}
	routes := strings.Count(k.Dump(), "proto 201\n") - 1 // the rule's line says proto 201 too
	if want := len(Desired(in).State.Routes) - 1; routes != want {
		t.Errorf("%d routes installed, want all but the refused one (%d):\n%s", routes, want, k.Dump())
	}
	for _, line := range []string{"rule priority 100 not fwmark 0xca table 51820", "nft wirespan mss clamp on [wirespan0]"} {
		if !strings.Contains(k.Dump(), line) {
			t.Errorf("%q missing after a refused route", line)
		}
	}
	apply(t, a, in)
	if ch := apply(t, a, in); len(ch) != 0 {
		t.Errorf("third apply changed %q", ch)
	}
}

func TestPeerPlans(t *testing.T) {
	in := threeClusters("c1-n0", RouteVXLAN)
	in.Peers[0].Claims = pfx("10.2.0.0/16", "10.102.0.0/16", "10.200.0.0/16") // one outside allowedCIDRs
	in.Peers[1].AllowedCIDRs = pfx("10.3.0.0/16", "10.1.0.0/16")
	in.Peers[1].Claims = pfx("10.3.0.0/16", "10.1.128.0/17")                                                       // one allowed, but overlaps c1's own range
	in.Peers = append(in.Peers, Peer{Cluster: "c4", AllowedCIDRs: pfx("10.4.0.0/16"), Claims: pfx("10.4.0.0/16")}) // no key
	in.Peers = append(in.Peers, Peer{Cluster: "c5", PublicKey: "bm90IGEga2V5", AllowedCIDRs: pfx("10.5.0.0/16"), Claims: pfx("10.5.0.0/16")})
	plan := Desired(in)
	byName := map[string]PeerPlan{}
	for _, p := range plan.Peers {
		byName[p.Cluster] = p
	}
	check := func(cluster string, routed []string, refused map[string]string, problem string) {
		t.Helper()
		p := byName[cluster]
		if got := prefixStrings(p.Routed); !slices.Equal(got, routed) {
			t.Errorf("%s routed %v, want %v", cluster, got, routed)
		}
		got := map[string]string{}
		for _, r := range p.Refused {
			got[r.Prefix.String()] = r.Reason
		}
		for k, v := range refused {
			if !strings.Contains(got[k], v) {
				t.Errorf("%s: refusal of %s is %q, want it to say %q", cluster, k, got[k], v)
			}
		}
		if len(got) != len(refused) {
			t.Errorf("%s refused %v, want %v", cluster, got, refused)
		}
		if !strings.Contains(p.Problem, problem) || (problem == "") != (p.Problem == "") {
			t.Errorf("%s problem %q, want %q", cluster, p.Problem, problem)
		}
	}
	check("c2", []string{"10.2.0.0/16", "10.102.0.0/16"}, map[string]string{"10.200.0.0/16": "outside spec.allowedCIDRs"}, "")
	check("c3", []string{"10.3.0.0/16"}, map[string]string{"10.1.128.0/17": "overlaps 10.1.0.0/16 of cluster c1"}, "")
	check("c4", []string{"10.4.0.0/16"}, nil, "spec.publicKey is empty")
	check("c5", []string{"10.5.0.0/16"}, nil, "not a WireGuard key")
	// Peers with a problem get no WireGuard peer.
	if n := len(plan.State.WireGuard.Peers); n != 2 {
		t.Errorf("%d WireGuard peers, want 2 (c2, c3)", n)
	}
	// Keepalive towards every peer: it is how a newly active gateway
	// announces itself (failover), and it keeps NAT mappings open.
	for _, p := range plan.State.WireGuard.Peers {
		if p.Keepalive != 25*time.Second {
			t.Errorf("peer %s keepalive %s, want 25s", p.PublicKey, p.Keepalive)
		}
	}
}

func TestActiveGatewayIsTheLeaseHolder(t *testing.T) {
	in := threeClusters("c1-n0", RouteVXLAN)
	in.Gateways = append(in.Gateways, Gateway{Node: "c1-n1", IP: netip.MustParseAddr("172.28.1.11")})
	for _, tc := range []struct {
		active, node, role string
		via                string
	}{
		{"c1-n0", "c1-n0", RoleGateway, ""},
		{"c1-n0", "c1-n1", RoleNode, "172.28.1.10"},
		{"c1-n1", "c1-n0", RoleNode, "172.28.1.11"},
		{"c1-n1", "c1-n1", RoleGateway, ""},
		// No holder (or one that is no gateway): nobody is active, and a
		// node routes nothing to a gateway that may not be there.
		{"", "c1-n0", RoleNode, ""},
		{"c1-n7", "c1-n1", RoleNode, ""},
	} {
		in.Active, in.Node.Name = tc.active, tc.node
		in.Node.IP = netip.MustParseAddr(map[string]string{"c1-n0": "172.28.1.10", "c1-n1": "172.28.1.11"}[tc.node])
		plan := Desired(in)
		if plan.Role != tc.role {
			t.Errorf("active %q, on %s: role %s, want %s", tc.active, tc.node, plan.Role, tc.role)
		}
		var via string
		if plan.State.VXLAN != nil && plan.State.VXLAN.Remote.IsValid() {
			via = plan.State.VXLAN.Remote.String()
		}
		if tc.role == RoleNode && via != tc.via {
			t.Errorf("active %q, on %s: VXLAN to %q, want %q", tc.active, tc.node, via, tc.via)
		}
	}
}

func TestOtherEndpointsOfAPeerAreAccepted(t *testing.T) {
	in := threeClusters("c1-n0", RouteVXLAN)
	second := netip.MustParseAddrPort("172.28.2.11:51820")
	in.Peers[0].Endpoints = append(in.Peers[0].Endpoints, second)
	if p := Desired(in).Peers[0]; len(p.AlsoAccepted) != 0 {
		t.Errorf("also accepted %v while the tunnel is not healthy, want none: the first endpoint is dialed", p.AlsoAccepted)
	}
	in.Peers[0].Healthy = true
	plan := Desired(in)
	p := plan.State.WireGuard.Peers[slices.IndexFunc(plan.State.WireGuard.Peers, func(p dataplane.Peer) bool { return p.PublicKey == keyC2.PublicKey() })]
	if p.Endpoint != in.Peers[0].Endpoints[0] || !slices.Equal(p.AlsoAccepted, []netip.AddrPort{second}) {
		t.Errorf("endpoint %s, also accepted %v; want the first endpoint, and the second accepted", p.Endpoint, p.AlsoAccepted)
	}
	// WireGuard roamed to c2's other gateway: the applier leaves it there.
	k := fake.New()
	a := newApplier(k)
	apply(t, a, in)
	roam := func(to netip.AddrPort) {
		k.SetHandshake("wirespan0", keyC2.PublicKey(), wgtypes.Peer{Endpoint: net.UDPAddrFromAddrPort(to)})
	}
	roam(second)
	if ch := apply(t, a, in); len(ch) != 0 {
		t.Errorf("after roaming to another listed endpoint, changes %q, want none", ch)
	}
	// wireguard-go's dual-stack socket reports it IPv4-mapped.
	roam(netip.AddrPortFrom(netip.AddrFrom16(second.Addr().As16()), second.Port()))
	if ch := apply(t, a, in); len(ch) != 0 {
		t.Errorf("after roaming to another listed endpoint, IPv4-mapped, changes %q, want none", ch)
	}
	// Roamed somewhere Git does not list: pointed back at the first.
	roam(netip.MustParseAddrPort("172.28.9.9:51820"))
	if ch := apply(t, a, in); len(ch) != 1 || !strings.Contains(ch[0], "endpoint 172.28.2.10:51820") {
		t.Errorf("after roaming to an unlisted address, changes %q, want the endpoint set back", ch)
	}
}

func prefixStrings(ps []netip.Prefix) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

func TestTunnelAddressStaysInRange(t *testing.T) {
	for _, bits := range []int{16, 24, 30} {
		r := netip.PrefixFrom(netip.MustParseAddr("100.96.0.0"), bits).Masked()
		for _, k := range []wgtypes.Key{keyC1, keyC2, keyC3} {
			a := TunnelAddress(r, k)
			if !r.Contains(a) || a == r.Addr() || a == lastAddr(r) {
				t.Errorf("%s in %s: %s", k, r, a)
			}
		}
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Behind NAT, the gateway keeps its mapping fresh with the short NAT
// keepalive towards every peer; elsewhere the usual one.
func TestNATKeepaliveBehindNAT(t *testing.T) {
	in := threeClusters("c1-n0", RouteVXLAN)
	in.Config.NATKeepalive = time.Second
	for _, behindNAT := range []bool{false, true} {
		in.SelfHasEndpoint = !behindNAT
		want := 25 * time.Second
		if behindNAT {
			want = time.Second
		}
		for _, p := range Desired(in).State.WireGuard.Peers {
			if p.Keepalive != want {
				t.Errorf("behind NAT %v: peer %s keepalive %v, want %v", behindNAT, p.PublicKey, p.Keepalive, want)
			}
		}
	}
}
