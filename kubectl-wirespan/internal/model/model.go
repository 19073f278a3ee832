// Package model holds what kubectl-wirespan reads from each cluster, as
// plain values: the commands' pure parts (status, graph, diagnose) take a
// Clusterset and never talk to an API server, so they are table- and
// golden-tested without one.
package model

import (
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
)

// Clusterset is every cluster read, in the order the contexts were given,
// and when they were read (ages, such as a handshake's, count from Now).
type Clusterset struct {
	Now      time.Time
	Clusters []Cluster
}

// Cluster is what one kubeconfig context shows.
type Cluster struct {
	// Context is the kubeconfig context the cluster was read through.
	Context string `json:"context"`
	// Peers are every ClusterPeer, sorted by name.
	Peers []wirespanv1alpha1.ClusterPeer `json:"peers"`
	// Exports and Imports are the Multi-Cluster Services objects of every
	// namespace.
	Exports []mcsv1beta1.ServiceExport `json:"exports,omitempty"`
	Imports []mcsv1beta1.ServiceImport `json:"imports,omitempty"`
	// Corefile is the CoreDNS ConfigMap's Corefile; empty when absent.
	Corefile string `json:"corefile,omitempty"`
	// DNSService is Wirespan's DNS Service, nil when absent, and
	// DNSSlices its EndpointSlices, which the active gateway fills.
	DNSService *corev1.Service             `json:"dnsService,omitempty"`
	DNSSlices  []discoveryv1.EndpointSlice `json:"dnsSlices,omitempty"`
	// Pods are Wirespan's pods in its namespace (for their images).
	Pods []corev1.Pod `json:"pods,omitempty"`
	// GatewayLease is the Lease that fences the active gateway role, nil
	// when absent: its holder is the active gateway, which writes its
	// version in the annotation wirespan.io/version.
	GatewayLease *coordinationv1.Lease `json:"gatewayLease,omitempty"`
	// Probe is the active gateway's answer to diagnose's ProbeRequest,
	// or why there is none; nil when diagnose did not ask (--probe=false,
	// or no check that needs it).
	Probe *Probe `json:"probe,omitempty"`
	// Errors says what could not be read, by what: a check that needs it
	// says so instead of judging on missing data.
	Errors map[string]string `json:"errors,omitempty"`
}

// What a Cluster's Errors are keyed by.
const (
	ReadPeers    = "clusterpeers"
	ReadExports  = "serviceexports"
	ReadImports  = "serviceimports"
	ReadCorefile = "corefile"
	ReadDNS      = "dns-service"
	ReadPods     = "pods"
	ReadLease    = "gateway-lease"
)

// Self returns the ClusterPeer whose status says Self, or nil: the
// operator of a cluster sets that role on its own ClusterPeer only.
func (c *Cluster) Self() *wirespanv1alpha1.ClusterPeer {
	for i := range c.Peers {
		if c.Peers[i].Status.Role == wirespanv1alpha1.RoleSelf {
			return &c.Peers[i]
		}
	}
	return nil
}

// Name is the cluster's ID (its self ClusterPeer's name), or the context
// when no self ClusterPeer is found.
func (c *Cluster) Name() string {
	if s := c.Self(); s != nil {
		return s.Name
	}
	return c.Context
}

// Peer returns the ClusterPeer with that name, or nil.
func (c *Cluster) Peer(name string) *wirespanv1alpha1.ClusterPeer {
	for i := range c.Peers {
		if c.Peers[i].Name == name {
			return &c.Peers[i]
		}
	}
	return nil
}

// Versions is what a cluster's binaries report of themselves; empty where
// they report nothing (a release from before they did, or none running).
type Versions struct {
	// Operator is the self ClusterPeer's status.operatorVersion.
	Operator string `json:"operator,omitempty"`
	// Gateway is the version the active gateway, GatewayNode (the gateway
	// Lease's holder), wrote on the Lease.
	Gateway     string `json:"gateway,omitempty"`
	GatewayNode string `json:"gatewayNode,omitempty"`
}

// Versions returns what the cluster's operator and active gateway report.
func (c *Cluster) Versions() Versions {
	var v Versions
	if s := c.Self(); s != nil {
		v.Operator = s.Status.OperatorVersion
	}
	if l := c.GatewayLease; l != nil {
		if l.Spec.HolderIdentity != nil {
			v.GatewayNode = *l.Spec.HolderIdentity
		}
		// A handover removes the annotation until the successor writes
		// its own, so it is never another node's version.
		if v.GatewayNode != "" {
			v.Gateway = l.Annotations[wirespanv1alpha1.AnnotationVersion]
		}
	}
	return v
}
