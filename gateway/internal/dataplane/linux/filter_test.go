package linux

import (
	"slices"
	"strings"
	"testing"
)

func TestMSSClamp(t *testing.T) {
	requireRoot(t)
	ns := newNS(t)
	k := newKernel(t, ns)
	inNS(t, ns, "nft", "add", "table", "inet", "foreign")
	inNS(t, ns, "nft", "add", "chain", "inet", "foreign", "fw", "{ type filter hook forward priority 0; policy accept; }")

	if got, err := k.MSSClamp(); err != nil || len(got) != 0 {
		t.Fatalf("MSSClamp with no table: %v, %v", got, err)
	}
	if err := k.SetMSSClamp([]string{"wg0", "eth1", "wg0"}); err != nil {
		t.Fatal(err)
	}
	got, err := k.MSSClamp()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"eth1", "wg0"}) {
		t.Errorf("MSSClamp = %v, want [eth1 wg0]", got)
	}
	out := inNS(t, ns, "nft", "list", "table", "inet", "wirespan")
	t.Logf("nft list table inet wirespan:\n%s", out)
	for _, want := range []string{
		"type filter hook forward priority mangle; policy accept;",
		`oifname "wg0" tcp flags syn / syn,rst tcp option maxseg size set rt mtu comment "mss-clamp oifname wg0"`,
		`iifname "wg0" tcp flags syn / syn,rst tcp option maxseg size set rt mtu comment "mss-clamp iifname wg0"`,
		`oifname "eth1" tcp flags syn / syn,rst tcp option maxseg size set rt mtu comment "mss-clamp oifname eth1"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("nft output lacks %q", want)
		}
	}

	if err := k.SetMSSClamp([]string{"wg0"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := k.MSSClamp(); !slices.Equal(got, []string{"wg0"}) {
		t.Errorf("MSSClamp after replace = %v, want [wg0]", got)
	}
	if out := inNS(t, ns, "nft", "list", "table", "inet", "wirespan"); strings.Contains(out, "eth1") {
		t.Errorf("eth1 still clamped:\n%s", out)
	}

	for range 2 {
		if err := k.SetMSSClamp(nil); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := k.MSSClamp(); err != nil || len(got) != 0 {
		t.Errorf("MSSClamp after removal: %v, %v", got, err)
	}
	tables := inNS(t, ns, "nft", "list", "tables")
	if strings.Contains(tables, "wirespan") || !strings.Contains(tables, "table inet foreign") {
		t.Errorf("tables after removal:\n%s", tables)
	}
	if out := inNS(t, ns, "nft", "list", "chain", "inet", "foreign", "fw"); !strings.Contains(out, "hook forward") {
		t.Errorf("foreign chain changed:\n%s", out)
	}
	if err := k.SetMSSClamp([]string{"this-name-is-too-long"}); err == nil {
		t.Error("SetMSSClamp took a name longer than IFNAMSIZ")
	}
}
