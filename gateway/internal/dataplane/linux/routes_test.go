package linux

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

const testTable = 51820

// dummyNS makes a namespace with a link d0 (up, 192.0.2.1/24 and
// 2001:db8::1/64; one end of a veth pair, as the machines that run these
// tests may lack the dummy module) and a Kernel for it.
func dummyNS(t *testing.T) (string, *Kernel) {
	t.Helper()
	ns := newNS(t)
	inNS(t, ns, "ip", "link", "add", "d0", "type", "veth", "peer", "name", "d0p")
	inNS(t, ns, "ip", "addr", "add", "192.0.2.1/24", "dev", "d0")
	inNS(t, ns, "ip", "addr", "add", "2001:db8::1/64", "dev", "d0", "nodad")
	inNS(t, ns, "ip", "link", "set", "d0", "up")
	return ns, newKernel(t, ns)
}

func sortRoutes(rs []dataplane.Route) {
	slices.SortFunc(rs, func(a, b dataplane.Route) int { return strings.Compare(a.Dst.String(), b.Dst.String()) })
}

func TestRoutes(t *testing.T) {
	requireRoot(t)
	ns, k := dummyNS(t)
	// A route of another owner in Wirespan's table.
	inNS(t, ns, "ip", "route", "add", "10.50.0.0/16", "dev", "d0", "table", "51820", "proto", "static")

	want := []dataplane.Route{
		{Dst: netip.MustParsePrefix("10.2.0.0/16"), Dev: "d0", Via: netip.MustParseAddr("198.51.100.1"), Onlink: true, MTU: 1380},
		{Dst: netip.MustParsePrefix("10.3.0.0/16"), Dev: "d0", Src: netip.MustParseAddr("192.0.2.1")},
		{Dst: netip.MustParsePrefix("2001:db8:1::/48"), Dev: "d0", Via: netip.MustParseAddr("2001:db8::2"), MTU: 1300},
	}
	for _, r := range want {
		if err := k.ReplaceRoute(testTable, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := k.Routes(testTable)
	if err != nil {
		t.Fatal(err)
	}
	sortRoutes(got)
	if !slices.Equal(got, want) {
		t.Errorf("Routes =\n%+v\nwant\n%+v", got, want)
	}
	t.Logf("ip route show table 51820:\n%s", inNS(t, ns, "ip", "route", "show", "table", "51820"))
	t.Logf("ip -6 route show table 51820:\n%s", inNS(t, ns, "ip", "-6", "route", "show", "table", "51820"))

	// Replace changes a route in place.
	changed := dataplane.Route{Dst: netip.MustParsePrefix("10.3.0.0/16"), Dev: "d0", Via: netip.MustParseAddr("192.0.2.254"), MTU: 1400}
	if err := k.ReplaceRoute(testTable, changed); err != nil {
		t.Fatal(err)
	}
	got, _ = k.Routes(testTable)
	sortRoutes(got)
	if len(got) != 3 || got[1] != changed {
		t.Errorf("after replace: %+v", got)
	}

	// The foreign route is never replaced nor deleted.
	foreign := dataplane.Route{Dst: netip.MustParsePrefix("10.50.0.0/16"), Dev: "d0"}
	err = k.ReplaceRoute(testTable, foreign)
	if err == nil || !strings.Contains(err.Error(), "another owner") {
		t.Errorf("ReplaceRoute over a foreign route: %v, want refusal", err)
	}
	if err := k.DeleteRoute(testTable, foreign); err != nil {
		t.Errorf("DeleteRoute of a route that is not ours: %v", err)
	}
	if out := inNS(t, ns, "ip", "route", "show", "table", "51820", "proto", "static"); !strings.Contains(out, "10.50.0.0/16 dev d0") {
		t.Errorf("foreign route gone: %q", out)
	}

	for _, r := range []dataplane.Route{want[0], want[2]} {
		if err := k.DeleteRoute(testTable, r); err != nil {
			t.Fatal(err)
		}
		if err := k.DeleteRoute(testTable, r); err != nil {
			t.Errorf("second DeleteRoute: %v", err)
		}
	}
	got, _ = k.Routes(testTable)
	if len(got) != 1 || got[0] != changed {
		t.Errorf("after delete: %+v, want only %+v", got, changed)
	}

	err = k.ReplaceRoute(testTable, dataplane.Route{Dst: netip.MustParsePrefix("10.9.0.0/16"), Dev: "nosuch0"})
	if err == nil || !strings.Contains(err.Error(), "add route 10.9.0.0/16 dev nosuch0 table 51820") {
		t.Errorf("error for a missing device: %v", err)
	}
}

func TestRules(t *testing.T) {
	requireRoot(t)
	ns := newNS(t)
	k := newKernel(t, ns)
	// A rule of another owner with the same priority and table.
	inNS(t, ns, "ip", "rule", "add", "priority", "100", "lookup", "51820")

	r := dataplane.Rule{Priority: 100, Table: testTable}
	for range 2 {
		if err := k.AddRule(r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := k.Rules()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []dataplane.Rule{r}) {
		t.Errorf("Rules = %+v, want [%+v]", got, r)
	}
	t.Logf("ip rule:\n%s", inNS(t, ns, "ip", "rule"))
	for range 2 {
		if err := k.DeleteRule(r); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := k.Rules(); len(got) != 0 {
		t.Errorf("Rules after delete = %+v", got)
	}
	if out := inNS(t, ns, "ip", "rule"); !strings.Contains(out, "100:\tfrom all lookup 51820") {
		t.Errorf("foreign rule gone:\n%s", out)
	}
}
