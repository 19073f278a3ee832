package mcs

import (
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

const (
	ipv4 = corev1.IPv4Protocol
	ipv6 = corev1.IPv6Protocol
)

func TestFamiliesOf(t *testing.T) {
	for _, tt := range []struct {
		cidrs []string
		want  []corev1.IPFamily
	}{
		{nil, nil},
		{[]string{"10.96.0.0/16"}, []corev1.IPFamily{ipv4}},
		{[]string{"fd00:96::/108", "10.96.0.0/16"}, []corev1.IPFamily{ipv6, ipv4}},
		{[]string{"10.96.0.0/16", "10.97.0.0/16", "fd00:96::/108"}, []corev1.IPFamily{ipv4, ipv6}},
	} {
		var ps []netip.Prefix
		for _, c := range tt.cidrs {
			ps = append(ps, netip.MustParsePrefix(c))
		}
		if got := FamiliesOf(ps); !slices.Equal(got, tt.want) {
			t.Errorf("FamiliesOf(%v) = %v, want %v", tt.cidrs, got, tt.want)
		}
	}
}

func TestForFamilies(t *testing.T) {
	fams := func(f ...corev1.IPFamily) []corev1.IPFamily { return f }
	for _, tt := range []struct {
		name            string
		imp, cluster    []corev1.IPFamily
		want            []corev1.IPFamily
		wantOK, derives bool
	}{
		{"unknown cluster families keep the import's", fams(ipv6, ipv4), nil, fams(ipv6, ipv4), true, true},
		{"no import families take the cluster's default", nil, fams(ipv4), nil, true, true},
		{"dual-stack IPv6 first into IPv4-only", fams(ipv6, ipv4), fams(ipv4), fams(ipv4), true, true},
		{"dual-stack into IPv6-only", fams(ipv4, ipv6), fams(ipv6), fams(ipv6), true, true},
		{"dual-stack into dual-stack keeps the import's order", fams(ipv6, ipv4), fams(ipv4, ipv6), fams(ipv6, ipv4), true, true},
		{"IPv6-only into IPv4-only has no clusterset IP", fams(ipv6), fams(ipv4), fams(ipv6), false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			imp := Merge([]Export{exp("c1", 0, func(e *Export) { e.IPFamilies = slices.Clone(tt.imp) })})
			before := slices.Clone(imp.Spec.IPFamilies)
			got, ok := ForFamilies(imp, tt.cluster)
			if ok != tt.wantOK || !slices.Equal(got.Spec.IPFamilies, tt.want) {
				t.Fatalf("ForFamilies(%v, %v) = %v, %v; want %v, %v", tt.imp, tt.cluster, got.Spec.IPFamilies, ok, tt.want, tt.wantOK)
			}
			if !slices.Equal(imp.Spec.IPFamilies, before) {
				t.Errorf("the import passed in was changed: %v", imp.Spec.IPFamilies)
			}
			if ok {
				svc := DerivedService(got, "shop", "cart")
				if !slices.Equal(svc.Spec.IPFamilies, tt.want) {
					t.Errorf("derived Service families %v, want %v", svc.Spec.IPFamilies, tt.want)
				}
			}
		})
	}
}
