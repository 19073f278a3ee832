package probe

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/gateway/internal/dataplane"
	"github.com/wirespan/wirespan/gateway/internal/gossip"
)

// fakeEnv is a network of peers as the tests declare it. The Env under
// test in namespaces is the Linux Kernel's (dataplane/linux probes_test).
type fakeEnv struct {
	mu         sync.Mutex
	handshakes map[string]time.Time
	// alive: the tunnel carries traffic both ways; answers: a rehandshake
	// with the peer completes (and makes it alive).
	alive       map[string]bool
	tunnelAddrs map[netip.Addr]string
	received    map[string]int64
	answers     map[string]bool
	// refused: the endpoint's port is closed.
	refused  map[netip.AddrPort]bool
	pathMTU  map[netip.Addr]int
	underlay map[netip.AddrPort]int
	// echoUnderlay: the endpoint's address answers echoes up to this size.
	echoUnderlay map[netip.Addr]int
	rehandled    []string
	echoes       int
	rpErr        error
}

func (f *fakeEnv) Peers() (map[string]PeerStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.received == nil {
		f.received = map[string]int64{}
	}
	out := map[string]PeerStats{}
	for k, v := range f.handshakes {
		if f.alive[k] {
			f.received[k] += 100
		}
		out[k] = PeerStats{LastHandshake: v, Received: f.received[k]}
	}
	return out, nil
}

func (f *fakeEnv) Rehandshake(cluster string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rehandled = append(f.rehandled, cluster)
	if f.answers[cluster] {
		f.handshakes[cluster] = time.Now()
		f.alive[cluster] = true
	}
	return nil
}

func (f *fakeEnv) LinkMTU(string) (int, error) { return 1420, nil }

func (f *fakeEnv) Echo(_ context.Context, dst netip.Addr, size int, _ time.Duration) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.echoes++
	if f.tunnelAddrs[dst] != "" && !f.alive[f.tunnelAddrs[dst]] {
		return false, nil // no session, or our packets are dropped
	}
	return size <= f.pathMTU[dst], nil
}

func (f *fakeEnv) UnderlayEcho(_ context.Context, dst netip.Addr, size int, _ time.Duration) (bool, error) {
	if m, ok := f.echoUnderlay[dst]; ok {
		return size <= m, nil
	}
	return false, nil // the endpoint does not answer echoes
}

func (f *fakeEnv) UDPRefused(_ context.Context, ep netip.AddrPort, _ time.Duration) (bool, error) {
	return f.refused[ep], nil
}

func (f *fakeEnv) UnderlayMTU(_ context.Context, ep netip.AddrPort, size int) (int, error) {
	if m, ok := f.underlay[ep]; ok {
		return m, nil
	}
	return 1500, nil
}

func (f *fakeEnv) ReversePath(p Path) (int, bool, string, error) {
	if f.rpErr != nil {
		return 0, false, "", f.rpErr
	}
	if p.Link == "strict0" {
		return 1, false, "dropped", nil
	}
	return 2, true, "", nil
}

func (f *fakeEnv) Lookup(_ context.Context, _ netip.AddrPort, name string) (string, []netip.Addr, error) {
	if name == "echo.demo.svc.clusterset.local" {
		return "NOERROR", []netip.Addr{netip.MustParseAddr("10.96.5.5")}, nil
	}
	return "NXDOMAIN", nil, nil
}

var (
	epB = netip.MustParseAddrPort("172.28.2.10:51820")
	epC = netip.MustParseAddrPort("172.28.3.10:51820")
	epD = netip.MustParseAddrPort("[2001:db8::4]:51820")
	tB  = netip.MustParseAddr("100.64.0.2")
	tC  = netip.MustParseAddr("100.64.0.3")
	tD  = netip.MustParseAddr("100.64.0.4")
)

func gatewayInputs() Inputs {
	return Inputs{
		Node: "c1-n0", Role: wirespanv1alpha1.ProbeRoleGateway, Version: "v1", Device: "wirespan0",
		Peers: []Peer{
			{Cluster: "d", HasKey: true, Endpoint: epD, TunnelAddr: tD},
			{Cluster: "b", HasKey: true, Endpoint: epB, TunnelAddr: tB},
			{Cluster: "c", HasKey: true, Endpoint: epC, TunnelAddr: tC},
			{Cluster: "e", Problem: "spec.publicKey is empty"},
		},
		Gossip:    []gossip.PeerHeard{{Cluster: "b", Node: "b-n0", Present: true, Heard: time.Now()}, {Cluster: "c"}},
		DNSServer: netip.MustParseAddrPort("10.96.0.10:53"),
	}
}

