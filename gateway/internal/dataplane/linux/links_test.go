package linux

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

func TestVXLAN(t *testing.T) {
	requireRoot(t)
	ns, k := dummyNS(t)
	mac, _ := net.ParseMAC("02:00:5e:10:00:01")
	want := dataplane.VXLAN{
		Name:     "wsvx0",
		VNI:      4242,
		Port:     4789,
		Underlay: "d0",
		Local:    netip.MustParseAddr("192.0.2.1"),
		Remote:   netip.MustParseAddr("192.0.2.2"),
		MAC:      mac,
		MTU:      1450,
	}
	if err := k.CreateVXLAN(want); err != nil {
		t.Fatal(err)
	}
	l, ok, err := k.Link(want.Name)
	if err != nil || !ok {
		t.Fatalf("Link: %v, %v", ok, err)
	}
	if l.Kind != "vxlan" || l.MTU != 1450 || l.Up || l.VXLAN == nil {
		t.Fatalf("Link = %+v", l)
	}
	if !reflect.DeepEqual(*l.VXLAN, want) {
		t.Errorf("VXLAN =\n%+v\nwant\n%+v", *l.VXLAN, want)
	}
	out := inNS(t, ns, "ip", "-d", "link", "show", "wsvx0")
	t.Logf("ip -d link show wsvx0:\n%s", out)
	if !strings.Contains(out, "nolearning") {
		t.Error("learning is on")
	}

	// On the gateway side the remote is zero.
	gw := want
	gw.Name, gw.VNI, gw.Remote, gw.MAC = "wsvx1", 4243, netip.Addr{}, nil
	if err := k.CreateVXLAN(gw); err != nil {
		t.Fatal(err)
	}
	l, _, _ = k.Link(gw.Name)
	if l.VXLAN == nil || l.VXLAN.Remote.IsValid() || len(l.VXLAN.MAC) != 6 {
		t.Errorf("VXLAN without remote = %+v (MAC should be the kernel's)", l.VXLAN)
	}

	if err := k.CreateVXLAN(dataplane.VXLAN{Name: "wsvx2", VNI: 1, Underlay: "nosuch0"}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("CreateVXLAN on a missing underlay: %v", err)
	}
}

func TestLinkChanges(t *testing.T) {
	requireRoot(t)
	ns, k := dummyNS(t)
	inNS(t, ns, "ip", "link", "add", "d1", "type", "veth", "peer", "name", "d1p")

	if _, ok, err := k.Link("nosuch0"); ok || err != nil {
		t.Errorf("Link of a missing link: ok %v, err %v", ok, err)
	}
	a4, a6 := netip.MustParsePrefix("10.1.2.3/32"), netip.MustParsePrefix("fd00::5/128")
	for range 2 { // the second time, everything is there already
		for _, err := range []error{k.SetMTU("d1", 1300), k.SetUp("d1"), k.AddAddress("d1", a4), k.AddAddress("d1", a6)} {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	l, _, err := k.Link("d1")
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(l.Addresses, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	if l.Kind != "veth" || l.MTU != 1300 || !l.Up || !slices.Equal(l.Addresses, []netip.Prefix{a4, a6}) {
		t.Errorf("Link = %+v (the kernel's fe80:: address must not be listed)", l)
	}
	for range 2 {
		if err := k.DeleteAddress("d1", a4); err != nil {
			t.Fatal(err)
		}
	}
	if l, _, _ := k.Link("d1"); !slices.Equal(l.Addresses, []netip.Prefix{a6}) {
		t.Errorf("addresses after delete: %v", l.Addresses)
	}
	if err := k.AddAddress("nosuch0", a4); err == nil || !strings.Contains(err.Error(), "add address 10.1.2.3/32 to nosuch0") {
		t.Errorf("AddAddress on a missing link: %v", err)
	}
	if err := k.DeleteLink("d1"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := k.Link("d1"); ok {
		t.Error("d1 still there")
	}
}

func TestNeighbors(t *testing.T) {
	requireRoot(t)
	ns := newNS(t)
	inNS(t, ns, "ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1")
	inNS(t, ns, "ip", "addr", "add", "192.0.2.1/24", "dev", "v0")
	// Both ends up: with its peer down, v0 has no carrier, and the kernel
	// flushes v0's entries that are not permanent when it handles that,
	// which may be after the foreign entry below is added (seen once in
	// the VM tier's guest).
	inNS(t, ns, "ip", "link", "set", "v1", "up")
	inNS(t, ns, "ip", "link", "set", "v0", "up")
	k := newKernel(t, ns)
	// An entry Wirespan does not own.
	inNS(t, ns, "ip", "neigh", "add", "192.0.2.8", "lladdr", "02:00:00:00:00:08", "dev", "v0", "nud", "reachable")

	mac1, _ := net.ParseMAC("02:00:00:00:00:07")
	mac2, _ := net.ParseMAC("02:00:00:00:00:17")
	n := dataplane.Neighbor{Dev: "v0", IP: netip.MustParseAddr("192.0.2.7"), MAC: mac1}
	if err := k.SetNeighbor(n); err != nil {
		t.Fatal(err)
	}
	n.MAC = mac2
	if err := k.SetNeighbor(n); err != nil {
		t.Fatal(err)
	}
	got, err := k.Neighbors("v0")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].IP != n.IP || got[0].MAC.String() != mac2.String() || got[0].Dev != "v0" {
		t.Errorf("Neighbors = %+v, want [%+v]", got, n)
	}
	if err := k.DeleteNeighbor(dataplane.Neighbor{Dev: "v0", IP: netip.MustParseAddr("192.0.2.8")}); err != nil {
		t.Fatal(err)
	}
	if out := inNS(t, ns, "ip", "neigh", "show", "192.0.2.8", "dev", "v0"); !strings.Contains(out, "02:00:00:00:00:08") {
		t.Errorf("foreign entry deleted: %q", out)
	}
	for range 2 {
		if err := k.DeleteNeighbor(n); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := k.Neighbors("v0"); len(got) != 0 {
		t.Errorf("Neighbors after delete = %+v", got)
	}
}
