package dataplane_test

import (
	"errors"
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

var (
	self    = netip.MustParseAddr("100.96.0.1")
	peerKey = wgtypes.Key{2}
)

func route(dst, dev, src string) dataplane.Route {
	r := dataplane.Route{Dst: netip.MustParsePrefix(dst), Dev: dev}
	if src != "" {
		r.Src = netip.MustParseAddr(src)
	}
	return r
}

// gatewayState is a gateway's state with three routes the kernel refuses
// among good ones: an IPv6 range with the IPv4 tunnel source (the
// dual-stack peer of issue 15), an IPv6 range with an IPv4 next hop (what
// node agents were given), and a route through a link that does not exist.
func gatewayState() dataplane.State {
	return dataplane.State{
		WireGuard: &dataplane.Device{
			Name: "wirespan0", PrivateKey: wgtypes.Key{1}, ListenPort: 51820, MTU: 1420,
			Addresses: []netip.Prefix{netip.PrefixFrom(self, 32)},
			Peers: []dataplane.Peer{{PublicKey: peerKey, AllowedIPs: []netip.Prefix{
				netip.MustParsePrefix("100.96.0.2/32"), netip.MustParsePrefix("10.2.0.0/16"),
			}}},
		},
		Table: 51820,
		Routes: []dataplane.Route{
			route("10.2.0.0/16", "wirespan0", "100.96.0.1"),
			route("fd00:2::/64", "wirespan0", "100.96.0.1"),
			{Dst: netip.MustParsePrefix("fd00:3::/64"), Dev: "eth0", Via: netip.MustParseAddr("172.28.1.10"), Onlink: true},
			route("10.4.0.0/16", "nosuch0", ""),
			route("100.96.0.2/32", "wirespan0", "100.96.0.1"),
		},
		Rules:    []dataplane.Rule{{Priority: 100, Table: 51820}},
		MSSClamp: []string{"wirespan0"},
		Sysctls: map[string]string{
			"net/ipv4/ip_forward":                 "1",
			"net/ipv4/conf/wirespan0/rp_filter":   "2",
			"net/ipv4/conf/wirespan-vx/rp_filter": "2", // no such link here
		},
	}
}

func refusals(t *testing.T, err error) []dataplane.Refusal {
	t.Helper()
	var ae *dataplane.ApplyError
	if !errors.As(err, &ae) {
		t.Fatalf("Apply: %v, want an *ApplyError", err)
	}
	return ae.Refused
}

func dumpWithRefusals(k *fake.Kernel, refused []dataplane.Refusal) string {
	var b strings.Builder
	b.WriteString(k.Dump())
	for _, r := range refused {
		b.WriteString("refused " + r.Error() + "\n")
	}
	return b.String()
}

// Objects the kernel refuses do not stop the rest: on a fresh node, and
// on one with a stale route to prune, everything else converges in one
// Apply, each refused object is named, and the next Apply tries exactly
// those again and changes nothing else.
func TestRefusedObjectsDoNotStopTheRest(t *testing.T) {
	k := fake.New()
	k.AddLink(dataplane.Link{Name: "eth0", Kind: "veth", MTU: 1500, Up: true})
	a := &dataplane.Applier{Kernel: k, WireGuardName: "wirespan0", VXLANName: "wirespan-vx"}
	// A route left by an earlier version of the state: stale now.
	if _, err := a.Apply(dataplane.State{Table: 51820, Routes: []dataplane.Route{route("10.9.0.0/16", "eth0", "")}}); err != nil {
		t.Fatal(err)
	}

	_, err := a.Apply(gatewayState())
	refused := refusals(t, err)
	golden.Check(t, "refused.txt", dumpWithRefusals(k, refused))
	if len(refused) != 4 {
		t.Errorf("%d refusals, want 4 (two mixed-family routes, a missing link, a missing link's sysctl):\n%v", len(refused), err)
	}
	var dsts []string
	for _, r := range refused {
		if r.Kind == dataplane.KindRoute {
			dsts = append(dsts, r.Dst.String())
		}
	}
	if want := []string{"fd00:2::/64", "fd00:3::/64", "10.4.0.0/16"}; !slices.Equal(dsts, want) {
		t.Errorf("refused routes name destinations %v, want %v", dsts, want)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("errors.Is(os.ErrNotExist) is false for %v", err)
	}

	before, calls := k.Dump(), k.Calls["ReplaceRoute"]
	ch, err := a.Apply(gatewayState())
	if again := refusals(t, err); len(again) != len(refused) {
		t.Errorf("second Apply refused %d objects, want the same %d", len(again), len(refused))
	}
	if len(ch) != 0 || k.Dump() != before {
		t.Errorf("second Apply changed %q", ch)
	}
	if got := k.Calls["ReplaceRoute"] - calls; got != 3 {
		t.Errorf("second Apply tried %d routes, want the 3 refused ones again", got)
	}

	// Once the bad objects are no longer wanted, Apply succeeds.
	good := gatewayState()
	good.Routes = slices.DeleteFunc(good.Routes, func(r dataplane.Route) bool { return r.Dst.Addr().Is6() || r.Dev == "nosuch0" })
	delete(good.Sysctls, "net/ipv4/conf/wirespan-vx/rp_filter")
	if _, err := a.Apply(good); err != nil {
		t.Errorf("Apply of the good objects alone: %v", err)
	}
}

// A WireGuard peer the device refuses holds back neither the device's
// other peers nor anything else, and is named by its key.
func TestRefusedPeer(t *testing.T) {
	k := fake.New()
	a := &dataplane.Applier{Kernel: k, WireGuardName: "wirespan0"}
	want := gatewayState()
	want.Routes = want.Routes[:1]
	delete(want.Sysctls, "net/ipv4/conf/wirespan-vx/rp_filter")
	other := wgtypes.Key{3}
	want.WireGuard.Peers = append(want.WireGuard.Peers, dataplane.Peer{PublicKey: other})
	if _, err := a.Apply(want); err != nil {
		t.Fatal(err)
	}
	// Both peers change; the first call, for the first peer, fails.
	for i := range want.WireGuard.Peers {
		want.WireGuard.Peers[i].Keepalive = 25 * time.Second
	}
	k.FailOn["ConfigureDevice"] = errors.New("invalid argument")
	_, err := a.Apply(want)
	refused := refusals(t, err)
	if len(refused) != 1 || refused[0].Kind != dataplane.KindPeer || refused[0].Peer != peerKey {
		t.Fatalf("refusals %v, want the first peer only", err)
	}
	if !strings.Contains(k.Dump(), "peer "+other.String()+" endpoint=- keepalive=25s") {
		t.Errorf("the other peer was not updated:\n%s", k.Dump())
	}
	if _, err := a.Apply(want); err != nil {
		t.Errorf("retry: %v", err)
	}
}

// A refusal seen on every sync is reported once, and once when it clears.
func TestRefusalLog(t *testing.T) {
	bad := dataplane.Refusal{Kind: dataplane.KindRoute, Object: "fd00::/64 dev wirespan0", Err: errors.New("mixed families")}
	other := dataplane.Refusal{Kind: dataplane.KindSysctl, Object: "x=1", Err: errors.New("no such file")}
	var l dataplane.RefusalLog
	steps := []struct {
		refused          []dataplane.Refusal
		appeared, clears int
	}{
		{[]dataplane.Refusal{bad}, 1, 0},
		{[]dataplane.Refusal{bad}, 0, 0},
		{[]dataplane.Refusal{bad, other}, 1, 0},
		{[]dataplane.Refusal{other}, 0, 1},
		{nil, 0, 1},
		{nil, 0, 0},
	}
	for i, s := range steps {
		appeared, cleared := l.Update(s.refused)
		if len(appeared) != s.appeared || len(cleared) != s.clears {
			t.Errorf("step %d: %d appeared, %d cleared; want %d, %d", i, len(appeared), len(cleared), s.appeared, s.clears)
		}
	}
}

// A WireGuard device the kernel refuses to create is named with its link,
// so the caller can put it on every peer; the routes through it are
// refused too, and the rest converges.
func TestRefusedDevice(t *testing.T) {
	k := fake.New()
	k.FailOn["CreateWireGuard"] = errors.New("operation not supported")
	a := &dataplane.Applier{Kernel: k, WireGuardName: "wirespan0"}
	want := gatewayState()
	want.Routes = want.Routes[:1]
	delete(want.Sysctls, "net/ipv4/conf/wirespan-vx/rp_filter")
	_, err := a.Apply(want)
	refused := refusals(t, err)
	if len(refused) == 0 || refused[0].Kind != dataplane.KindLink || refused[0].Link != "wirespan0" {
		t.Fatalf("refusals %v, want the WireGuard link first, naming its link", err)
	}
	for _, line := range []string{"rule priority 100 table 51820", "sysctl net/ipv4/ip_forward=1"} {
		if !strings.Contains(k.Dump(), line) {
			t.Errorf("%q missing after a refused device:\n%s", line, k.Dump())
		}
	}
	if _, err := a.Apply(want); err != nil {
		t.Errorf("retry: %v", err)
	}
}
