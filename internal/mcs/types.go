package mcs

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
)

// Limits of one Export, so that the record of one Service always fits the
// gossip message that carries it.
const (
	// MaxEndpoints bounds the endpoints of one export (all slices).
	MaxEndpoints = 1000
	// MaxPorts bounds the ports of one export.
	MaxPorts = 100
)

// Export is one cluster's export of one Service: everything another cluster
// needs to import it. It travels by gossip as JSON; field names are part of
// the wire format.
type Export struct {
	// Cluster is the exporting cluster's ID.
	Cluster string `json:"cluster"`
	// Service is the exported Service's namespace and name.
	Service types.NamespacedName `json:"service"`
	// Created is the ServiceExport's creation time: the oldest export of a
	// Service wins its service-wide properties (KEP-1645 conflict rules).
	Created time.Time `json:"created"`
	// NotBefore, when later than Created, stands in for it in the
	// oldest-export rule: the importing cluster sets it to when it first
	// saw this record, so that a peer cannot backdate a new export to win
	// a conflict. It never travels.
	NotBefore time.Time `json:"-"`

	// Type is ClusterSetIP, or Headless for a Service with clusterIP None.
	Type mcsv1beta1.ServiceImportType `json:"type"`
	// Ports are the Service's ports (name, protocol, appProtocol, port).
	Ports                 []mcsv1beta1.ServicePort             `json:"ports,omitempty"`
	SessionAffinity       corev1.ServiceAffinity               `json:"sessionAffinity,omitempty"`
	SessionAffinityConfig *corev1.SessionAffinityConfig        `json:"sessionAffinityConfig,omitempty"`
	IPFamilies            []corev1.IPFamily                    `json:"ipFamilies,omitempty"`
	InternalTrafficPolicy *corev1.ServiceInternalTrafficPolicy `json:"internalTrafficPolicy,omitempty"`
	TrafficDistribution   *string                              `json:"trafficDistribution,omitempty"`
	// Labels and Annotations are the ServiceExport's exportedLabels and
	// exportedAnnotations, carried to the ServiceImport.
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`

	// Slices are the Service's endpoints, grouped by address type and
	// endpoint ports as the cluster's own EndpointSlices group them.
	Slices []Slice `json:"slices,omitempty"`
}

// Slice is a group of endpoints of one address type sharing their ports.
type Slice struct {
	AddressType discoveryv1.AddressType `json:"addressType"`
	// Ports are the endpoint (target) ports. Each Name is the name of the
	// exporting Service's port it serves, as in an EndpointSlice.
	Ports     []discoveryv1.EndpointPort `json:"ports,omitempty"`
	Endpoints []Endpoint                 `json:"endpoints"`
}

// Endpoint is one endpoint of an exported Service.
type Endpoint struct {
	Addresses []string `json:"addresses"`
	// Hostname is the endpoint's hostname (a headless Service's pods with
	// spec.hostname, or a StatefulSet's pods); it names the endpoint in
	// DNS as <hostname>.<cluster>.<svc>.<ns>.svc.clusterset.local.
	Hostname string `json:"hostname,omitempty"`
	Zone     string `json:"zone,omitempty"`
	// Ready, Serving and Terminating are the EndpointSlice conditions.
	// Unset ones are read as in fromEndpoint: Ready as true (the API's
	// rule), Serving as Ready, Terminating as false.
	Ready       bool `json:"ready"`
	Serving     bool `json:"serving"`
	Terminating bool `json:"terminating"`
}
