package model

import (
	"slices"

	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
)

// MaxProbeDNSNames is how many names one ProbeRequest may ask
// (spec.dnsNames' MaxItems).
const MaxProbeDNSNames = 16

// Probe is what became of the ProbeRequest diagnose made in one cluster:
// the active gateway's answer, or why there is none.
type Probe struct {
	// Namespace and Request are the ProbeRequest's (Request is empty when
	// it could not be created), Spec what it asked.
	Namespace string                               `json:"namespace"`
	Request   string                               `json:"request,omitempty"`
	Spec      wirespanv1alpha1.ProbeRequestSpec    `json:"spec"`
	Answer    *wirespanv1alpha1.ProbeRequestStatus `json:"answer,omitempty"`
	// Missing says why Answer is nil (one of the ProbeMissing values),
	// Detail the error or the wait in words.
	Missing string `json:"missing,omitempty"`
	Detail  string `json:"detail,omitempty"`
	// DeleteError is why the request could not be deleted afterwards:
	// it stays until someone deletes it (the active gateway deletes
	// answered requests after ten minutes).
	DeleteError string `json:"deleteError,omitempty"`
}

// Why a Probe has no answer.
const (
	// ProbeForbidden: the kubeconfig user may not create ProbeRequests in
	// the namespace.
	ProbeForbidden = "Forbidden"
	// ProbeUnsupported: the cluster has no ProbeRequest API (the CRD of a
	// release older than this plugin).
	ProbeUnsupported = "Unsupported"
	// ProbeTimeout: no gateway completed the request in time.
	ProbeTimeout = "Timeout"
	// ProbeFailed: anything else (the API server failed, the request was
	// deleted meanwhile, the command was interrupted).
	ProbeFailed = "Failed"
)

// ProbeDNSName is the clusterset name a pod resolves for a ServiceImport:
// <name>.<namespace>.svc.<zone>.
func ProbeDNSName(si *mcsv1beta1.ServiceImport, zone string) string {
	return si.Name + "." + si.Namespace + ".svc." + zone
}

// ProbeDNSNames are the names a ProbeRequest asks for a cluster's
// ServiceImports: sorted, at most MaxProbeDNSNames.
func ProbeDNSNames(imports []mcsv1beta1.ServiceImport, zone string) []string {
	names := make([]string, 0, len(imports))
	for i := range imports {
		names = append(names, ProbeDNSName(&imports[i], zone))
	}
	slices.Sort(names)
	names = slices.Compact(names)
	return names[:min(len(names), MaxProbeDNSNames)]
}
