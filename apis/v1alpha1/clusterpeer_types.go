package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClusterPeer is one cluster of the clusterset. The same set of ClusterPeers
// is applied to every cluster, usually from Git. The ClusterPeer whose name is
// this cluster's ID describes this cluster ("self"); the others describe the
// clusters this one peers with ("remote"). People own spec; Wirespan writes
// status.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=cpeer;cpeers,categories=wirespan
// +kubebuilder:printcolumn:name="Role",type=string,JSONPath=`.status.role`
// +kubebuilder:printcolumn:name="Pod CIDRs",type=string,JSONPath=`.status.podCIDRs`
// +kubebuilder:printcolumn:name="Service CIDRs",type=string,JSONPath=`.status.serviceCIDRs`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Endpoints",type=string,JSONPath=`.spec.endpoints`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 63",message="metadata.name is the cluster ID and must be an RFC 1123 label: at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit"
type ClusterPeer struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata. metadata.name is the cluster
	// ID: an RFC 1123 label, the same in every cluster of the clusterset.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what the owner of the clusterset declares about this cluster,
	// usually kept in Git.
	// +required
	Spec ClusterPeerSpec `json:"spec"`

	// status is what Wirespan observed about this cluster. It is written by
	// the operator and the gateways of the cluster it is read in.
	// +optional
	Status ClusterPeerStatus `json:"status,omitzero"`
}

// ClusterPeerSpec is the declared, Git-owned description of a cluster.
type ClusterPeerSpec struct {
	// publicKey is the cluster's WireGuard public key: 32 bytes, base64
	// encoded (44 characters ending in '='), as printed by `wg pubkey`. All
	// gateways of the cluster share the key pair. It may be left empty until
	// the key is known: the operator of that cluster shows the key it uses in
	// status.publicKey, and no tunnel is built to a peer without a key.
	// +optional
	// +kubebuilder:validation:MaxLength=44
	// +kubebuilder:validation:XValidation:rule="size(self) == 44 && self.matches('^[A-Za-z0-9+/]{43}=$')",message="must be a WireGuard public key: 32 bytes in base64, 44 characters ending in '=' (the output of `wg pubkey`)"
	// +kubebuilder:validation:XValidation:rule="size(self) != 44 || !self.matches('^[A-Za-z0-9+/]{43}=$') || self.matches('[AEIMQUYcgkosw048]=$')",message="is not a canonical base64 encoding of 32 bytes (the character before '=' must be one of AEIMQUYcgkosw048)"
	PublicKey string `json:"publicKey,omitempty"`

	// endpoints are the addresses, as host:port, where the cluster's gateways
	// accept WireGuard traffic. host is a DNS name, an IPv4 address or an IPv6
	// address in brackets ([2001:db8::1]:51820); port is 1-65535. Gateways
	// try them in order. Leave it empty for a cluster behind NAT that only
	// dials out: the other side then learns its address from the first
	// authenticated packet.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=262
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^(\\\\[[^\\\\]]+\\\\]|[^:\\\\[\\\\]]+):[0-9]+$')",message="must be host:port, for example gw.example.com:51820, 192.0.2.10:51820 or [2001:db8::10]:51820 (IPv6 addresses go in brackets)"
	// +kubebuilder:validation:items:XValidation:rule="!self.matches(':[0-9]+$') || (self.matches(':[0-9]{1,5}$') && int(self.substring(self.lastIndexOf(':') + 1)) >= 1 && int(self.substring(self.lastIndexOf(':') + 1)) <= 65535)",message="port must be a number from 1 to 65535"
	// +kubebuilder:validation:items:XValidation:rule="!self.startsWith('[') || !self.contains(']:') || (isIP(self.substring(1, self.indexOf(']'))) && ip(self.substring(1, self.indexOf(']'))).family() == 6)",message="the address in brackets must be an IPv6 address"
	// +kubebuilder:validation:items:XValidation:rule="self.startsWith('[') || !self.matches(':[0-9]+$') || isIP(self.substring(0, self.lastIndexOf(':'))) || (self.lastIndexOf(':') <= 253 && self.substring(0, self.lastIndexOf(':')).matches('^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\\\\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$'))",message="host must be a DNS name (RFC 1123), an IPv4 address, or an IPv6 address in brackets"
	Endpoints []string `json:"endpoints,omitempty"`

	// allowedCIDRs is an upper bound on the pod and Service CIDRs this cluster
	// may claim. A claim outside these ranges is refused: never routed, and
	// reported in the CIDRsAccepted condition. Empty accepts nothing: no
	// range of this cluster is routed until Git lists its ranges here (the
	// CIDRsAccepted condition says which). Even inside these ranges, some
	// are never routed: wider than /8 (IPv4) or /32 (IPv6), loopback,
	// link-local, multicast, a node network, a peer's endpoint, the tunnel
	// range. Each entry is a CIDR in canonical form with no host bits set,
	// such as 10.8.0.0/16 or fd00:10:8::/48.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=43
	// +kubebuilder:validation:items:XValidation:rule="isCIDR(self)",message="must be a CIDR such as 10.8.0.0/16 or fd00:10:8::/48 (IPv4 prefix length at most 32, IPv6 at most 128)"
	// +kubebuilder:validation:items:XValidation:rule="!isCIDR(self) || string(cidr(self).masked()) == self",message="must have no host bits set and be in canonical form: 10.8.0.0/16, not 10.8.0.1/16 or 10.8.00.0/16; fd00:10:8::/48, not FD00:10:8:0::/48"
	AllowedCIDRs []string `json:"allowedCIDRs,omitempty"`

	// exportNamespaces, if set, lists the only namespaces from which this
	// cluster's exported Services are imported by the others. By default
	// Wirespan follows the Multi-Cluster Services API's namespace sameness:
	// a cluster may export into any namespace, and the others import what
	// it exports (a Service of theirs in the same namespace and name merges
	// with it). Set it when that is too trusting: an export from another
	// namespace is then left out everywhere and counted
	// (wirespan_mcs_unusable_records_total, reason "namespace").
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="must be a namespace name: lowercase letters, digits and '-', starting and ending with a letter or digit (RFC 1123 label)"
	ExportNamespaces []string `json:"exportNamespaces,omitempty"`
}

