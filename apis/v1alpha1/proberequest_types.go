package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ProbeRequest asks a gateway to look at the network from its node and
// answer in status: whether each peer's endpoint answers on UDP, the path
// MTU through each tunnel and on the underlay, the kernel's reverse-path
// filter on Wirespan's links, the gossip members it hears, and what the
// cluster DNS answers for some names. `kubectl wirespan diagnose` creates
// one, waits for the answer and deletes it; the Kubernetes API's
// authorization is the only door to these checks (no SSH, no port of the
// node's). A gateway answers a request once; the active gateway deletes
// answered requests after ten minutes.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=wsprobe;wsprobes,categories=wirespan
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.node`
// +kubebuilder:printcolumn:name="Role",type=string,JSONPath=`.status.role`
// +kubebuilder:printcolumn:name="Completed",type=date,JSONPath=`.status.completionTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ProbeRequest struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says which node answers and what it probes.
	// +optional
	Spec ProbeRequestSpec `json:"spec,omitzero"`

	// status is the answer, written once by the gateway that probed.
	// +optional
	Status ProbeRequestStatus `json:"status,omitzero"`
}

// ProbeRequestSpec says which node answers and what it probes. The node
// only probes what Wirespan already talks to: the endpoints and tunnel
// addresses of the ClusterPeers it peers with, its own links, and the
// cluster DNS Service.
type ProbeRequestSpec struct {
	// nodeName is the node whose gateway answers. Empty: the cluster's
	// active gateway. A node agent answers what concerns its node: the
	// reverse-path filter on its links and the DNS names; peers and
	// gossip are the active gateway's.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	NodeName string `json:"nodeName,omitempty"`

	// peers are the ClusterPeers to probe, by name. Empty: every remote
	// peer.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=63
	Peers []string `json:"peers,omitempty"`

	// dnsNames are names to look up, A and AAAA, through the cluster DNS
	// Service (the gateway's --cluster-dns-service), as a pod's resolver
	// would: for example echo.demo.svc.clusterset.local.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=253
	DNSNames []string `json:"dnsNames,omitempty"`
}

// ProbeRequestStatus is a gateway's answer to a ProbeRequest.
type ProbeRequestStatus struct {
	// node is the node that answered.
	// +optional
	Node string `json:"node,omitempty"`
	// role is the answering node's role then: Gateway (the active
	// gateway) or NodeAgent.
	// +optional
	Role string `json:"role,omitempty"`
	// version is the answering gateway's version.
	// +optional
	Version string `json:"version,omitempty"`
	// startTime is when the gateway began probing.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// completionTime is when it finished: the answer is complete once it
	// is set (it is written with the rest, in one update).
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// error says why the request could not be probed at all (an unknown
	// peer is reported in peers instead).
	// +optional
	Error string `json:"error,omitempty"`
	// warnings name what could not be probed (a reverse-path question
	// the kernel could not be asked); the rest of the answer stands.
	// +optional
	// +listType=atomic
	Warnings []string `json:"warnings,omitempty"`

	// peers has a result per peer probed.
	// +optional
	// +listType=atomic
	Peers []PeerProbe `json:"peers,omitempty"`
	// reversePath has a result per link and source range checked.
	// +optional
	// +listType=atomic
	ReversePath []ReversePathProbe `json:"reversePath,omitempty"`
	// gossip lists the gossip members this gateway expects: every peer
	// with a key, with the last authenticated message heard from it.
	// +optional
	// +listType=atomic
	Gossip []GossipMemberProbe `json:"gossip,omitempty"`
	// dns has a result per name of spec.dnsNames.
	// +optional
	// +listType=atomic
	DNS []DNSProbe `json:"dns,omitempty"`
}

// UDP probe results.
const (
	// UDPAnswered: a WireGuard handshake with the peer completed, recently
	// or during the probe.
	UDPAnswered = "Answered"
	// UDPRefused: the endpoint's host answered ICMP port unreachable:
	// nothing listens on the port.
	UDPRefused = "Refused"
	// UDPNoAnswer: nothing came back: the port is filtered on the way, the
	// host is down, or the peer does not accept this cluster's key.
	UDPNoAnswer = "NoAnswer"
	// UDPNotProbed: there is nothing to send to (no key, no endpoint
	// known, or the peer is unknown to this gateway).
	UDPNotProbed = "NotProbed"
)

// Probe roles.
const (
	ProbeRoleGateway   = "Gateway"
	ProbeRoleNodeAgent = "NodeAgent"
)

