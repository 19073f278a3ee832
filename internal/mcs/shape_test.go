package mcs

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/wirespan/wirespan/apis/v1alpha1"
)

var (
	long63  = "a" + strings.Repeat("b", 61) + "c"
	long63b = "a" + strings.Repeat("b", 61) + "d" // shares 62 characters with long63
)

func TestDerivedServiceName(t *testing.T) {
	seen := map[string]string{}
	for _, name := range []string{"cart", "a", "x-", long63, long63b, strings.Repeat("z", 48), "UPPER.dots"} {
		got := DerivedServiceName(name)
		if errs := validation.IsDNS1035Label(got); len(errs) > 0 {
			t.Errorf("DerivedServiceName(%q) = %q: %v", name, got, errs)
		}
		if got == name || got != DerivedServiceName(name) {
			t.Errorf("DerivedServiceName(%q) = %q", name, got)
		}
		if other, ok := seen[got]; ok {
			t.Errorf("%q and %q derive the same name %q", name, other, got)
		}
		seen[got] = name
	}
	if got := DerivedServiceName("cart"); !strings.HasPrefix(got, "mcs-cart-") || len(got) != len("mcs-cart-")+10 {
		t.Errorf("DerivedServiceName(cart) = %q", got)
	}
}

func TestEndpointSliceName(t *testing.T) {
	seen := map[string]bool{}
	for _, name := range []string{"cart", long63, long63b} {
		for _, cluster := range []string{"c1", long63, long63b, "name.registry"} {
			for _, at := range []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6} {
				for _, i := range []int{0, 9999} {
					got := endpointSliceName(name, cluster, at, i)
					if errs := validation.IsDNS1123Label(got); len(errs) > 0 {
						t.Errorf("endpointSliceName(%q, %q, %s, %d) = %q: %v", name, cluster, at, i, got, errs)
					}
					if seen[got] {
						t.Errorf("name %q given twice", got)
					}
					seen[got] = true
				}
			}
		}
	}
	if got, want := endpointSliceName("cart", "c1", discoveryv1.AddressTypeIPv6, 2), "mcs-cart-c1-"; !strings.HasPrefix(got, want) ||
		!strings.HasSuffix(got, "-v6-2") {
		t.Errorf("endpointSliceName = %q", got)
	}
}

