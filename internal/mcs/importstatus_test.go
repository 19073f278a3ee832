package mcs

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
)

func TestImportReady(t *testing.T) {
	clusterSetIP := Merge([]Export{exp("a", 0), exp("b", 1)})
	headless := Merge([]Export{exp("a", 0, func(e *Export) { e.Type = mcsv1beta1.Headless })})
	v4 := []corev1.IPFamily{corev1.IPv4Protocol}
	for _, tc := range []struct {
		name   string
		imp    Import
		st     ImportState
		status metav1.ConditionStatus
		reason mcsv1beta1.ServiceImportConditionReason
		words  []string
	}{
		{"ready", clusterSetIP, ImportState{Addressable: true, IPs: []string{"10.0.0.1"}}, metav1.ConditionTrue,
			mcsv1beta1.ServiceImportReasonReady, []string{"Imported from a, b."}},
		{"headless needs no IP", headless, ImportState{Addressable: true}, metav1.ConditionTrue, mcsv1beta1.ServiceImportReasonReady, nil},
		{"no family in common", clusterSetIP, ImportState{ClusterFamilies: []corev1.IPFamily{corev1.IPv6Protocol}}, metav1.ConditionFalse,
			mcsv1beta1.ServiceImportReasonIPFamilyNotSupported, []string{"[IPv4]", "[IPv6]"}},
		{"derived Service failed", clusterSetIP, ImportState{Addressable: true, Pending: "Cannot write it."}, metav1.ConditionFalse,
			mcsv1beta1.ServiceImportReasonPending, []string{"Cannot write it."}},
		{"no IP yet", clusterSetIP, ImportState{Addressable: true, ClusterFamilies: v4}, metav1.ConditionFalse,
			mcsv1beta1.ServiceImportReasonPending, []string{"clusterset IP"}},
		{"a silent cluster", clusterSetIP, ImportState{Addressable: true, IPs: []string{"10.0.0.1"}, Silent: []string{"b"}}, metav1.ConditionTrue,
			mcsv1beta1.ServiceImportReasonReady, []string{"Silent", ": b."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ImportReady(tc.imp, tc.st, 3)
			if c.Type != "Ready" || c.Status != tc.status || c.Reason != string(tc.reason) || c.ObservedGeneration != 3 {
				t.Errorf("condition %+v, want Ready=%s/%s", c, tc.status, tc.reason)
			}
			contains(t, "message", c.Message, tc.words...)
		})
	}
}
