package mcs

import (
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/wirespan/wirespan/apis/v1alpha1"
)

// The Apply functions let the controller update an existing object only
// when a field Wirespan owns differs. Each returns a copy of have with the
// owned fields set from want (built by the functions of shape.go) and
// whether that copy differs from have, that is whether to send an Update.
// have is never modified: it usually comes from an informer cache. Fields
// Wirespan does not own (resourceVersion, owner references, clusterIPs,
// other labels and annotations, conditions) are kept as they are. Nil and
// empty lists and maps count as equal, so a stored object that the API
// server returns with an empty list does not look changed.

// ApplyServiceImport applies want's labels, annotations and spec. The
// ServiceImport is Wirespan's alone (KEP-1645 leaves ServiceImports to the
// MCS controller), so its labels and annotations are replaced whole: an
// exported label dropped from the ServiceExport is dropped here. The spec
// is replaced whole too, IPs included: set want.Spec.IPs before calling.
// Status is applied by ApplyServiceImportStatus (a subresource).
func ApplyServiceImport(have, want *mcsv1beta1.ServiceImport) (*mcsv1beta1.ServiceImport, bool) {
	out := have.DeepCopy()
	out.Labels = maps.Clone(want.Labels)
	out.Annotations = maps.Clone(want.Annotations)
	out.Spec = *want.Spec.DeepCopy()
	return out, !equality.Semantic.DeepEqual(have, out)
}

// ApplyServiceImportStatus applies want's status.clusters,
// status.endpointSliceObjects and the conditions want has (a condition's
// lastTransitionTime moves only when its status changes); other
// conditions of have are kept.
func ApplyServiceImportStatus(have, want *mcsv1beta1.ServiceImport) (*mcsv1beta1.ServiceImport, bool) {
	out := have.DeepCopy()
	out.Status.Clusters = slices.Clone(want.Status.Clusters)
	out.Status.EndpointSliceObjects = want.Status.EndpointSliceObjects
	for _, c := range want.Status.Conditions {
		meta.SetStatusCondition(&out.Status.Conditions, c)
	}
	return out, !equality.Semantic.DeepEqual(have, out)
}

// ApplyService applies the labels DerivedService sets and the spec fields
// it sets: type, selector (none), ports, session affinity and its config,
// IP families and policy, internal traffic policy, traffic distribution.
//
// IP families are left alone when want has none (the cluster chose), and
// when want prefers dual stack and have has want's primary family, alone
// or with want's secondary: a single-stack cluster keeps only the primary
// family of a PreferDualStack Service, and asking again would change
// nothing but loop. A change of primary family cannot be applied by an
// update: see ServiceNeedsRecreate.
func ApplyService(have, want *corev1.Service) (*corev1.Service, bool) {
	out := have.DeepCopy()
	out.Labels = setOwnedLabels(out.Labels, want.Labels, ownedServiceLabels)
	s, w := &out.Spec, &want.DeepCopy().Spec
	s.Type = w.Type
	s.Selector = w.Selector
	s.Ports = w.Ports
	s.SessionAffinity = w.SessionAffinity
	s.SessionAffinityConfig = w.SessionAffinityConfig
	s.InternalTrafficPolicy = w.InternalTrafficPolicy
	s.TrafficDistribution = w.TrafficDistribution
	if len(w.IPFamilies) > 0 && !familiesSatisfied(s.IPFamilies, w) {
		s.IPFamilies = w.IPFamilies
	}
	if w.IPFamilyPolicy != nil {
		s.IPFamilyPolicy = w.IPFamilyPolicy
	}
	return out, !equality.Semantic.DeepEqual(have, out)
}

// familiesSatisfied reports whether a Service with families have already
// is what want asks for.
func familiesSatisfied(have []corev1.IPFamily, want *corev1.ServiceSpec) bool {
	if slices.Equal(have, want.IPFamilies) {
		return true
	}
	return deref(want.IPFamilyPolicy) == corev1.IPFamilyPolicyPreferDualStack &&
		len(have) > 0 && len(have) <= len(want.IPFamilies) &&
		slices.Equal(have, want.IPFamilies[:len(have)])
}

// ServiceNeedsRecreate reports whether have cannot become want by an
// update, the API server refusing the change: a different primary IP
// family, or a Service made headless (clusterIP is immutable). The
// controller deletes and recreates it; the clusterset IP changes.
func ServiceNeedsRecreate(have, want *corev1.Service) bool {
	if have.Spec.ClusterIP == corev1.ClusterIPNone {
		return true
	}
	return len(have.Spec.IPFamilies) > 0 && len(want.Spec.IPFamilies) > 0 &&
		have.Spec.IPFamilies[0] != want.Spec.IPFamilies[0]
}

// ApplyEndpointSlice applies the labels EndpointSlices sets (removing
// kubernetes.io/service-name when want lacks it: a ClusterSetIP import
// became Headless), the address type, ports and endpoints. The address
// type is immutable, but it is part of the slice's name, so a slice
// keeps it for life.
func ApplyEndpointSlice(have, want *discoveryv1.EndpointSlice) (*discoveryv1.EndpointSlice, bool) {
	out := have.DeepCopy()
	out.Labels = setOwnedLabels(out.Labels, want.Labels, ownedSliceLabels)
	out.AddressType = want.AddressType
	want = want.DeepCopy()
	out.Ports = want.Ports
	out.Endpoints = want.Endpoints
	return out, !equality.Semantic.DeepEqual(have, out)
}

var (
	ownedServiceLabels = []string{mcsv1beta1.LabelServiceName, v1alpha1.LabelManagedBy}
	ownedSliceLabels   = []string{
		mcsv1beta1.LabelServiceName, mcsv1beta1.LabelSourceCluster,
		discoveryv1.LabelManagedBy, discoveryv1.LabelServiceName,
	}
)

// setOwnedLabels sets each owned key of labels as in want: to want's
// value, or removed if want has none. Other keys are kept.
func setOwnedLabels(labels, want map[string]string, owned []string) map[string]string {
	for _, k := range owned {
		v, ok := want[k]
		if !ok {
			delete(labels, k)
			continue
		}
		if labels == nil {
			labels = map[string]string{}
		}
		labels[k] = v
	}
	return labels
}