func TestPortNames(t *testing.T) {
	tests := []struct {
		name  string
		ports []mcsv1beta1.ServicePort
		want  []string
	}{
		{"none", nil, []string{}},
		{"single unnamed keeps no name", []mcsv1beta1.ServicePort{sp("", "TCP", 80)}, []string{""}},
		{"named kept", []mcsv1beta1.ServicePort{sp("dns", "UDP", 53), sp("http", "TCP", 80)}, []string{"dns", "http"}},
		{"unnamed among several", []mcsv1beta1.ServicePort{sp("dns", "UDP", 53), sp("", "TCP", 80)}, []string{"dns", "tcp-80"}},
		{"derived name taken", []mcsv1beta1.ServicePort{sp("tcp-80", "TCP", 8080), sp("", "TCP", 80)}, []string{"tcp-80", "tcp-80-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := portNames(tt.ports); !slices.Equal(got, tt.want) {
				t.Errorf("portNames = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestServiceImport(t *testing.T) {
	imp := Merge([]Export{
		exp("c2", 1, withPorts(sp("grpc", "TCP", 9090))),
		exp("c1", 0, func(e *Export) {
			e.Labels = map[string]string{"team": "shop", v1alpha1.LabelManagedBy: "helm"}
			e.Annotations = map[string]string{"note": "x"}
			e.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
		}),
	})
	got := ServiceImport(imp, "shop", "cart")
	want := &mcsv1beta1.ServiceImport{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "shop", Name: "cart",
			Labels:      map[string]string{"team": "shop", v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue},
			Annotations: map[string]string{"note": "x"},
		},
		Spec: mcsv1beta1.ServiceImportSpec{
			Type:            mcsv1beta1.ClusterSetIP,
			Ports:           []mcsv1beta1.ServicePort{sp("http", "TCP", 80), sp("grpc", "TCP", 9090)},
			SessionAffinity: corev1.ServiceAffinityNone,
			IPFamilies:      []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol},
		},
		Status: mcsv1beta1.ServiceImportStatus{
			EndpointSliceObjects: mcsv1beta1.EndpointSliceObjectsPresent,
			Clusters:             []mcsv1beta1.ClusterStatus{{Cluster: "c1"}, {Cluster: "c2"}},
		},
	}
	sameJSON(t, "ServiceImport", got, want)
	got.Spec.Ports[0].Name = "changed"
	if imp.Spec.Ports[0].Name != "http" {
		t.Error("ServiceImport aliases the Import")
	}
}

func TestDerivedService(t *testing.T) {
	base := func(mods ...func(*Export)) Import { return Merge([]Export{exp("c1", 0, mods...)}) }
	tests := []struct {
		name string
		imp  Import
		want func(*corev1.ServiceSpec)
	}{
		{"defaults written out", base(), func(*corev1.ServiceSpec) {}},
		{"unnamed port among several gets a name", base(withPorts(sp("", "TCP", 80), sp("dns", "UDP", 53))), func(s *corev1.ServiceSpec) {
			s.Ports = []corev1.ServicePort{
				{Name: "dns", Protocol: "UDP", Port: 53, TargetPort: intstr.FromInt32(53)},
				{Name: "tcp-80", Protocol: "TCP", Port: 80, TargetPort: intstr.FromInt32(80)},
			}
		}},
		{"single unnamed port", base(withPorts(mcsv1beta1.ServicePort{Protocol: "TCP", Port: 80, AppProtocol: ptr("http")})), func(s *corev1.ServiceSpec) {
			s.Ports = []corev1.ServicePort{{Protocol: "TCP", Port: 80, AppProtocol: ptr("http"), TargetPort: intstr.FromInt32(80)}}
		}},
		{"dual stack prefers dual stack", base(func(e *Export) {
			e.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
		}), func(s *corev1.ServiceSpec) {
			s.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
			s.IPFamilyPolicy = ptr(corev1.IPFamilyPolicyPreferDualStack)
		}},
		{"no families leaves the cluster's default", base(func(e *Export) { e.IPFamilies = nil }), func(s *corev1.ServiceSpec) {
			s.IPFamilies, s.IPFamilyPolicy = nil, nil
		}},
		{"client IP affinity with default timeout", base(func(e *Export) { e.SessionAffinity = corev1.ServiceAffinityClientIP }), func(s *corev1.ServiceSpec) {
			s.SessionAffinity = corev1.ServiceAffinityClientIP
			s.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr[int32](10800)}}
		}},
		{"traffic properties copied", base(func(e *Export) {
			e.SessionAffinity = corev1.ServiceAffinityClientIP
			e.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr[int32](60)}}
			e.InternalTrafficPolicy = ptr(corev1.ServiceInternalTrafficPolicyLocal)
			e.TrafficDistribution = ptr(corev1.ServiceTrafficDistributionPreferSameZone)
		}), func(s *corev1.ServiceSpec) {
			s.SessionAffinity = corev1.ServiceAffinityClientIP
			s.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr[int32](60)}}
			s.InternalTrafficPolicy = ptr(corev1.ServiceInternalTrafficPolicyLocal)
			s.TrafficDistribution = ptr(corev1.ServiceTrafficDistributionPreferSameZone)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{
					Namespace: "shop", Name: DerivedServiceName("cart"),
					Labels: map[string]string{mcsv1beta1.LabelServiceName: "cart", v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue},
				},
				Spec: corev1.ServiceSpec{
					Type:                  corev1.ServiceTypeClusterIP,
					Ports:                 []corev1.ServicePort{{Name: "http", Protocol: "TCP", Port: 80, TargetPort: intstr.FromInt32(80)}},
					SessionAffinity:       corev1.ServiceAffinityNone,
					IPFamilies:            []corev1.IPFamily{corev1.IPv4Protocol},
					IPFamilyPolicy:        ptr(corev1.IPFamilyPolicySingleStack),
					InternalTrafficPolicy: ptr(corev1.ServiceInternalTrafficPolicyCluster),
				},
			}
			tt.want(&want.Spec)
			sameJSON(t, "Service", DerivedService(tt.imp, "shop", "cart"), want)
		})
	}
	if s := DerivedService(base(func(e *Export) { e.Type = mcsv1beta1.Headless }), "shop", "cart"); s != nil {
		t.Errorf("Headless import has a derived Service: %+v", s)
	}
}

