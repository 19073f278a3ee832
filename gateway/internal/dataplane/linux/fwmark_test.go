package linux

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

const testMark = 0xca // the gateway's default --fwmark

// The rule is "not fwmark M lookup T" in the real kernel, reads back as
// written, and replaces the unmarked rule of an older gateway, leaving
// exactly one.
func TestRuleSkipsMarkedPackets(t *testing.T) {
	requireRoot(t)
	ns, k := dummyNS(t)
	a := &dataplane.Applier{Kernel: k}
	old := dataplane.Rule{Priority: 100, Table: testTable}
	if _, err := a.Apply(dataplane.State{Table: testTable, Rules: []dataplane.Rule{old}}); err != nil {
		t.Fatal(err)
	}
	want := dataplane.Rule{Priority: 100, Table: testTable, SkipMark: testMark}
	changes, err := a.Apply(dataplane.State{Table: testTable, Rules: []dataplane.Rule{want}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("changes: %q", changes)
	got, err := k.Rules()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []dataplane.Rule{want}) {
		t.Fatalf("rules after the upgrade = %+v, want only %+v", got, want)
	}
	shown := inNS(t, ns, "ip", "rule", "show", "priority", "100")
	if !strings.Contains(shown, "not from all fwmark 0xca lookup 51820 proto 201") {
		t.Errorf("ip rule shows %q, want the not-fwmark rule", shown)
	}
	if ch, err := a.Apply(dataplane.State{Table: testTable, Rules: []dataplane.Rule{want}}); err != nil || len(ch) != 0 {
		t.Errorf("second apply: changes %q, err %v", ch, err)
	}
}

// WireGuard's own UDP never follows Wirespan's table. Each end routes the
// whole underlay, its peer's endpoint included, into the tunnel (what a
// claimed range that held the endpoint would do). Without the fwmark the
// handshake packets are routed into the tunnel itself and nothing gets
// through; with the device's fwmark and the rule that skips it, the
// tunnel works. Run for each WireGuard mode the machine has.
func TestWireGuardPacketsSkipTheTable(t *testing.T) {
	requireRoot(t)
	for _, mode := range []WireGuardMode{WireGuardUserspace, WireGuardKernel} {
		t.Run(string(mode), func(t *testing.T) {
			nsA, nsB := vethPair(t)
			kA, kB := kernelIn(t, nsA, mode), kernelIn(t, nsB, mode)
			ends := []*fwEnd{
				{k: kA, dev: devName(), key: mustKey(t), addr: "10.99.0.1", underlay: "192.168.77.1"},
				{k: kB, dev: devName(), key: mustKey(t), addr: "10.99.0.2", underlay: "192.168.77.2"},
			}
			ends[0].peer, ends[1].peer = ends[1], ends[0]
			for _, e := range ends {
				t.Cleanup(func() { _ = e.k.DeleteLink(e.dev) })
			}

			for _, e := range ends {
				e.apply(t, 0)
			}
			if _, err := runErr("ip", "netns", "exec", nsA, "ping", "-c2", "-W1", "10.99.0.2"); err == nil {
				t.Fatal("the tunnel works with the endpoint routed into it and no fwmark: the test proves nothing")
			}

			for _, e := range ends {
				e.apply(t, testMark)
			}
			pingThrough(t, nsA, "10.99.0.2")
			d, err := kA.Device(ends[0].dev)
			if err != nil {
				t.Fatal(err)
			}
			if d.FirewallMark != testMark {
				t.Errorf("device fwmark = %#x, want %#x", d.FirewallMark, testMark)
			}
		})
	}
}

// kernelIn returns a Kernel for ns in mode, or skips when the machine has
// no such WireGuard (kernel WireGuard needs the module).
func kernelIn(t *testing.T, ns string, mode WireGuardMode) *Kernel {
	t.Helper()
	if mode == WireGuardUserspace {
		return newKernel(t, ns)
	}
	if _, err := runErr("ip", "-n", ns, "link", "add", "wstprobe0", "type", "wireguard"); err != nil {
		t.Skipf("no kernel WireGuard on this machine (%v); the userspace case covers the same path", err)
	}
	run(t, "ip", "-n", ns, "link", "del", "wstprobe0")
	k, err := New(Options{NetNS: ns, WireGuardMode: mode, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return k
}

// fwEnd is one end of the tunnel, applied through the Applier as a gateway
// would.
type fwEnd struct {
	k              *Kernel
	dev            string
	key            wgtypes.Key
	addr, underlay string
	peer           *fwEnd
	applier        *dataplane.Applier
}

// apply sets the end's whole state with the given fwmark (0: none, and a
// rule that matches every packet, as before the fwmark).
func (e *fwEnd) apply(t *testing.T, mark uint32) {
	t.Helper()
	if e.applier == nil {
		e.applier = &dataplane.Applier{Kernel: e.k, WireGuardName: e.dev}
	}
	self := netip.MustParseAddr(e.addr)
	underlay := netip.MustParsePrefix("192.168.77.0/24")
	peerTunnel := netip.PrefixFrom(netip.MustParseAddr(e.peer.addr), 32)
	st := dataplane.State{
		WireGuard: &dataplane.Device{
			Name: e.dev, PrivateKey: e.key, ListenPort: 51820, FirewallMark: int(mark), MTU: 1420,
			Addresses: []netip.Prefix{netip.PrefixFrom(self, 32)},
			Peers: []dataplane.Peer{{
				PublicKey:  e.peer.key.PublicKey(),
				Endpoint:   netip.AddrPortFrom(netip.MustParseAddr(e.peer.underlay), 51820),
				AllowedIPs: []netip.Prefix{peerTunnel, underlay},
			}},
		},
		Table: testTable,
		Routes: []dataplane.Route{
			{Dst: peerTunnel, Dev: e.dev, Src: self},
			{Dst: underlay, Dev: e.dev, Src: self},
		},
		Rules: []dataplane.Rule{{Priority: 100, Table: testTable, SkipMark: mark}},
	}
	if _, err := e.applier.Apply(st); err != nil {
		t.Fatalf("apply %s with fwmark %#x: %v", e.dev, mark, err)
	}
}
