package linux

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

// The real kernel's side of issue 15: routes it refuses (an IPv6 range
// with the IPv4 tunnel source, an IPv6 range with an IPv4 next hop, a
// route through a link that does not exist) among good ones. Apply names
// each, and everything else converges all the same: the WireGuard device
// and its peer, the good routes, the rule, the MSS clamp, and the pruning
// of a stale route. The next Apply tries only the refused ones again.
func TestApplyCarriesOnPastRefusedRoutes(t *testing.T) {
	requireRoot(t)
	ns, k := dummyNS(t)
	dev := devName()
	t.Cleanup(func() { _ = k.DeleteLink(dev) })
	a := &dataplane.Applier{Kernel: k, WireGuardName: dev}
	stale := dataplane.Route{Dst: netip.MustParsePrefix("10.9.0.0/16"), Dev: "d0"}
	if _, err := a.Apply(dataplane.State{Table: testTable, Routes: []dataplane.Route{stale}}); err != nil {
		t.Fatal(err)
	}

	self := netip.MustParseAddr("100.96.0.1")
	good := []dataplane.Route{
		{Dst: netip.MustParsePrefix("10.2.0.0/16"), Dev: dev, Src: self},
		{Dst: netip.MustParsePrefix("100.96.0.2/32"), Dev: dev, Src: self},
	}
	bad := []dataplane.Route{
		{Dst: netip.MustParsePrefix("fd00:2::/64"), Dev: dev, Src: self},
		{Dst: netip.MustParsePrefix("fd00:3::/64"), Dev: "d0", Via: netip.MustParseAddr("192.0.2.254"), Onlink: true},
		{Dst: netip.MustParsePrefix("10.4.0.0/16"), Dev: "nosuch0"},
	}
	peer := mustKey(t).PublicKey()
	want := dataplane.State{
		WireGuard: &dataplane.Device{
			Name: dev, PrivateKey: mustKey(t), ListenPort: 51998, MTU: 1420, Addresses: []netip.Prefix{netip.PrefixFrom(self, 32)},
			Peers: []dataplane.Peer{{PublicKey: peer, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("100.96.0.2/32"), netip.MustParsePrefix("10.2.0.0/16")}}},
		},
		Table:    testTable,
		Routes:   append(slices.Clone(good), bad...),
		Rules:    []dataplane.Rule{{Priority: 100, Table: testTable}},
		MSSClamp: []string{dev},
	}

	var err error
	for try := range 2 {
		var changes []string
		changes, err = a.Apply(want)
		var ae *dataplane.ApplyError
		if !errors.As(err, &ae) {
			t.Fatalf("apply %d: %v, want an *ApplyError", try, err)
		}
		var dsts []netip.Prefix
		for _, r := range ae.Refused {
			t.Logf("apply %d refused: %v", try, r)
			dsts = append(dsts, r.Dst)
		}
		if want := []netip.Prefix{bad[0].Dst, bad[1].Dst, bad[2].Dst}; !slices.Equal(dsts, want) {
			t.Errorf("apply %d refused %v, want exactly the routes to %v", try, dsts, want)
		}
		if try == 1 && len(changes) != 0 {
			t.Errorf("second apply changed %q", changes)
		}
	}
	if !strings.Contains(err.Error(), "not the same IP family") {
		t.Errorf("the refusal does not say why: %v", err)
	}

	got, err := k.Routes(testTable)
	if err != nil {
		t.Fatal(err)
	}
	sortRoutes(got)
	if !slices.Equal(got, good) {
		t.Errorf("routes in table %d = %v, want the good ones only (the stale one pruned)", testTable, got)
	}
	if rules, err := k.Rules(); err != nil || !slices.Equal(rules, want.Rules) {
		t.Errorf("rules = %v (%v), want the rule", rules, err)
	}
	if clamp, err := k.MSSClamp(); err != nil || !slices.Equal(clamp, []string{dev}) {
		t.Errorf("mss clamp on %v (%v), want [%s]", clamp, err, dev)
	}
	if d, err := k.Device(dev); err != nil || len(d.Peers) != 1 || d.Peers[0].PublicKey != peer {
		t.Errorf("WireGuard device %+v (%v), want its peer", d, err)
	}
	t.Logf("ip route show table %d:\n%s", testTable, inNS(t, ns, "ip", "route", "show", "table", "51820"))
}