// sliceSummary shows an EndpointSlice in one line: name, labels that
// matter, address type, ports and endpoint addresses.
func sliceSummary(s *discoveryv1.EndpointSlice) string {
	var ports []string
	for _, p := range s.Ports {
		ports = append(ports, fmt.Sprintf("%s=%d/%s", deref(p.Name), deref(p.Port), deref(p.Protocol)))
	}
	var eps []string
	for _, e := range s.Endpoints {
		eps = append(eps, e.Addresses[0])
	}
	if len(eps) > 3 {
		eps = append(eps[:2], fmt.Sprintf("...%d", len(eps)))
	}
	return fmt.Sprintf("%s %s svc=%s %s [%s] [%s]", strings.TrimPrefix(s.Name, "mcs-cart-"),
		s.Labels[mcsv1beta1.LabelSourceCluster], s.Labels[discoveryv1.LabelServiceName],
		s.AddressType, strings.Join(ports, " "), strings.Join(eps, " "))
}

func TestEndpointSlices(t *testing.T) {
	web := []discoveryv1.EndpointPort{epPort("http", "TCP", 8080)}
	derived := DerivedServiceName("cart")
	headless := func(e *Export) { e.Type = mcsv1beta1.Headless }
	tests := []struct {
		name    string
		exports []Export
		want    []string // sliceSummary of each, hash replaced by H
	}{
		{"one slice per cluster, own target ports", []Export{
			exp("c1", 0, withSlices(v4(web, "10.1.0.2", "10.1.0.1"))),
			exp("c2", 1, withSlices(v4([]discoveryv1.EndpointPort{epPort("http", "TCP", 9000)}, "10.2.0.1"))),
		}, []string{
			"c1-H-v4-0 c1 svc=D IPv4 [http=8080/TCP] [10.1.0.1 10.1.0.2]",
			"c2-H-v4-0 c2 svc=D IPv4 [http=9000/TCP] [10.2.0.1]",
		}},
		{"a port only one cluster serves is listed only there", []Export{
			exp("c1", 0, withPorts(sp("http", "TCP", 80), sp("", "UDP", 53)),
				withSlices(v4([]discoveryv1.EndpointPort{epPort("http", "TCP", 8080), epPort("", "UDP", 5353)}, "10.1.0.1"))),
			exp("c2", 1, withSlices(v4(web, "10.2.0.1"))),
		}, []string{
			"c1-H-v4-0 c1 svc=D IPv4 [http=8080/TCP udp-53=5353/UDP] [10.1.0.1]",
			"c2-H-v4-0 c2 svc=D IPv4 [http=8080/TCP] [10.2.0.1]",
		}},
		{"port merged by number carries the derived name", []Export{
			exp("c1", 0, withSlices(v4(web, "10.1.0.1"))),
			exp("c2", 1, withPorts(sp("web", "TCP", 80)), withSlices(v4([]discoveryv1.EndpointPort{epPort("web", "TCP", 7000)}, "10.2.0.1"))),
		}, []string{
			"c1-H-v4-0 c1 svc=D IPv4 [http=8080/TCP] [10.1.0.1]",
			"c2-H-v4-0 c2 svc=D IPv4 [http=7000/TCP] [10.2.0.1]",
		}},
		{"a cluster serving no port gets no slice", []Export{
			exp("c1", 0, withSlices(v4(web, "10.1.0.1"))),
			exp("c2", 1, withPorts(sp("http", "UDP", 80)), withSlices(v4([]discoveryv1.EndpointPort{epPort("http", "UDP", 80)}, "10.2.0.1"))),
		}, []string{"c1-H-v4-0 c1 svc=D IPv4 [http=8080/TCP] [10.1.0.1]"}},
		{"exports without endpoints", []Export{exp("c1", 0), exp("c2", 1)}, nil},
		{"split by 100, per family", []Export{
			exp("c1", 0, withSlices(v4(web, addrs(1, 250)...), Slice{AddressType: discoveryv1.AddressTypeIPv6, Ports: web,
				Endpoints: []Endpoint{ready("fd00::2"), ready("fd00::1")}})),
		}, []string{
			"c1-H-v4-0 c1 svc=D IPv4 [http=8080/TCP] [10.1.0.1 10.1.0.2 ...100]",
			"c1-H-v4-1 c1 svc=D IPv4 [http=8080/TCP] [10.1.0.101 10.1.0.102 ...100]",
			"c1-H-v4-2 c1 svc=D IPv4 [http=8080/TCP] [10.1.0.201 10.1.0.202 ...50]",
			"c1-H-v6-0 c1 svc=D IPv6 [http=8080/TCP] [fd00::1 fd00::2]",
		}},
		{"slices differing only in ports the import lacks join", []Export{
			exp("c1", 0, withSlices(
				v4([]discoveryv1.EndpointPort{epPort("http", "TCP", 8080), epPort("debug", "TCP", 1)}, "10.1.0.2"),
				v4(web, "10.1.0.1", "10.1.0.2"))),
		}, []string{"c1-H-v4-0 c1 svc=D IPv4 [http=8080/TCP] [10.1.0.1 10.1.0.2]"}},
		{"headless: no service label, slices even without ports", []Export{
			exp("c1", 0, headless, withPorts(), withSlices(v4(nil, "10.1.0.1"))),
			exp("c2", 1, headless, withSlices(v4(web, "10.2.0.1"))),
		}, []string{
			"c1-H-v4-0 c1 svc= IPv4 [] [10.1.0.1]",
			"c2-H-v4-0 c2 svc= IPv4 [http=8080/TCP] [10.2.0.1]",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			imp := Merge(tt.exports)
			got := EndpointSlices(imp, tt.exports, "shop", "cart")
			var summary []string
			for _, s := range got {
				sum := sliceSummary(s)
				for _, c := range imp.Clusters {
					sum = strings.Replace(sum, c+"-"+shortHash(8, "cart", c), c+"-H", 1)
				}
				summary = append(summary, strings.Replace(sum, derived, "D", 1))
				checkSlice(t, s, imp)
			}
			if !slices.Equal(summary, tt.want) {
				t.Errorf("slices:\n got %q\nwant %q", summary, tt.want)
			}
			// The same slices whatever the order of exports.
			rev := slices.Clone(tt.exports)
			slices.Reverse(rev)
			if again := EndpointSlices(Merge(rev), rev, "shop", "cart"); !reflect.DeepEqual(again, got) {
				t.Error("slices depend on the order of exports")
			}
		})
	}
}