// PeerProbe is what a gateway found about one peer.
type PeerProbe struct {
	// name is the ClusterPeer's name.
	Name string `json:"name"`
	// endpoint is where this gateway sends the peer's WireGuard traffic.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// lastHandshakeTime is the last completed WireGuard handshake, after
	// the probe.
	// +optional
	LastHandshakeTime *metav1.Time `json:"lastHandshakeTime,omitempty"`
	// udp says whether the peer answers over UDP: Answered (an echo
	// through the tunnel came back, or a new handshake completed),
	// Refused (its endpoint's host answered port unreachable), NoAnswer
	// or NotProbed. When no echo comes back the gateway starts a new
	// handshake, and when that is not answered it sends one datagram to
	// the endpoint to tell a closed port from a silent path.
	// +optional
	UDP string `json:"udp,omitempty"`
	// udpMessage is the evidence of the UDP probe in words.
	// +optional
	UDPMessage string `json:"udpMessage,omitempty"`
	// tunnelMTU is the MTU of the WireGuard link.
	// +optional
	TunnelMTU int32 `json:"tunnelMTU,omitempty"`
	// pathMTU is the largest IP packet, in bytes, that crossed the tunnel
	// to the peer's tunnel address with don't-fragment set (an ICMP echo
	// answered); 0 when none did. It is tunnelMTU when the tunnel carries
	// every packet its link accepts.
	// +optional
	PathMTU int32 `json:"pathMTU,omitempty"`
	// underlayMTU is the path MTU to the endpoint's address on the node
	// network as the kernel knows it after a don't-fragment datagram of
	// the size a full tunnel packet takes (tunnelMTU plus WireGuard's
	// overhead); 0 when unknown.
	// +optional
	UnderlayMTU int32 `json:"underlayMTU,omitempty"`
	// overhead is WireGuard's encapsulation on the way to the endpoint:
	// 60 bytes over IPv4, 80 over IPv6.
	// +optional
	Overhead int32 `json:"overhead,omitempty"`
	// mtuMessage is the evidence of the MTU probes in words.
	// +optional
	MTUMessage string `json:"mtuMessage,omitempty"`
}

// ReversePathProbe is the kernel's verdict on packets from one source
// range arriving on one link, as its reverse-path filter judges them.
type ReversePathProbe struct {
	// link is the interface the packets arrive on.
	Link string `json:"link"`
	// source is the range they come from.
	Source string `json:"source"`
	// destination is the address they were checked against: one of this
	// cluster's pods, or of a remote range for packets from this
	// cluster's other nodes.
	Destination string `json:"destination"`
	// rpFilter is the link's effective rp_filter (the higher of its own
	// and net.ipv4.conf.all's): 0 off, 1 strict, 2 loose.
	RPFilter int32 `json:"rpFilter"`
	// accepted is false when the kernel drops such packets.
	Accepted bool `json:"accepted"`
	// message is the kernel's answer when it refused them.
	// +optional
	Message string `json:"message,omitempty"`
}

// GossipMemberProbe is one cluster the gateway expects to gossip with.
type GossipMemberProbe struct {
	// cluster is the ClusterPeer's name.
	Cluster string `json:"cluster"`
	// node is its active gateway, as its last authenticated state names
	// it.
	// +optional
	Node string `json:"node,omitempty"`
	// present is true while messages from it arrive (within five probe
	// intervals).
	Present bool `json:"present"`
	// lastAuthenticatedTime is when its last authenticated message came;
	// absent when none ever did.
	// +optional
	LastAuthenticatedTime *metav1.Time `json:"lastAuthenticatedTime,omitempty"`
}

// DNSProbe is the cluster DNS's answer for one name.
type DNSProbe struct {
	// name is the name asked.
	Name string `json:"name"`
	// server is the cluster DNS address asked (host:port).
	// +optional
	Server string `json:"server,omitempty"`
	// rcode is the response code of the A query (NOERROR, NXDOMAIN,
	// SERVFAIL...); empty when no answer came.
	// +optional
	RCode string `json:"rcode,omitempty"`
	// addresses are the A and AAAA records answered.
	// +optional
	// +listType=atomic
	Addresses []string `json:"addresses,omitempty"`
	// message says what failed, when something did.
	// +optional
	Message string `json:"message,omitempty"`
}

// ProbeRequestList is a list of ProbeRequests.
//
// +kubebuilder:object:root=true
type ProbeRequestList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ProbeRequest `json:"items"`
}
