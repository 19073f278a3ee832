package mcs

import (
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// FamiliesOf returns the IP families of a cluster's Service ranges, in the
// order they first appear (the first is the cluster's primary family).
func FamiliesOf(serviceCIDRs []netip.Prefix) []corev1.IPFamily {
	var out []corev1.IPFamily
	for _, p := range serviceCIDRs {
		f := corev1.IPv4Protocol
		if !p.Addr().Unmap().Is4() {
			f = corev1.IPv6Protocol
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// ForFamilies returns imp as a cluster with the given Service IP families
// imports it: its IP families are those it shares with the cluster, in
// the import's order, so that a dual-stack service exported IPv6 first
// still gets an IPv4 clusterset IP in an IPv4-only cluster. It reports
// false when the import has families and shares none with the cluster (an
// IPv6-only service imported into an IPv4-only cluster): such an import
// can have no clusterset IP there. With no cluster families known, imp is
// returned as it is.
func ForFamilies(imp Import, cluster []corev1.IPFamily) (Import, bool) {
	if len(cluster) == 0 || len(imp.Spec.IPFamilies) == 0 {
		return imp, true
	}
	var shared []corev1.IPFamily
	for _, f := range imp.Spec.IPFamilies {
		if slices.Contains(cluster, f) {
			shared = append(shared, f)
		}
	}
	if len(shared) == 0 {
		return imp, false
	}
	if len(shared) == len(imp.Spec.IPFamilies) {
		return imp, true
	}
	imp.Spec = *imp.Spec.DeepCopy()
	imp.Spec.IPFamilies = shared
	return imp, true
}