// checkSlice checks what every imported slice must have.
func checkSlice(t *testing.T, s *discoveryv1.EndpointSlice, imp Import) {
	t.Helper()
	if errs := validation.IsDNS1123Label(s.Name); len(errs) > 0 {
		t.Errorf("slice name %q: %v", s.Name, errs)
	}
	if s.Namespace != "shop" || s.Labels[mcsv1beta1.LabelServiceName] != "cart" ||
		s.Labels[discoveryv1.LabelManagedBy] != ManagedBy || s.Labels[mcsv1beta1.LabelSourceCluster] == "" {
		t.Errorf("slice %s metadata: %+v", s.Name, s.ObjectMeta)
	}
	_, hasSvc := s.Labels[discoveryv1.LabelServiceName]
	if hasSvc != (imp.Spec.Type == mcsv1beta1.ClusterSetIP) {
		t.Errorf("slice %s: kubernetes.io/service-name present %v for a %s import", s.Name, hasSvc, imp.Spec.Type)
	}
	if n := len(s.Endpoints); n == 0 || n > MaxEndpointsPerSlice {
		t.Errorf("slice %s has %d endpoints", s.Name, n)
	}
}

func TestEndpointSlicesEndpointFields(t *testing.T) {
	e := exp("c1", 0, withSlices(Slice{AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{epPort("http", "TCP", 8080)},
		Endpoints: []Endpoint{
			{Addresses: []string{"10.1.0.1"}, Hostname: "web-0", Zone: "zone-a", Ready: true, Serving: true},
			{Addresses: []string{"10.1.0.2"}, Serving: true, Terminating: true},
		}}))
	got := EndpointSlices(Merge([]Export{e}), []Export{e}, "shop", "cart")
	want := []discoveryv1.Endpoint{
		{Addresses: []string{"10.1.0.1"}, Hostname: ptr("web-0"), Zone: ptr("zone-a"),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr(true), Serving: ptr(true), Terminating: ptr(false)}},
		{Addresses: []string{"10.1.0.2"},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr(false), Serving: ptr(true), Terminating: ptr(true)}},
	}
	if len(got) != 1 {
		t.Fatalf("%d slices", len(got))
	}
	sameJSON(t, "endpoints", got[0].Endpoints, want)
}