func peerResult(t *testing.T, st wirespanv1alpha1.ProbeRequestStatus, name string) wirespanv1alpha1.PeerProbe {
	t.Helper()
	i := slices.IndexFunc(st.Peers, func(p wirespanv1alpha1.PeerProbe) bool { return p.Name == name })
	if i < 0 {
		t.Fatalf("no result for peer %s in %+v", name, st.Peers)
	}
	return st.Peers[i]
}

func TestRunProbesEveryPeer(t *testing.T) {
	now := time.Now()
	env := &fakeEnv{
		handshakes:  map[string]time.Time{"b": now.Add(-30 * time.Second), "c": now.Add(-10 * time.Minute), "d": {}},
		alive:       map[string]bool{"b": true},
		tunnelAddrs: map[netip.Addr]string{tB: "b", tC: "c", tD: "d"},
		answers:     map[string]bool{"c": true},
		refused:     map[netip.AddrPort]bool{epD: true},
		pathMTU:     map[netip.Addr]int{tB: 1420, tC: 1300},
		underlay:    map[netip.AddrPort]int{epC: 1400},
		// c's endpoint answers echoes, and silently drops those above 1350:
		// the echoes find it, where the kernel would not hear of it.
		echoUnderlay: map[netip.Addr]int{epC.Addr(): 1350},
	}
	spec := wirespanv1alpha1.ProbeRequestSpec{DNSNames: []string{"echo.demo.svc.clusterset.local", "nosuch.demo.svc.clusterset.local"}}
	st := Run(context.Background(), spec, gatewayInputs(), env, time.Now)

	if st.Node != "c1-n0" || st.Role != wirespanv1alpha1.ProbeRoleGateway || st.StartTime == nil || st.CompletionTime == nil || st.Error != "" {
		t.Errorf("header = %+v", st)
	}
	if names := []string{st.Peers[0].Name, st.Peers[1].Name, st.Peers[2].Name, st.Peers[3].Name}; !slices.Equal(names, []string{"b", "c", "d", "e"}) {
		t.Errorf("peers in order %v, want sorted by name", names)
	}
	// b: traffic arrives; no new handshake, a full-size echo.
	b := peerResult(t, st, "b")
	if b.UDP != wirespanv1alpha1.UDPAnswered || b.PathMTU != 1420 || b.TunnelMTU != 1420 || b.UnderlayMTU != 1500 || b.Overhead != 60 {
		t.Errorf("b = %+v, want answered, path MTU 1420 of 1420, underlay 1500", b)
	}
	// c: silent, a new handshake completes; the tunnel loses echoes above
	// 1300, and the underlay carries 1400 where 1480 is needed.
	c := peerResult(t, st, "c")
	if c.UDP != wirespanv1alpha1.UDPAnswered || !strings.Contains(c.UDPMessage, "a new handshake completed") || c.PathMTU != 1300 || c.UnderlayMTU != 1350 {
		t.Errorf("c = %+v, want answered by a new handshake, path MTU 1300, underlay 1350", c)
	}
	if !strings.Contains(c.MTUMessage, "up to 1300 bytes") || !strings.Contains(c.MTUMessage, "takes 1480") || !strings.Contains(c.MTUMessage, "by echoes") {
		t.Errorf("c's MTU message %q does not explain both findings", c.MTUMessage)
	}
	// d: never answered, its port is closed; no echo through a tunnel
	// without session; the IPv6 underlay's overhead is 80.
	d := peerResult(t, st, "d")
	if d.UDP != wirespanv1alpha1.UDPRefused || d.PathMTU != 0 || d.Overhead != 80 || d.LastHandshakeTime != nil {
		t.Errorf("d = %+v, want refused, no path MTU, overhead 80", d)
	}
	// e: no key, nothing sent.
	if e := peerResult(t, st, "e"); e.UDP != wirespanv1alpha1.UDPNotProbed || !strings.Contains(e.UDPMessage, "publicKey") {
		t.Errorf("e = %+v, want not probed, with the reason", e)
	}
	if slices.Contains(env.rehandled, "b") || !slices.Contains(env.rehandled, "c") || !slices.Contains(env.rehandled, "d") {
		t.Errorf("new handshakes with %v, want c and d only (b sends)", env.rehandled)
	}
	if len(st.Gossip) != 2 || !st.Gossip[0].Present || st.Gossip[0].LastAuthenticatedTime == nil || st.Gossip[1].Present || st.Gossip[1].LastAuthenticatedTime != nil {
		t.Errorf("gossip = %+v", st.Gossip)
	}
	if len(st.DNS) != 2 || st.DNS[0].RCode != "NOERROR" || !slices.Equal(st.DNS[0].Addresses, []string{"10.96.5.5"}) || st.DNS[1].RCode != "NXDOMAIN" || st.DNS[0].Server != "10.96.0.10:53" {
		t.Errorf("dns = %+v", st.DNS)
	}
}

