// Package v1alpha1 holds the wirespan.io/v1alpha1 API: the cluster-scoped
// ClusterPeer resource, its condition types and reasons, and the labels and
// annotations Wirespan recognizes.
//
// This is the only package the operator and the gateway share. The
// Multi-Cluster Services types come from sigs.k8s.io/mcs-api instead.
//
// +kubebuilder:object:generate=true
// +groupName=wirespan.io
package v1alpha1
