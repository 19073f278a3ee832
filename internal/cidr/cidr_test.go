package cidr

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func prefixes(t *testing.T, s string) []netip.Prefix {
	t.Helper()
	if s == "" {
		return nil
	}
	var out []netip.Prefix
	for _, f := range strings.Fields(s) {
		out = append(out, netip.MustParsePrefix(f))
	}
	return out
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"one", "10.0.0.0/24", "10.0.0.0/24"},
		{"duplicates", "10.0.0.0/24 10.0.0.0/24", "10.0.0.0/24"},
		{"siblings join", "10.0.1.0/24 10.0.0.0/24", "10.0.0.0/23"},
		{"join cascades", "10.0.0.0/24 10.0.1.0/24 10.0.2.0/24 10.0.3.0/24", "10.0.0.0/22"},
		{"gap is not claimed", "10.0.0.0/24 10.0.2.0/24", "10.0.0.0/24 10.0.2.0/24"},
		{"three of four stay apart", "10.0.0.0/24 10.0.1.0/24 10.0.2.0/24", "10.0.0.0/23 10.0.2.0/24"},
		{"adjacent but not siblings", "10.0.1.0/24 10.0.2.0/24", "10.0.1.0/24 10.0.2.0/24"},
		{"contained dropped", "10.0.0.0/16 10.0.5.0/24 10.0.0.0/24", "10.0.0.0/16"},
		{"host bits masked", "10.0.0.7/24", "10.0.0.0/24"},
		{"different sizes do not join", "10.0.0.0/24 10.0.1.0/25", "10.0.0.0/24 10.0.1.0/25"},
		{"half then quarter", "10.0.0.0/25 10.0.0.128/26 10.0.0.192/26", "10.0.0.0/24"},
		{"everything", "0.0.0.0/1 128.0.0.0/1", "0.0.0.0/0"},
		{"ipv6 siblings", "fd00:10::/64 fd00:10:0:1::/64", "fd00:10::/63"},
		{"ipv6 gap", "fd00:10::/64 fd00:10:0:2::/64", "fd00:10::/64 fd00:10:0:2::/64"},
		{"dual stack sorted v4 first", "fd00::/64 10.0.0.0/24 fd00:0:0:1::/64 10.0.1.0/24", "10.0.0.0/23 fd00::/63"},
		{"families never join", "0.0.0.0/1 ::/1", "0.0.0.0/1 ::/1"},
		{"single hosts", "10.0.0.0/32 10.0.0.1/32 10.0.0.3/32", "10.0.0.0/31 10.0.0.3/32"},
		{"kind-style node ranges", "10.244.0.0/24 10.244.1.0/24 10.244.2.0/24 10.244.3.0/24 10.244.4.0/24", "10.244.0.0/22 10.244.4.0/24"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Summarize(prefixes(t, tt.in))
			want := prefixes(t, tt.want)
			if !slices.Equal(got, want) {
				t.Fatalf("Summarize(%s) = %v, want %v", tt.in, got, want)
			}
			// Summarising must neither gain nor lose an address: every
			// input is inside some output, every output is exactly covered.
			for _, in := range prefixes(t, tt.in) {
				if !slices.ContainsFunc(got, func(o netip.Prefix) bool { return Contains(o, in.Masked()) }) {
					t.Errorf("input %s not covered by %v", in, got)
				}
			}
		})
	}
}

func TestParse(t *testing.T) {
	good := []string{"10.0.0.0/8", "fd00::/8", "0.0.0.0/0", "192.168.1.1/32", " 10.1.0.0/16 "}
	if _, err := Parse(good); err != nil {
		t.Fatalf("Parse(%v): %v", good, err)
	}
	bad := map[string]string{
		"10.0.0.1/8":  "host bits set (did you mean 10.0.0.0/8?)",
		"10.0.0.0/33": "not a CIDR",
		"10.0.0.0":    "not a CIDR",
		"fd00::1/8":   "did you mean fd00::/8?",
		"":            "not a CIDR",
		"garbage":     "not a CIDR",
	}
	for in, want := range bad {
		_, err := ParseOne(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseOne(%q) error = %v, want it to contain %q", in, err, want)
		}
	}
	list, err := ParseList("10.0.0.0/16,fd00::/48")
	if err != nil || len(list) != 2 {
		t.Fatalf("ParseList: %v %v", list, err)
	}
	if list, err := ParseList("  "); err != nil || list != nil {
		t.Fatalf("ParseList(blank) = %v, %v; want empty", list, err)
	}
	if _, err := ParseList("10.0.0.0/16,"); err == nil {
		t.Fatal("ParseList with empty element: want error")
	}
}

func TestOverlaps(t *testing.T) {
	ranges := map[string][]netip.Prefix{
		"a": prefixes(t, "10.1.0.0/16 10.96.0.0/12 fd00:a::/48"),
		"b": prefixes(t, "10.1.128.0/17 10.200.0.0/16"),
		"c": prefixes(t, "10.100.0.0/16 fd00::/16"),
		"d": prefixes(t, "172.16.0.0/16"),
		"e": nil,
	}
	got := Overlaps(ranges)
	want := map[string][]Overlap{
		"a": {
			{netip.MustParsePrefix("10.1.0.0/16"), "b", netip.MustParsePrefix("10.1.128.0/17")},
			{netip.MustParsePrefix("10.96.0.0/12"), "c", netip.MustParsePrefix("10.100.0.0/16")},
			{netip.MustParsePrefix("fd00:a::/48"), "c", netip.MustParsePrefix("fd00::/16")},
		},
		"b": {{netip.MustParsePrefix("10.1.128.0/17"), "a", netip.MustParsePrefix("10.1.0.0/16")}},
		"c": {
			{netip.MustParsePrefix("10.100.0.0/16"), "a", netip.MustParsePrefix("10.96.0.0/12")},
			{netip.MustParsePrefix("fd00::/16"), "a", netip.MustParsePrefix("fd00:a::/48")},
		},
	}
	if len(got) != len(want) {
		t.Fatalf("Overlaps reported peers %v, want %v", keys(got), keys(want))
	}
	for name, w := range want {
		if !slices.Equal(got[name], w) {
			t.Errorf("Overlaps[%s] = %v, want %v", name, got[name], w)
		}
	}
}

func TestOverlapsIgnoresSamePeer(t *testing.T) {
	got := Overlaps(map[string][]netip.Prefix{"a": prefixes(t, "10.0.0.0/8 10.1.0.0/16")})
	if len(got) != 0 {
		t.Fatalf("a peer's own ranges reported as overlapping: %v", got)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