// TestRoundTrip exports from two clusters, imports, and feeds the imported
// slices back to FromService, which must not export them again.
func TestRoundTrip(t *testing.T) {
	mk := func(cluster string, created int, addr string) Export {
		se := serviceExport()
		se.CreationTimestamp = metav1.NewTime(at(created))
		e, v, err := FromService(cluster, se, service(), []*discoveryv1.EndpointSlice{
			epSlice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr[int32](8080)}}, ep(addr, "")),
		})
		if err != nil || !v.Valid {
			t.Fatal(v, err)
		}
		return e
	}
	exports := []Export{mk("c1", 0, "10.1.0.1"), mk("c2", 1, "10.2.0.1")}
	imported := EndpointSlices(Merge(exports), exports, "shop", "cart")
	if len(imported) != 2 {
		t.Fatalf("%d slices", len(imported))
	}
	again, _, err := FromService("c1", serviceExport(), service(), imported)
	if err != nil || len(again.Slices) != 0 {
		t.Errorf("imported slices exported again: %+v, %v", again.Slices, err)
	}
}

func TestManyClustersLongNames(t *testing.T) {
	var exports []Export
	for i := range 5 {
		cluster := fmt.Sprintf("%s%d", long63[:62], i)
		e := exp(cluster, i, withSlices(v4([]discoveryv1.EndpointPort{epPort("http", "TCP", 80)}, addrs(i, 120)...)))
		e.Service.Name = long63
		exports = append(exports, e)
	}
	imp := Merge(exports)
	got := EndpointSlices(imp, exports, "shop", long63)
	if len(got) != 10 {
		t.Fatalf("%d slices, want 10", len(got))
	}
	names := map[string]bool{}
	for _, s := range got {
		if errs := validation.IsDNS1123Label(s.Name); len(errs) > 0 || names[s.Name] {
			t.Errorf("slice name %q: %v, seen before %v", s.Name, errs, names[s.Name])
		}
		names[s.Name] = true
		if errs := validation.IsValidLabelValue(s.Labels[mcsv1beta1.LabelSourceCluster]); len(errs) > 0 {
			t.Errorf("source cluster label: %v", errs)
		}
	}
	if svc := DerivedService(imp, "shop", long63); len(svc.Name) > 63 {
		t.Errorf("derived Service name %q", svc.Name)
	}
}