func TestRunSilentPeerAndUnknownName(t *testing.T) {
	env := &fakeEnv{handshakes: map[string]time.Time{"b": time.Now().Add(-time.Minute)}, pathMTU: map[netip.Addr]int{},
		alive: map[string]bool{}, tunnelAddrs: map[netip.Addr]string{tB: "b"}}
	spec := wirespanv1alpha1.ProbeRequestSpec{Peers: []string{"b", "zz"}}
	st := Run(context.Background(), spec, gatewayInputs(), env, time.Now)
	if len(st.Peers) != 2 {
		t.Fatalf("peers = %+v, want b and zz as asked", st.Peers)
	}
	if b := st.Peers[0]; b.Name != "b" || b.UDP != wirespanv1alpha1.UDPNoAnswer || !strings.Contains(b.UDPMessage, "no answer") || !strings.Contains(b.UDPMessage, "last handshake 1m0s ago") {
		t.Errorf("b = %+v, want no answer", b)
	}
	if zz := st.Peers[1]; zz.Name != "zz" || zz.UDP != wirespanv1alpha1.UDPNotProbed || !strings.Contains(zz.UDPMessage, "does not peer") {
		t.Errorf("zz = %+v, want not probed: unknown", zz)
	}
	if env.echoes != RoundTrips {
		t.Errorf("%d echoes, want the %d round trips and no MTU search through a tunnel that carries nothing", env.echoes, RoundTrips)
	}
}

func TestNodeAgentProbesOnlyItsNode(t *testing.T) {
	env := &fakeEnv{handshakes: map[string]time.Time{}, alive: map[string]bool{}}
	in := Inputs{Node: "c1-n1", Role: wirespanv1alpha1.ProbeRoleNodeAgent, Peers: gatewayInputs().Peers,
		Paths:    []Path{{Link: "wirespan-vx", Range: netip.MustParsePrefix("10.2.0.0/16")}, {Link: "strict0", Range: netip.MustParsePrefix("10.3.0.0/16")}},
		DNSError: "kube-system/kube-dns has no ClusterIP"}
	st := Run(context.Background(), wirespanv1alpha1.ProbeRequestSpec{DNSNames: []string{"a.b.svc.clusterset.local"}}, in, env, time.Now)
	if len(st.Peers) != 0 || len(st.Gossip) != 0 || len(env.rehandled) != 0 {
		t.Errorf("a node agent probed peers or gossip: %+v", st)
	}
	if len(st.ReversePath) != 2 || !st.ReversePath[0].Accepted || st.ReversePath[1].Accepted || st.ReversePath[1].RPFilter != 1 {
		t.Errorf("reverse path = %+v", st.ReversePath)
	}
	if len(st.DNS) != 1 || st.DNS[0].RCode != "" || !strings.Contains(st.DNS[0].Message, "no ClusterIP") {
		t.Errorf("dns = %+v, want the reason the server is unknown", st.DNS)
	}
	// A question the kernel could not be asked is not a refusal.
	env.rpErr = errors.New("no such link")
	st = Run(context.Background(), wirespanv1alpha1.ProbeRequestSpec{}, in, env, time.Now)
	if len(st.ReversePath) != 0 || st.Error != "" || len(st.Warnings) != 2 || !strings.Contains(st.Warnings[0], "no such link") {
		t.Errorf("after an error: reverse path %+v, error %q, warnings %q", st.ReversePath, st.Error, st.Warnings)
	}
}

