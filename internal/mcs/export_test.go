package mcs

import (
	"errors"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
)

func serviceExport() *mcsv1beta1.ServiceExport {
	return &mcsv1beta1.ServiceExport{ObjectMeta: metav1.ObjectMeta{
		Namespace: "shop", Name: "cart", Generation: 3,
		CreationTimestamp: metav1.NewTime(at(0)),
	}}
}

func service(mods ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cart"},
		Spec: corev1.ServiceSpec{
			Type:      corev1.ServiceTypeClusterIP,
			ClusterIP: "10.96.0.10",
			Ports: []corev1.ServicePort{
				{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80},
			},
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
		},
	}
	for _, m := range mods {
		m(s)
	}
	return s
}

func TestFromServiceValidity(t *testing.T) {
	tests := []struct {
		name   string
		svc    *corev1.Service
		valid  bool
		reason mcsv1beta1.ServiceExportConditionReason
		typ    mcsv1beta1.ServiceImportType
	}{
		{"no service", nil, false, mcsv1beta1.ServiceExportReasonNoService, ""},
		{"external name", service(func(s *corev1.Service) {
			s.Spec.Type, s.Spec.ClusterIP, s.Spec.ExternalName = corev1.ServiceTypeExternalName, "", "db.example.com"
		}), false, mcsv1beta1.ServiceExportReasonInvalidServiceType, ""},
		{"cluster IP", service(), true, mcsv1beta1.ServiceExportReasonValid, mcsv1beta1.ClusterSetIP},
		{"headless", service(func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone }),
			true, mcsv1beta1.ServiceExportReasonValid, mcsv1beta1.Headless},
		{"node port is a ClusterSetIP", service(func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort }),
			true, mcsv1beta1.ServiceExportReasonValid, mcsv1beta1.ClusterSetIP},
		{"load balancer is a ClusterSetIP", service(func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeLoadBalancer }),
			true, mcsv1beta1.ServiceExportReasonValid, mcsv1beta1.ClusterSetIP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, v, err := FromService("c1", serviceExport(), tt.svc, nil)
			if err != nil {
				t.Fatal(err)
			}
			if v.Valid != tt.valid || v.Reason != tt.reason {
				t.Errorf("Validity = %v %s, want %v %s", v.Valid, v.Reason, tt.valid, tt.reason)
			}
			contains(t, "message", v.Message, "shop/cart")
			c := v.Condition(3)
			wantStatus := metav1.ConditionFalse
			if tt.valid {
				wantStatus = metav1.ConditionTrue
			}
			if c.Type != "Valid" || c.Status != wantStatus || c.Reason != string(tt.reason) ||
				c.ObservedGeneration != 3 || c.Message != v.Message || !c.LastTransitionTime.IsZero() {
				t.Errorf("Condition = %+v", c)
			}
			if !tt.valid {
				sameJSON(t, "Export of an invalid export", got, Export{})
				return
			}
			if got.Type != tt.typ || got.Cluster != "c1" || got.Service != svcName {
				t.Errorf("Export = %+v", got)
			}
		})
	}
}

func TestFromServiceProperties(t *testing.T) {
	se := serviceExport()
	se.Spec.ExportedLabels = map[string]string{"team": "shop"}
	se.Spec.ExportedAnnotations = map[string]string{"note": "x"}
	svc := service(func(s *corev1.Service) {
		s.Labels = map[string]string{"not": "exported"}
		s.Spec.Ports = []corev1.ServicePort{
			{Name: "http", Port: 80, AppProtocol: ptr("http")}, // protocol left to its default
			{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(5353)},
		}
		s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr[int32](60)}}
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
		s.Spec.InternalTrafficPolicy = ptr(corev1.ServiceInternalTrafficPolicyLocal)
		s.Spec.TrafficDistribution = ptr(corev1.ServiceTrafficDistributionPreferSameZone)
	})
	got, _, err := FromService("c1", se, svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Export{
		Cluster: "c1",
		Service: svcName,
		Created: at(0),
		Type:    mcsv1beta1.ClusterSetIP,
		Ports: []mcsv1beta1.ServicePort{
			{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, AppProtocol: ptr("http")},
			{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53},
		},
		SessionAffinity:       corev1.ServiceAffinityClientIP,
		SessionAffinityConfig: &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr[int32](60)}},
		IPFamilies:            []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol},
		InternalTrafficPolicy: ptr(corev1.ServiceInternalTrafficPolicyLocal),
		TrafficDistribution:   ptr(corev1.ServiceTrafficDistributionPreferSameZone),
		Labels:                map[string]string{"team": "shop"},
		Annotations:           map[string]string{"note": "x"},
	}
	sameJSON(t, "Export", got, want)
	// The Export must not alias the objects it was read from.
	*svc.Spec.SessionAffinityConfig.ClientIP.TimeoutSeconds = 1
	se.Spec.ExportedLabels["team"] = "changed"
	sameJSON(t, "Export after the sources changed", got, want)
}