// ClusterPeerStatus is what Wirespan observed about a cluster.
type ClusterPeerStatus struct {
	// role is Self on the ClusterPeer that describes the cluster it is read
	// in, and Remote on every other.
	// +optional
	Role PeerRole `json:"role,omitempty"`

	// publicKey is the WireGuard public key the cluster's gateways actually
	// use, from its key Secret. Set on the self ClusterPeer only; copy it to
	// spec.publicKey in Git.
	// +optional
	// +kubebuilder:validation:MaxLength=44
	PublicKey string `json:"publicKey,omitempty"`

	// operatorVersion is the version of the operator that last wrote this
	// status, as its binary reports it (also in its log at start and in the
	// wirespan_build_info metric). Set on the self ClusterPeer only;
	// `kubectl wirespan diagnose` compares it across clusters, with the
	// active gateway's, to find a rolling upgrade left half done.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	OperatorVersion string `json:"operatorVersion,omitempty"`

	// podCIDRs are the cluster's pod address ranges: on the self ClusterPeer,
	// discovered from Node.spec.podCIDRs (or set by flag) and summarised
	// without claiming space no node holds; on a remote one, as learned from
	// that cluster.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	PodCIDRs []string `json:"podCIDRs,omitempty"`

	// serviceCIDRs are the cluster's Service ClusterIP ranges: on the self
	// ClusterPeer, from the networking.k8s.io ServiceCIDR objects (or set by
	// flag); on a remote one, as learned from that cluster.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	ServiceCIDRs []string `json:"serviceCIDRs,omitempty"`

	// gateways are the cluster's gateway nodes as last seen, at most one of
	// them active.
	// +optional
	// +listType=map
	// +listMapKey=node
	// +kubebuilder:validation:MaxItems=32
	Gateways []GatewayStatus `json:"gateways,omitempty"`

	// tunnel describes the WireGuard tunnel from this cluster to a remote
	// one. Not set on the self ClusterPeer.
	// +optional
	Tunnel *TunnelStatus `json:"tunnel,omitempty"`

	// observedGeneration is the metadata.generation of the spec this status
	// was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions describe the peer's state. Types and reasons are listed in
	// docs/api.md: Ready, KeyMatches, CIDRsDiscovered, CIDRsAccepted,
	// CIDRConflict and Connected.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// PeerRole says whether a ClusterPeer describes the cluster it is read in.
// +kubebuilder:validation:Enum=Self;Remote
type PeerRole string

const (
	// RoleSelf marks the ClusterPeer named by this cluster's ID.
	RoleSelf PeerRole = "Self"
	// RoleRemote marks every other ClusterPeer.
	RoleRemote PeerRole = "Remote"
)

// GatewayStatus is one gateway node of a cluster.
type GatewayStatus struct {
	// node is the name of the gateway's Node in its own cluster.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Node string `json:"node"`

	// endpoint is the host:port the gateway's WireGuard device is reached at.
	// +optional
	// +kubebuilder:validation:MaxLength=262
	Endpoint string `json:"endpoint,omitempty"`

	// active is true on the one gateway that currently carries the
	// cluster's traffic.
	// +optional
	Active bool `json:"active,omitempty"`
}

// TunnelStatus holds the figures of the WireGuard tunnel to a remote cluster.
type TunnelStatus struct {
	// endpoint is the address the remote cluster's traffic last came from.
	// +optional
	// +kubebuilder:validation:MaxLength=262
	Endpoint string `json:"endpoint,omitempty"`

	// lastHandshakeTime is when the last WireGuard handshake with the remote
	// cluster completed.
	// +optional
	LastHandshakeTime *metav1.Time `json:"lastHandshakeTime,omitempty"`

	// rxBytes counts bytes received from the remote cluster.
	// +optional
	RxBytes int64 `json:"rxBytes,omitempty"`

	// txBytes counts bytes sent to the remote cluster.
	// +optional
	TxBytes int64 `json:"txBytes,omitempty"`

	// latency is the last measured round-trip time to the remote cluster's
	// active gateway, through the tunnel.
	// +optional
	Latency *metav1.Duration `json:"latency,omitempty"`
}

// ClusterPeerList is a list of ClusterPeers.
//
// +kubebuilder:object:root=true
type ClusterPeerList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the ClusterPeers.
	Items []ClusterPeer `json:"items"`
}
