package mcs

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
)

// storedMeta adds metadata the API server and the controller set, which
// the Apply functions must keep.
func storedMeta(m *metav1.ObjectMeta) {
	m.ResourceVersion = "42"
	m.UID = "uid"
	m.OwnerReferences = []metav1.OwnerReference{{Kind: "ServiceImport", Name: "cart"}}
}

// checkApply runs apply on have and want and checks the change flag and
// that have was left alone.
func checkApply[T runtime.Object](t *testing.T, name string, have T, apply func(T) (T, bool), wantChanged bool) T {
	t.Helper()
	before := have.DeepCopyObject()
	out, changed := apply(have)
	if changed != wantChanged {
		t.Errorf("%s: changed = %v, want %v", name, changed, wantChanged)
	}
	if !equality.Semantic.DeepEqual(before, any(have)) {
		t.Errorf("%s: have was modified", name)
	}
	return out
}

func TestApplyServiceImport(t *testing.T) {
	imp := Merge([]Export{exp("c1", 0, func(e *Export) { e.Labels = map[string]string{"team": "shop"} })})
	want := ServiceImport(imp, "shop", "cart")
	want.Spec.IPs = []string{"10.96.0.7"}

	have := want.DeepCopy()
	storedMeta(&have.ObjectMeta)
	have.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue}}
	have.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol} // same content, new backing array
	have.Annotations = map[string]string{}                        // empty reads as unset
	checkApply(t, "same", have, func(h *mcsv1beta1.ServiceImport) (*mcsv1beta1.ServiceImport, bool) {
		return ApplyServiceImport(h, want)
	}, false)

	stale := have.DeepCopy()
	stale.Labels["dropped"] = "was exported"
	stale.Spec.Type = mcsv1beta1.Headless
	out := checkApply(t, "stale", stale, func(h *mcsv1beta1.ServiceImport) (*mcsv1beta1.ServiceImport, bool) {
		return ApplyServiceImport(h, want)
	}, true)
	if _, ok := out.Labels["dropped"]; ok || out.Spec.Type != mcsv1beta1.ClusterSetIP || out.ResourceVersion != "42" ||
		len(out.OwnerReferences) != 1 || len(out.Status.Conditions) != 1 {
		t.Errorf("applied: %+v", out)
	}

	moved := have.DeepCopy()
	moved.Status.Clusters = nil
	out = checkApply(t, "status", moved, func(h *mcsv1beta1.ServiceImport) (*mcsv1beta1.ServiceImport, bool) {
		return ApplyServiceImportStatus(h, want)
	}, true)
	if len(out.Status.Clusters) != 1 || len(out.Status.Conditions) != 1 {
		t.Errorf("applied status: %+v", out.Status)
	}
	checkApply(t, "status same", have, func(h *mcsv1beta1.ServiceImport) (*mcsv1beta1.ServiceImport, bool) {
		return ApplyServiceImportStatus(h, want)
	}, false)
}

func TestApplyService(t *testing.T) {
	dual := Merge([]Export{exp("c1", 0, func(e *Export) {
		e.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	})})
	want := DerivedService(dual, "shop", "cart")
	apply := func(h *corev1.Service) (*corev1.Service, bool) { return ApplyService(h, want) }

	// As the API server keeps it: clusterIPs allocated, and on a
	// single-stack cluster only the primary family of PreferDualStack.
	have := want.DeepCopy()
	storedMeta(&have.ObjectMeta)
	have.Labels["other"] = "kept"
	have.Annotations = map[string]string{"other": "kept"}
	have.Spec.ClusterIP, have.Spec.ClusterIPs = "10.96.0.7", []string{"10.96.0.7"}
	have.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
	checkApply(t, "same, single stack", have, apply, false)

	both := have.DeepCopy()
	both.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	both.Spec.ClusterIPs = []string{"10.96.0.7", "fd00::7"}
	checkApply(t, "same, dual stack", both, apply, false)

	ports := have.DeepCopy()
	ports.Spec.Ports[0].Port = 81
	out := checkApply(t, "port changed", ports, apply, true)
	if out.Spec.Ports[0].Port != 80 || out.Spec.ClusterIP != "10.96.0.7" || out.Labels["other"] != "kept" ||
		out.Annotations["other"] != "kept" || out.ResourceVersion != "42" {
		t.Errorf("applied: %+v", out)
	}
	if ServiceNeedsRecreate(ports, want) {
		t.Error("a port change needs no recreation")
	}

	single := DerivedService(Merge([]Export{exp("c1", 0)}), "shop", "cart")
	out = checkApply(t, "to single stack", both, func(h *corev1.Service) (*corev1.Service, bool) { return ApplyService(h, single) }, true)
	if len(out.Spec.IPFamilies) != 1 || *out.Spec.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack {
		t.Errorf("applied: %+v", out.Spec)
	}

	v6 := DerivedService(Merge([]Export{exp("c1", 0, func(e *Export) {
		e.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
	})}), "shop", "cart")
	if !ServiceNeedsRecreate(have, v6) {
		t.Error("a new primary family needs recreation")
	}
	headless := have.DeepCopy()
	headless.Spec.ClusterIP = corev1.ClusterIPNone
	if !ServiceNeedsRecreate(headless, want) {
		t.Error("a headless Service needs recreation")
	}
}

func TestApplyEndpointSlice(t *testing.T) {
	e := exp("c1", 0, withSlices(v4([]discoveryv1.EndpointPort{epPort("http", "TCP", 8080)}, "10.1.0.1")))
	want := EndpointSlices(Merge([]Export{e}), []Export{e}, "shop", "cart")[0]
	apply := func(h *discoveryv1.EndpointSlice) (*discoveryv1.EndpointSlice, bool) {
		return ApplyEndpointSlice(h, want)
	}

	have := want.DeepCopy()
	storedMeta(&have.ObjectMeta)
	have.Labels["other"] = "kept"
	checkApply(t, "same", have, apply, false)

	changed := have.DeepCopy()
	changed.Endpoints[0].Conditions.Ready = ptr(false)
	out := checkApply(t, "endpoint changed", changed, apply, true)
	if !*out.Endpoints[0].Conditions.Ready || out.Labels["other"] != "kept" {
		t.Errorf("applied: %+v", out)
	}

	// The import became Headless: kube-proxy must let go of the slice.
	h := e
	h.Type = mcsv1beta1.Headless
	wantHeadless := EndpointSlices(Merge([]Export{h}), []Export{h}, "shop", "cart")[0]
	out = checkApply(t, "to headless", have, func(s *discoveryv1.EndpointSlice) (*discoveryv1.EndpointSlice, bool) {
		return ApplyEndpointSlice(s, wantHeadless)
	}, true)
	if _, ok := out.Labels[discoveryv1.LabelServiceName]; ok || out.Labels["other"] != "kept" ||
		out.Labels[mcsv1beta1.LabelSourceCluster] != "c1" {
		t.Errorf("labels: %v", out.Labels)
	}
}
