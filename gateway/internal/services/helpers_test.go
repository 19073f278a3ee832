package services

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/wirespan/wirespan/internal/mcs"
)

// Builders of the objects a test creates, and of remote exports.

// tcp is a TCP Service port whose target port is target.
func tcp(name string, port, target int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Protocol: corev1.ProtocolTCP, Port: port, TargetPort: intstr.FromInt32(target)}
}

// newService is a ClusterIP Service with ports.
func newService(ns, name string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Ports: ports},
	}
}

// newHeadless is a headless Service with ports and a selector, as a
// StatefulSet's. (Without a selector, the API server makes a headless
// Service RequireDualStack, both families, even in a single-stack
// cluster.)
func newHeadless(ns, name string, ports ...corev1.ServicePort) *corev1.Service {
	svc := newService(ns, name, ports...)
	svc.Spec.ClusterIP = corev1.ClusterIPNone
	svc.Spec.Selector = map[string]string{"app": name}
	return svc
}

func newExport(ns, name string) *mcsv1beta1.ServiceExport {
	return &mcsv1beta1.ServiceExport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}

// epPort is a TCP EndpointPort.
func epPort(name string, port int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptr(name), Protocol: ptr(corev1.ProtocolTCP), Port: ptr(port)}
}

// endpoint is an EndpointSlice endpoint with explicit conditions.
func endpoint(addr, hostname, zone string, ready, serving, terminating bool) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{
		Addresses:  []string{addr},
		Conditions: discoveryv1.EndpointConditions{Ready: ptr(ready), Serving: ptr(serving), Terminating: ptr(terminating)},
	}
	if hostname != "" {
		e.Hostname = ptr(hostname)
	}
	if zone != "" {
		e.Zone = ptr(zone)
	}
	return e
}

// newSlice is an IPv4 EndpointSlice of Service svc, as the EndpointSlice
// controller (absent from envtest) would write it.
func newSlice(ns, svc, name string, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: name,
			Labels: map[string]string{
				discoveryv1.LabelServiceName: svc,
				discoveryv1.LabelManagedBy:   "endpointslice-controller.k8s.io",
			},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       ports,
		Endpoints:   eps,
	}
}

// mport is a TCP port of an export.
func mport(name string, port int32) mcsv1beta1.ServicePort {
	return mcsv1beta1.ServicePort{Name: name, Protocol: corev1.ProtocolTCP, Port: port}
}

// remoteExport is cluster's export of ns/name as a real single-stack
// ClusterSetIP Service of that cluster would yield it, created at created.
func remoteExport(cluster, ns, name string, created time.Time, ports ...mcsv1beta1.ServicePort) mcs.Export {
	return mcs.Export{
		Cluster:               cluster,
		Service:               types.NamespacedName{Namespace: ns, Name: name},
		Created:               created.UTC().Truncate(time.Second),
		Type:                  mcsv1beta1.ClusterSetIP,
		Ports:                 ports,
		SessionAffinity:       corev1.ServiceAffinityNone,
		IPFamilies:            []corev1.IPFamily{corev1.IPv4Protocol},
		InternalTrafficPolicy: ptr(corev1.ServiceInternalTrafficPolicyCluster),
	}
}

// rslice is an IPv4 slice of an export.
func rslice(ports []discoveryv1.EndpointPort, eps ...mcs.Endpoint) mcs.Slice {
	return mcs.Slice{AddressType: discoveryv1.AddressTypeIPv4, Ports: ports, Endpoints: eps}
}

// rep is an endpoint of an export.
func rep(addr, hostname, zone string, ready, serving, terminating bool) mcs.Endpoint {
	return mcs.Endpoint{Addresses: []string{addr}, Hostname: hostname, Zone: zone, Ready: ready, Serving: serving, Terminating: terminating}
}

// Readers and checks.

// cond is an expected condition: type, status, reason, and text its
// message must contain.
type cond struct {
	typ     mcsv1beta1.ServiceExportConditionType
	status  metav1.ConditionStatus
	reason  mcsv1beta1.ServiceExportConditionReason
	message string
}