// epSlice is an EndpointSlice of the Service with ports and endpoints.
func epSlice(addressType discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "shop", Labels: map[string]string{discoveryv1.LabelServiceName: "cart"}},
		AddressType: addressType,
		Ports:       ports,
		Endpoints:   eps,
	}
}

// ep is an endpoint at addr with conditions given as "r", "s", "t" for
// ready, serving, terminating: "" leaves all unset, "r1 s0" sets ready
// true and serving false.
func ep(addr, conds string) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{Addresses: []string{addr}}
	for i := 0; i+1 < len(conds); i += 3 {
		v := ptr(conds[i+1] == '1')
		switch conds[i] {
		case 'r':
			e.Conditions.Ready = v
		case 's':
			e.Conditions.Serving = v
		case 't':
			e.Conditions.Terminating = v
		}
	}
	return e
}

func TestFromServiceEndpoints(t *testing.T) {
	http := []discoveryv1.EndpointPort{{Name: ptr("http"), Protocol: ptr(corev1.ProtocolTCP), Port: ptr[int32](8080)}}
	httpCanon := []discoveryv1.EndpointPort{epPort("http", "TCP", 8080)}
	two := []discoveryv1.EndpointPort{
		{Name: ptr("metrics"), Port: ptr[int32](9090)}, // protocol left to its default
		{Name: ptr("http"), Protocol: ptr(corev1.ProtocolTCP), Port: ptr[int32](8080)},
	}
	twoCanon := []discoveryv1.EndpointPort{epPort("http", "TCP", 8080), epPort("metrics", "TCP", 9090)}
	mine := epSlice(discoveryv1.AddressTypeIPv4, http, ep("10.9.0.1", ""))
	mine.Labels[discoveryv1.LabelManagedBy] = ManagedBy
	kubes := epSlice(discoveryv1.AddressTypeIPv4, http, ep("10.0.0.1", ""))
	kubes.Labels[discoveryv1.LabelManagedBy] = "endpointslice-controller.k8s.io"
	withTopology := ep("10.0.0.1", "")
	withTopology.Hostname, withTopology.Zone, withTopology.NodeName = ptr("web-0"), ptr("zone-a"), ptr("node-1")

	tests := []struct {
		name   string
		slices []*discoveryv1.EndpointSlice
		want   []Slice
	}{
		{"no slices", nil, nil},
		{"no endpoints", []*discoveryv1.EndpointSlice{epSlice(discoveryv1.AddressTypeIPv4, http)}, nil},
		{"unset conditions read as ready and serving", []*discoveryv1.EndpointSlice{
			epSlice(discoveryv1.AddressTypeIPv4, http, ep("10.0.0.1", "")),
		}, []Slice{{AddressType: "IPv4", Ports: httpCanon, Endpoints: []Endpoint{ready("10.0.0.1")}}}},
		{"conditions", []*discoveryv1.EndpointSlice{epSlice(discoveryv1.AddressTypeIPv4, http,
			ep("10.0.0.1", "r1 s1 t0"),
			ep("10.0.0.2", "r0 s1 t1"), // terminating, still serving: carried
			ep("10.0.0.3", "r0 s0 t1"), // gone
			ep("10.0.0.4", "r0"),       // serving unset reads as ready: not ready, dropped
			ep("10.0.0.5", "r0 s0"),
			ep("10.0.0.6", "s1"), // ready unset: ready
			ep("10.0.0.7", "t1"), // ready unset, terminating
		)}, []Slice{{AddressType: "IPv4", Ports: httpCanon, Endpoints: []Endpoint{
			ready("10.0.0.1"),
			{Addresses: []string{"10.0.0.2"}, Serving: true, Terminating: true},
			ready("10.0.0.6"),
			{Addresses: []string{"10.0.0.7"}, Ready: true, Serving: true, Terminating: true},
		}}}},
		{"hostname and zone carried, node dropped", []*discoveryv1.EndpointSlice{
			epSlice(discoveryv1.AddressTypeIPv4, http, withTopology),
		}, []Slice{{AddressType: "IPv4", Ports: httpCanon, Endpoints: []Endpoint{
			{Addresses: []string{"10.0.0.1"}, Hostname: "web-0", Zone: "zone-a", Ready: true, Serving: true},
		}}}},
		{"own slices ignored, others kept", []*discoveryv1.EndpointSlice{mine, kubes},
			[]Slice{{AddressType: "IPv4", Ports: httpCanon, Endpoints: []Endpoint{ready("10.0.0.1")}}}},
		{"FQDN ignored", []*discoveryv1.EndpointSlice{
			epSlice(discoveryv1.AddressTypeFQDN, http, ep("db.example.com", "")),
		}, nil},
		{"endpoint without address dropped", []*discoveryv1.EndpointSlice{
			epSlice(discoveryv1.AddressTypeIPv4, http, discoveryv1.Endpoint{}),
		}, nil},
		{"same ports in another order group together, sorted by address", []*discoveryv1.EndpointSlice{
			epSlice(discoveryv1.AddressTypeIPv4, two, ep("10.0.0.10", "")),
			epSlice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{two[1], two[0]}, ep("10.0.0.9", "")),
		}, []Slice{{AddressType: "IPv4", Ports: twoCanon, Endpoints: []Endpoint{ready("10.0.0.9"), ready("10.0.0.10")}}}},
		{"different ports and families group apart, in order", []*discoveryv1.EndpointSlice{
			epSlice(discoveryv1.AddressTypeIPv6, http, ep("fd00::1", "")),
			epSlice(discoveryv1.AddressTypeIPv4, two, ep("10.0.0.2", "")),
			epSlice(discoveryv1.AddressTypeIPv4, http, ep("10.0.0.1", "")),
		}, []Slice{
			{AddressType: "IPv4", Ports: httpCanon, Endpoints: []Endpoint{ready("10.0.0.1")}},
			{AddressType: "IPv4", Ports: twoCanon, Endpoints: []Endpoint{ready("10.0.0.2")}},
			{AddressType: "IPv6", Ports: httpCanon, Endpoints: []Endpoint{ready("fd00::1")}},
		}},
		{"duplicate address keeps the readier endpoint", []*discoveryv1.EndpointSlice{
			epSlice(discoveryv1.AddressTypeIPv4, http, ep("10.0.0.1", "r0 s1 t1")),
			epSlice(discoveryv1.AddressTypeIPv4, http, ep("10.0.0.1", "r1")),
		}, []Slice{{AddressType: "IPv4", Ports: httpCanon, Endpoints: []Endpoint{ready("10.0.0.1")}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := FromService("c1", serviceExport(), service(), tt.slices)
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, "Slices", got.Slices, tt.want)
			// The input order of slices never matters.
			rev := make([]*discoveryv1.EndpointSlice, len(tt.slices))
			for i, s := range tt.slices {
				rev[len(rev)-1-i] = s
			}
			again, _, _ := FromService("c1", serviceExport(), service(), rev)
			sameJSON(t, "Slices from reversed input", again.Slices, tt.want)
		})
	}
}