func TestLargest(t *testing.T) {
	for _, mtu := range []int{0, 575, 576, 577, 1000, 1379, 1419, 1420, 1500} {
		probes := 0
		got, err := Largest(MinMTU, 1420, func(size int) (bool, error) {
			probes++
			return size <= mtu, nil
		})
		want := min(mtu, 1420)
		if mtu < MinMTU {
			want = 0
		}
		if err != nil || got != want {
			t.Errorf("path MTU %d: Largest = %d, %v; want %d", mtu, got, err, want)
		}
		if mtu >= 1420 && probes != 1 {
			t.Errorf("path MTU %d: %d probes, want 1 for a healthy path", mtu, probes)
		}
		if probes > 13 {
			t.Errorf("path MTU %d: %d probes, want a binary search", mtu, probes)
		}
	}
	// A path that loses the first full-size packet while a router's
	// "fragmentation needed" teaches the sender, then fragments.
	first := true
	if got, _ := Largest(MinMTU, 1420, func(size int) (bool, error) {
		if size == 1420 && first {
			first = false
			return false, nil
		}
		return true, nil
	}); got != 1420 {
		t.Errorf("a path that learns its MTU at the first packet: Largest = %d, want 1420", got)
	}
	boom := errors.New("boom")
	if _, err := Largest(MinMTU, 1420, func(int) (bool, error) { return false, boom }); !errors.Is(err, boom) {
		t.Errorf("error not returned: %v", err)
	}
}

func TestPaths(t *testing.T) {
	st := dataplane.State{
		WireGuard: &dataplane.Device{Name: "wirespan0"},
		VXLAN:     &dataplane.VXLAN{Name: "wirespan-vx"},
		Routes: []dataplane.Route{
			{Dst: netip.MustParsePrefix("10.2.0.0/16"), Dev: "wirespan0"},
			{Dst: netip.MustParsePrefix("fd00:2::/48"), Dev: "wirespan0"},
			{Dst: netip.MustParsePrefix("100.64.0.2/32"), Dev: "wirespan0"},
		},
	}
	pods := []netip.Prefix{netip.MustParsePrefix("fd00:1::/48"), netip.MustParsePrefix("10.1.0.0/16")}
	agentPods := []netip.Prefix{netip.MustParsePrefix("fd00:1:0:1::/64"), netip.MustParsePrefix("10.1.1.0/24")}
	got := Paths(st, pods, agentPods)
	want := []Path{
		{Link: "wirespan0", Range: netip.MustParsePrefix("10.2.0.0/16"), Source: netip.MustParseAddr("10.2.0.1"), Destination: netip.MustParseAddr("10.1.0.1")},
		{Link: "wirespan0", Range: netip.MustParsePrefix("100.64.0.2/32"), Source: netip.MustParseAddr("100.64.0.2"), Destination: netip.MustParseAddr("10.1.0.1")},
		{Link: "wirespan-vx", Range: netip.MustParsePrefix("10.1.1.0/24"), Source: netip.MustParseAddr("10.1.1.1"), Destination: netip.MustParseAddr("10.2.0.1")},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Paths on a gateway =\n%+v\nwant\n%+v", got, want)
	}
	// A node agent: remote ranges over VXLAN, nothing about pods.
	agent := dataplane.State{VXLAN: &dataplane.VXLAN{Name: "wirespan-vx"}, Routes: []dataplane.Route{{Dst: netip.MustParsePrefix("10.2.0.0/16"), Dev: "wirespan-vx"}}}
	if got := Paths(agent, pods, agentPods); len(got) != 1 || got[0].Link != "wirespan-vx" || got[0].Destination != netip.MustParseAddr("10.1.0.1") {
		t.Errorf("Paths on a node agent = %+v", got)
	}
	if got := Paths(st, nil, nil); len(got) != 0 {
		t.Errorf("Paths without a pod range = %+v, want none", got)
	}
}
