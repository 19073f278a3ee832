package mcs

import (
	"net/netip"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
)

func TestWithinRanges(t *testing.T) {
	e := Export{Cluster: "c2", Slices: []Slice{
		{AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []Endpoint{
			{Addresses: []string{"10.2.0.10"}},
			{Addresses: []string{"10.1.0.10"}},       // the importer's own pod range
			{Addresses: []string{"169.254.169.254"}}, // never accepted
			{Addresses: []string{"10.2.0.11", "10.9.0.1"}},
		}},
		{AddressType: discoveryv1.AddressTypeIPv6, Endpoints: []Endpoint{{Addresses: []string{"fd00:10:2::10"}}}},
	}}
	got, dropped := e.WithinRanges([]netip.Prefix{netip.MustParsePrefix("10.2.0.0/16"), netip.MustParsePrefix("fd00:10:2::/48")})
	if dropped != 3 {
		t.Errorf("dropped %d endpoints, want 3", dropped)
	}
	if n := len(got.Slices[0].Endpoints); n != 1 || got.Slices[0].Endpoints[0].Addresses[0] != "10.2.0.10" {
		t.Errorf("kept %v", got.Slices[0].Endpoints)
	}
	if n := len(got.Slices[1].Endpoints); n != 1 {
		t.Errorf("IPv6 kept %v", got.Slices[1].Endpoints)
	}
	if len(e.Slices[0].Endpoints) != 4 {
		t.Error("the export given was changed")
	}
	if _, dropped := e.WithinRanges(nil); dropped != 5 {
		t.Errorf("with no accepted range, dropped %d, want all 5", dropped)
	}
}
