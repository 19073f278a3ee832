package claims

import (
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func pfx(s string) []netip.Prefix {
	var out []netip.Prefix
	for _, f := range strings.Fields(s) {
		out = append(out, netip.MustParsePrefix(f))
	}
	return out
}

// describe renders a decision as "accepted | refused-range:Reason ...".
func describe(d Decision) string {
	var parts []string
	for _, p := range d.Accepted {
		parts = append(parts, p.String())
	}
	parts = append(parts, "|")
	for _, r := range d.Refused {
		parts = append(parts, r.Prefix.String()+":"+string(r.Reason))
	}
	return strings.Join(parts, " ")
}

var lab = []Protected{
	{Prefix: netip.MustParsePrefix("172.28.1.0/24"), Reason: ReasonNodeNetwork, What: "node network of eth0"},
	{Prefix: netip.MustParsePrefix("172.28.2.10/32"), Reason: ReasonPeerEndpoint, What: "endpoint of cluster c2"},
	{Prefix: netip.MustParsePrefix("100.96.0.0/16"), Reason: ReasonTunnelRange, What: "tunnel range"},
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name, allowed, claims, want string
	}{
		{"inside", "10.2.0.0/16 10.102.0.0/16", "10.2.0.0/16 10.102.0.0/24", "10.2.0.0/16 10.102.0.0/24 |"},
		{"empty allowed accepts nothing", "", "10.2.0.0/16", "| 10.2.0.0/16:NoAllowedCIDRs"},
		{"outside", "10.3.0.0/16", "10.2.0.0/16 10.3.0.0/16", "10.3.0.0/16 | 10.2.0.0/16:OutsideAllowedCIDRs"},
		{"wider than allowed", "10.3.0.0/16", "10.3.0.0/15", "| 10.2.0.0/15:OutsideAllowedCIDRs"},
		{"too wide even if allowed", "0.0.0.0/0", "0.0.0.0/5 10.0.0.0/7 10.0.0.0/8", "10.0.0.0/8 | 0.0.0.0/5:TooWide 10.0.0.0/7:TooWide"},
		{"ipv6 too wide", "::/0", "fd00::/31 fd00::/32", "fd00::/32 | fd00::/31:TooWide"},
		{"this network", "0.0.0.0/0", "0.0.0.0/8", "| 0.0.0.0/8:Unspecified"},
		{"loopback", "0.0.0.0/0 ::/0", "127.0.0.1/32 ::1/128", "| 127.0.0.1/32:Loopback ::1/128:Loopback"},
		{"metadata address", "0.0.0.0/0", "169.254.169.254/32", "| 169.254.169.254/32:LinkLocal"},
		{"ipv6 link-local", "::/0", "fe80::/64", "| fe80::/64:LinkLocal"},
		{"multicast", "0.0.0.0/0 ::/0", "239.0.0.0/8 ff02::1/128", "| 239.0.0.0/8:Multicast ff02::1/128:Multicast"},
		{"node network, wider", "172.16.0.0/12", "172.28.0.0/16", "| 172.28.0.0/16:NodeNetwork"},
		{"node network, inside", "172.16.0.0/12", "172.28.1.128/25", "| 172.28.1.128/25:NodeNetwork"},
		{"peer endpoint", "172.16.0.0/12", "172.28.2.0/24", "| 172.28.2.0/24:PeerEndpoint"},
		{"tunnel range", "100.64.0.0/10", "100.96.5.0/24 100.97.0.0/16", "100.97.0.0/16 | 100.96.5.0/24:TunnelRange"},
		{"host bits masked, duplicates once", "10.2.0.0/16", "10.2.0.7/16 10.2.0.0/16", "10.2.0.0/16 |"},
		{"no claims", "10.2.0.0/16", "", "|"},
		{"equal is inside", "10.2.0.0/16", "10.2.0.0/16", "10.2.0.0/16 |"},
		{"other family is outside", "10.0.0.0/8", "fd00:2::/48", "| fd00:2::/48:OutsideAllowedCIDRs"},
		{"ipv4 is not inside an ipv6 bound", "::/0", "10.2.0.0/16", "| 10.2.0.0/16:OutsideAllowedCIDRs"},
		{"ipv6 inside", "fd00::/16", "fd00:2::/48", "fd00:2::/48 |"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := describe(Check(Claimer{Name: "c3", Allowed: pfx(tt.allowed), Claims: pfx(tt.claims)}, lab))
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name string
		in   Inputs
		want map[string]string
	}{
		{
			name: "a refused claim is no overlap",
			in: Inputs{Self: "c1", SelfRanges: pfx("10.1.0.0/16"), Claimers: []Claimer{
				{Name: "c2", Allowed: pfx("10.2.0.0/16"), Claims: pfx("10.2.0.0/16")},
				{Name: "c3", Allowed: pfx("10.3.0.0/16"), Claims: pfx("10.2.0.0/16 10.3.0.0/16")},
			}},
			want: map[string]string{"c1": "|", "c2": "10.2.0.0/16 |", "c3": "10.3.0.0/16 | 10.2.0.0/16:OutsideAllowedCIDRs"},
		},
		{
			name: "two accepted claims that overlap are both refused",
			in: Inputs{Self: "c1", SelfRanges: pfx("10.1.0.0/16"), Claimers: []Claimer{
				{Name: "c2", Allowed: pfx("10.0.0.0/8"), Claims: pfx("10.2.0.0/16")},
				{Name: "c3", Allowed: pfx("10.2.0.0/16"), Claims: pfx("10.2.5.0/24")},
			}},
			want: map[string]string{"c1": "|", "c2": "| 10.2.0.0/16:Overlap", "c3": "| 10.2.5.0/24:Overlap"},
		},
		{
			name: "a claim over this cluster's own range is refused, this cluster's range stays",
			in: Inputs{Self: "c1", SelfRanges: pfx("10.1.0.0/16"), Claimers: []Claimer{
				{Name: "c2", Allowed: pfx("10.0.0.0/8"), Claims: pfx("10.0.0.0/8")},
			}},
			want: map[string]string{"c1": "|", "c2": "| 10.0.0.0/8:Overlap"},
		},
		{
			name: "the excess of a long list is refused",
			in: Inputs{Self: "c1", Claimers: []Claimer{
				{Name: "c2", Allowed: pfx("10.0.0.0/8"), Claims: pfx("10.2.0.0/16"), Excess: pfx("10.9.0.0/16")},
			}},
			want: map[string]string{"c1": "|", "c2": "10.2.0.0/16 | 10.9.0.0/16:TooMany"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(tt.in)
			for name, want := range tt.want {
				if g := describe(got[name]); g != want {
					t.Errorf("%s: got  %s\nwant %s", name, g, want)
				}
			}
		})
	}
}

// Overlaps are reported on both sides, this cluster's included, so the
// operator can name them in the CIDRConflict condition of each.
func TestDecideReportsOverlapsOnBothSides(t *testing.T) {
	got := Decide(Inputs{Self: "c1", SelfRanges: pfx("10.1.0.0/16"), Claimers: []Claimer{
		{Name: "c2", Allowed: pfx("10.0.0.0/8"), Claims: pfx("10.1.0.0/24")},
	}})
	if len(got["c1"].Overlaps) != 1 || got["c1"].Overlaps[0].Other != "c2" {
		t.Errorf("c1 overlaps = %+v, want one with c2", got["c1"].Overlaps)
	}
	if len(got["c2"].Overlaps) != 1 || got["c2"].Overlaps[0].Other != "c1" {
		t.Errorf("c2 overlaps = %+v, want one with c1", got["c2"].Overlaps)
	}
}

func TestLimit(t *testing.T) {
	var list []netip.Prefix
	for i := range 256 {
		list = append(list, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16))
	}
	slices.Reverse(list)
	kept, excess := Limit(list)
	if len(kept) != MaxPerList || len(excess) != 256-MaxPerList {
		t.Fatalf("Limit(256) kept %d, excess %d", len(kept), len(excess))
	}
	if kept[0] != netip.MustParsePrefix("10.0.0.0/16") {
		t.Errorf("kept is not sorted: starts with %s", kept[0])
	}
	if k, e := Limit(list[:3]); len(k) != 3 || e != nil {
		t.Errorf("Limit(3) = %v, %v", k, e)
	}
}

// MaxPerList must be the CRD's maxItems of status.podCIDRs and
// status.serviceCIDRs: a longer list would fail every status write.
func TestMaxPerListIsTheCRDsMaxItems(t *testing.T) {
	raw, err := os.ReadFile("../../charts/wirespan/files/crds/wirespan.io_clusterpeers.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema struct {
						Properties map[string]struct {
							Properties map[string]struct {
								MaxItems *int `json:"maxItems"`
							} `json:"properties"`
						} `json:"properties"`
					} `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"podCIDRs", "serviceCIDRs"} {
		got := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["status"].Properties[field].MaxItems
		if got == nil || *got != MaxPerList {
			t.Errorf("status.%s maxItems = %v, want MaxPerList = %d", field, got, MaxPerList)
		}
	}
}