func TestFromServiceLimits(t *testing.T) {
	manyPorts := func(n int) *corev1.Service {
		return service(func(s *corev1.Service) {
			s.Spec.Ports = nil
			for i := range n {
				s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: fmt.Sprintf("p%d", i), Port: int32(1000 + i)})
			}
		})
	}
	manyEndpoints := func(n int) []*discoveryv1.EndpointSlice {
		var out []*discoveryv1.EndpointSlice
		var eps []discoveryv1.Endpoint
		for _, a := range addrs(0, n) {
			eps = append(eps, ep(a, ""))
			if len(eps) == 100 {
				out = append(out, epSlice(discoveryv1.AddressTypeIPv4, nil, eps...))
				eps = nil
			}
		}
		return append(out, epSlice(discoveryv1.AddressTypeIPv4, nil, eps...))
	}
	tests := []struct {
		name   string
		svc    *corev1.Service
		slices []*discoveryv1.EndpointSlice
		what   string
	}{
		{"ports at the limit", manyPorts(MaxPorts), nil, ""},
		{"too many ports", manyPorts(MaxPorts + 1), nil, "ports"},
		{"endpoints at the limit", service(), manyEndpoints(MaxEndpoints), ""},
		{"too many endpoints", service(), manyEndpoints(MaxEndpoints + 1), "endpoints"},
		{"duplicates count once", service(), append(manyEndpoints(MaxEndpoints), manyEndpoints(MaxEndpoints)...), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, v, err := FromService("c1", serviceExport(), tt.svc, tt.slices)
			if !v.Valid {
				t.Fatalf("an export over the limits is still valid; got %+v", v)
			}
			if tt.what == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got.Cluster != "c1" {
					t.Errorf("no usable Export: %+v", got)
				}
				return
			}
			var le *LimitError
			if !errors.As(err, &le) || le.What != tt.what {
				t.Fatalf("error = %v, want a LimitError on %s", err, tt.what)
			}
			contains(t, "error", err.Error(), tt.what, fmt.Sprint(le.Max), fmt.Sprint(le.Count))
			sameJSON(t, "Export over the limit", got, Export{})
		})
	}
}
