package mcs

import (
	"errors"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
)

func TestValidateImported(t *testing.T) {
	good := func() Export {
		e := exp("west", 0)
		e.Slices = []Slice{{AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []Endpoint{{Addresses: []string{"10.2.0.1"}, Hostname: "web-0"}}}}
		return e
	}
	many := func(n int, f func(i int) mcsv1beta1.ServicePort) []mcsv1beta1.ServicePort {
		var ps []mcsv1beta1.ServicePort
		for i := range n {
			ps = append(ps, f(i))
		}
		return ps
	}
	for _, tc := range []struct {
		name   string
		change func(*Export)
		key    string // the key it came under, if not its own
		reason string // "" for valid
	}{
		{"valid", func(*Export) {}, "", ""},
		{"another cluster's name", func(e *Export) { e.Cluster = "east" }, "", RefusedName},
		{"another service's key", func(*Export) {}, "ns/other", RefusedName},
		{"bad namespace", func(e *Export) { e.Service.Namespace = "Kube_System" }, "", RefusedName},
		{"bad type", func(e *Export) { e.Type = "LoadBalancer" }, "", RefusedType},
		{"101 ports", func(e *Export) {
			e.Ports = many(101, func(i int) mcsv1beta1.ServicePort { return sp(fmt.Sprintf("p%d", i), "TCP", int32(1000+i)) })
		}, "", RefusedPorts},
		{"port 0", func(e *Export) { e.Ports = []mcsv1beta1.ServicePort{sp("http", "TCP", 0)} }, "", RefusedPorts},
		{"duplicate port name", func(e *Export) {
			e.Ports = []mcsv1beta1.ServicePort{sp("http", "TCP", 80), sp("http", "TCP", 81)}
		}, "", RefusedPorts},
		{"the same port twice, once with the protocol unset", func(e *Export) {
			e.Ports = []mcsv1beta1.ServicePort{sp("a", "", 80), sp("b", "TCP", 80)}
		}, "", RefusedPorts},
		{"unnamed among several", func(e *Export) { e.Ports = []mcsv1beta1.ServicePort{sp("", "TCP", 80), sp("b", "TCP", 81)} }, "", RefusedPorts},
		{"bad protocol", func(e *Export) { e.Ports = []mcsv1beta1.ServicePort{sp("http", "ICMP", 80)} }, "", RefusedPorts},
		{"1001 endpoints", func(e *Export) {
			var eps []Endpoint
			for i := range 1001 {
				eps = append(eps, Endpoint{Addresses: []string{fmt.Sprintf("10.2.%d.%d", i/250, i%250+1)}})
			}
			e.Slices[0].Endpoints = eps
		}, "", RefusedEndpoints},
		{"IPv6 in an IPv4 slice", func(e *Export) { e.Slices[0].Endpoints[0].Addresses = []string{"fd00::1"} }, "", RefusedEndpoints},
		{"a name, not an address", func(e *Export) { e.Slices[0].Endpoints[0].Addresses = []string{"evil.example.com"} }, "", RefusedEndpoints},
		{"cloud metadata address", func(e *Export) { e.Slices[0].Endpoints[0].Addresses = []string{"169.254.169.254"} }, "", RefusedEndpoints},
		{"loopback", func(e *Export) { e.Slices[0].Endpoints[0].Addresses = []string{"127.0.0.1"} }, "", RefusedEndpoints},
		{"FQDN slice", func(e *Export) { e.Slices[0].AddressType = discoveryv1.AddressTypeFQDN }, "", RefusedEndpoints},
		{"bad hostname", func(e *Export) { e.Slices[0].Endpoints[0].Hostname = "Web_0" }, "", RefusedEndpoints},
		{"bad IP family", func(e *Export) { e.IPFamilies = []corev1.IPFamily{"IPv5"} }, "", RefusedMetadata},
		{"bad label", func(e *Export) { e.Labels = map[string]string{"bad key!": "v"} }, "", RefusedMetadata},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := good()
			tc.change(&e)
			key := tc.key
			if key == "" {
				key = svcName.String()
			}
			err := ValidateImported(&e, "west", key)
			var re *RecordError
			switch {
			case tc.reason == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.reason != "" && !errors.As(err, &re):
				t.Errorf("got %v, want a RecordError with reason %s", err, tc.reason)
			case tc.reason != "" && re.Reason != tc.reason:
				t.Errorf("reason %s (%v), want %s", re.Reason, err, tc.reason)
			}
		})
	}
}
