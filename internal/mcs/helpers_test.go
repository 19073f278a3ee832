package mcs

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
)

// t0 is an arbitrary instant; exports are created at t0 plus seconds.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

var svcName = types.NamespacedName{Namespace: "shop", Name: "cart"}

// exp is an Export of svcName by cluster, created at(sec), ClusterSetIP,
// with one port "http" 80/TCP and IPv4, changed by mods.
func exp(cluster string, sec int, mods ...func(*Export)) Export {
	e := Export{
		Cluster:         cluster,
		Service:         svcName,
		Created:         at(sec),
		Type:            mcsv1beta1.ClusterSetIP,
		Ports:           []mcsv1beta1.ServicePort{sp("http", "TCP", 80)},
		SessionAffinity: corev1.ServiceAffinityNone,
		IPFamilies:      []corev1.IPFamily{corev1.IPv4Protocol},
	}
	for _, m := range mods {
		if m != nil {
			m(&e)
		}
	}
	return e
}

func withPorts(ps ...mcsv1beta1.ServicePort) func(*Export) {
	return func(e *Export) { e.Ports = ps }
}

func withSlices(ss ...Slice) func(*Export) {
	return func(e *Export) { e.Slices = ss }
}

// sp is a ServicePort; proto may be "".
func sp(name string, proto corev1.Protocol, port int32) mcsv1beta1.ServicePort {
	return mcsv1beta1.ServicePort{Name: name, Protocol: proto, Port: port}
}

// epPort is an EndpointPort name proto/port, canonical.
func epPort(name string, proto corev1.Protocol, port int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptr(name), Protocol: ptr(proto), Port: ptr(port)}
}

// ready is a ready endpoint at addr.
func ready(addr string) Endpoint {
	return Endpoint{Addresses: []string{addr}, Ready: true, Serving: true}
}

// v4 is an IPv4 Slice of ready endpoints at addrs with ports.
func v4(ports []discoveryv1.EndpointPort, addrs ...string) Slice {
	s := Slice{AddressType: discoveryv1.AddressTypeIPv4, Ports: ports}
	for _, a := range addrs {
		s.Endpoints = append(s.Endpoints, ready(a))
	}
	return s
}

// addrs returns n IPv4 addresses from base 10.<b>.x.y.
func addrs(b, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.%d.%d.%d", b, i/250, i%250+1)
	}
	return out
}

// sameJSON fails the test if got and want differ, showing both as JSON.
func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.MarshalIndent(want, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if string(g) != string(w) {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func contains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s %q does not contain %q", what, s, sub)
		}
	}
}

// permutations calls f with every order of n indexes.
func permutations(n int, f func([]int)) {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	var rec func(k int)
	rec = func(k int) {
		if k == n {
			f(append([]int(nil), idx...))
			return
		}
		for i := k; i < n; i++ {
			idx[k], idx[i] = idx[i], idx[k]
			rec(k + 1)
			idx[k], idx[i] = idx[i], idx[k]
		}
	}
	rec(0)
}
