package mcs

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
)

// ImportState is what an importing cluster made of an Import, for the
// ServiceImport's Ready condition.
type ImportState struct {
	// Addressable is false when a ClusterSetIP import shares no IP family
	// with this cluster's Services (ForFamilies).
	Addressable bool
	// ClusterFamilies are this cluster's Service IP families, for the
	// message.
	ClusterFamilies []corev1.IPFamily
	// IPs are the clusterset IPs it got.
	IPs []string
	// Pending says why the import is not complete yet (its derived
	// Service could not be written), if it is not.
	Pending string
	// Silent are exporting clusters that went silent: their endpoints are
	// withdrawn, the import stays.
	Silent []string
}

// ImportReady returns the Ready condition of a ServiceImport (mcs-api
// v0.5: Ready, with reasons Ready, Pending and IPFamilyNotSupported), for
// its metadata.generation. LastTransitionTime is left zero for
// meta.SetStatusCondition.
func ImportReady(imp Import, st ImportState, generation int64) metav1.Condition {
	cond := metav1.Condition{Type: string(mcsv1beta1.ServiceImportConditionReady), ObservedGeneration: generation}
	switch {
	case imp.Spec.Type == mcsv1beta1.ClusterSetIP && !st.Addressable:
		cond.Status, cond.Reason = metav1.ConditionFalse, string(mcsv1beta1.ServiceImportReasonIPFamilyNotSupported)
		cond.Message = fmt.Sprintf("No clusterset IP: the service's IP families (%s) and this cluster's (%s) have none in common.",
			familiesText(imp.Spec.IPFamilies), familiesText(st.ClusterFamilies))
	case st.Pending != "":
		cond.Status, cond.Reason = metav1.ConditionFalse, string(mcsv1beta1.ServiceImportReasonPending)
		cond.Message = st.Pending
	case imp.Spec.Type == mcsv1beta1.ClusterSetIP && len(st.IPs) == 0:
		cond.Status, cond.Reason = metav1.ConditionFalse, string(mcsv1beta1.ServiceImportReasonPending)
		cond.Message = "Waiting for the clusterset IP."
	default:
		cond.Status, cond.Reason = metav1.ConditionTrue, string(mcsv1beta1.ServiceImportReasonReady)
		cond.Message = fmt.Sprintf("Imported from %s.", strings.Join(imp.Clusters, ", "))
	}
	if len(st.Silent) > 0 {
		cond.Message += fmt.Sprintf(" Silent (no gateway in gossip, endpoints withdrawn until it returns): %s.", strings.Join(st.Silent, ", "))
	}
	return cond
}