// checkConditions reports how the ServiceExport's conditions differ from
// want: each wanted one present, for the current generation, and no other.
func checkConditions(se *mcsv1beta1.ServiceExport, want ...cond) error {
	if len(se.Status.Conditions) != len(want) {
		return fmt.Errorf("want %d conditions, have %s", len(want), showConditions(se.Status.Conditions))
	}
	for _, w := range want {
		c := meta.FindStatusCondition(se.Status.Conditions, string(w.typ))
		switch {
		case c == nil:
			return fmt.Errorf("no %s condition in %s", w.typ, showConditions(se.Status.Conditions))
		case c.Status != w.status || c.Reason != string(w.reason) || !strings.Contains(c.Message, w.message):
			return fmt.Errorf("want %s=%s/%s with message containing %q, have %s", w.typ, w.status, w.reason, w.message, showConditions(se.Status.Conditions))
		case c.ObservedGeneration != se.Generation:
			return fmt.Errorf("%s observed generation %d, want %d", w.typ, c.ObservedGeneration, se.Generation)
		case c.LastTransitionTime.IsZero():
			return fmt.Errorf("%s has no lastTransitionTime", w.typ)
		}
	}
	return nil
}

func showConditions(cs []metav1.Condition) string {
	parts := make([]string, 0, len(cs))
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%s=%s/%s (%q)", c.Type, c.Status, c.Reason, c.Message))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// waitConditions waits until the ServiceExport ns/name has exactly the
// conditions want.
func (h *harness) waitConditions(ns, name string, want ...cond) *mcsv1beta1.ServiceExport {
	h.t.Helper()
	var se mcsv1beta1.ServiceExport
	h.eventually("conditions of ServiceExport "+ns+"/"+name, func() error {
		if err := get(ns, name, &se); err != nil {
			return err
		}
		return checkConditions(&se, want...)
	})
	return &se
}

// Conditions of an exported Service without conflicts.
var exportedOK = []cond{
	{mcsv1beta1.ServiceExportConditionValid, metav1.ConditionTrue, mcsv1beta1.ServiceExportReasonValid, ""},
	{mcsv1beta1.ServiceExportConditionReady, metav1.ConditionTrue, mcsv1beta1.ServiceExportReasonExported, ""},
	{mcsv1beta1.ServiceExportConditionConflict, metav1.ConditionFalse, mcsv1beta1.ServiceExportReasonNoConflicts, ""},
}

// waitImport waits until ns/name has a ServiceImport for which check
// returns nil, and returns it.
func (h *harness) waitImport(ns, name string, check func(*mcsv1beta1.ServiceImport) error) *mcsv1beta1.ServiceImport {
	h.t.Helper()
	var si mcsv1beta1.ServiceImport
	h.eventually("ServiceImport "+ns+"/"+name, func() error {
		if err := get(ns, name, &si); err != nil {
			return err
		}
		if check == nil {
			return nil
		}
		return check(&si)
	})
	return &si
}

// importClusters checks status.clusters of a ServiceImport.
func importClusters(want ...string) func(*mcsv1beta1.ServiceImport) error {
	return func(si *mcsv1beta1.ServiceImport) error {
		var have []string
		for _, c := range si.Status.Clusters {
			have = append(have, c.Cluster)
		}
		if !slices.Equal(have, want) {
			return fmt.Errorf("status.clusters %v, want %v", have, want)
		}
		return nil
	}
}

// importedSlices lists the EndpointSlices imported for ns/name, by source
// cluster.
func importedSlices(ns, name string) (map[string][]discoveryv1.EndpointSlice, error) {
	var l discoveryv1.EndpointSliceList
	if err := k8s.List(context.Background(), &l, client.InNamespace(ns),
		client.MatchingLabels{mcsv1beta1.LabelServiceName: name}); err != nil {
		return nil, err
	}
	out := map[string][]discoveryv1.EndpointSlice{}
	for _, s := range l.Items {
		c := s.Labels[mcsv1beta1.LabelSourceCluster]
		out[c] = append(out[c], s)
	}
	return out, nil
}

// sliceClusters checks which clusters ns/name has imported slices from.
func sliceClusters(ns, name string, want ...string) error {
	by, err := importedSlices(ns, name)
	if err != nil {
		return err
	}
	var have []string
	for c := range by {
		have = append(have, c)
	}
	slices.Sort(have)
	if !slices.Equal(have, want) {
		return fmt.Errorf("imported slices from %v, want %v", have, want)
	}
	return nil
}

// gone reports nil once ns/name of obj's kind does not exist.
func gone(ns, name string, obj client.Object) error {
	switch err := get(ns, name, obj); {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return err
	}
	return fmt.Errorf("%T %s/%s still exists", obj, ns, name)
}

// derived reads the derived Service of the import ns/name.
func derived(ns, name string) (*corev1.Service, error) {
	var svc corev1.Service
	err := get(ns, mcs.DerivedServiceName(name), &svc)
	return &svc, err
}
