package v1alpha1

// Condition types on ClusterPeer status. Each type's reasons follow it. The
// same list, with what each means for a user, is in docs/api.md; a test keeps
// the two in step.
const (
	// ConditionReady summarises the peer. On the self ClusterPeer it is True
	// when CIDRs are discovered, the key in Git matches the key in use and no
	// range conflicts with another peer. On a remote one it is True when its
	// CIDRs are accepted and the tunnel to it is up.
	ConditionReady = "Ready"

	// ConditionKeyMatches (self only) says whether spec.publicKey, from Git,
	// is the public half of the key pair in the cluster key Secret.
	ConditionKeyMatches = "KeyMatches"

	// ConditionCIDRsDiscovered (self only) says whether the operator found
	// the cluster's pod and Service CIDRs.
	ConditionCIDRsDiscovered = "CIDRsDiscovered"

	// ConditionCIDRsAccepted says whether every CIDR the peer claims is
	// accepted: inside its spec.allowedCIDRs (an empty list accepts
	// nothing) and none of the ranges Wirespan never routes (too wide,
	// loopback, link-local, multicast, a node network, a peer's endpoint,
	// the tunnel range). Refused ranges are never routed; docs/security.md
	// lists each reason.
	ConditionCIDRsAccepted = "CIDRsAccepted"

	// ConditionCIDRConflict is True when a range of this peer overlaps a
	// range of another peer; the message names both. Overlapping ranges are
	// never routed. Modelled on the Multi-Cluster Services API's Conflict.
	ConditionCIDRConflict = "CIDRConflict"

	// ConditionConnected (remote only) says whether a WireGuard tunnel to the
	// peer is up. Written by the gateways.
	ConditionConnected = "Connected"
)

// Reasons for ConditionReady.
const (
	// ReasonReady: everything the peer needs is in place.
	ReasonReady = "Ready"
	// ReasonNotReady: another condition is not as it should be; the message
	// names it.
	ReasonNotReady = "NotReady"
	// ReasonAwaitingTunnel: the peer's configuration is accepted but no
	// gateway has reported a tunnel to it yet.
	ReasonAwaitingTunnel = "AwaitingTunnel"
)

// Reasons for ConditionKeyMatches.
const (
	// ReasonKeyMatches: spec.publicKey is the key in use.
	ReasonKeyMatches = "Matches"
	// ReasonKeyMismatch: spec.publicKey differs from the key in use; the
	// message gives the key to put in Git.
	ReasonKeyMismatch = "Mismatch"
	// ReasonKeyNotSet: spec.publicKey is empty; the message gives the key to
	// put in Git.
	ReasonKeyNotSet = "NotSet"
	// ReasonKeySecretInvalid: the cluster key Secret exists but holds no
	// valid WireGuard private key. The operator never overwrites it.
	ReasonKeySecretInvalid = "SecretInvalid"
	// ReasonKeySecretPending: the key Secret is being created.
	ReasonKeySecretPending = "SecretPending"
)

// Reasons for ConditionCIDRsDiscovered.
const (
	// ReasonDiscovered: the CIDRs were read from Nodes and ServiceCIDRs.
	ReasonDiscovered = "Discovered"
	// ReasonOverridden: at least one family of ranges comes from the
	// operator's --pod-cidrs or --service-cidrs flags.
	ReasonOverridden = "Overridden"
	// ReasonNoPodCIDRs: no Node has spec.podCIDRs and no --pod-cidrs flag is
	// set (common with CNIs that manage their own IPAM).
	ReasonNoPodCIDRs = "NoPodCIDRs"
	// ReasonNoServiceCIDRs: no ServiceCIDR object exists and no
	// --service-cidrs flag is set.
	ReasonNoServiceCIDRs = "NoServiceCIDRs"
)

// Reasons for ConditionCIDRsAccepted.
const (
	// ReasonAccepted: every claimed range is allowed.
	ReasonAccepted = "Accepted"
	// ReasonOutsideAllowedCIDRs: some claimed ranges are outside
	// spec.allowedCIDRs; the message lists them.
	ReasonOutsideAllowedCIDRs = "OutsideAllowedCIDRs"
	// ReasonNoCIDRsKnown: the peer has claimed no ranges yet.
	ReasonNoCIDRsKnown = "NoCIDRsKnown"
	// ReasonNoAllowedCIDRs: spec.allowedCIDRs is empty, which accepts
	// nothing; the message gives the allowedCIDRs to put in Git.
	ReasonNoAllowedCIDRs = "NoAllowedCIDRs"
	// ReasonNeverRouted: some claimed ranges are ranges Wirespan never
	// routes, whatever Git says (too wide, loopback, link-local, multicast,
	// a node network, a peer's endpoint, the tunnel range, or more than a
	// status list holds); the message names each with its reason.
	ReasonNeverRouted = "NeverRouted"
)

// Reasons for ConditionCIDRConflict.
const (
	// ReasonOverlap: ranges overlap with another peer's; the message lists
	// each pair.
	ReasonOverlap = "Overlap"
	// ReasonNoConflict: no range overlaps another peer's.
	ReasonNoConflict = "NoConflict"
)

// Reasons for ConditionConnected.
const (
	// ReasonConnected: a handshake completed recently.
	ReasonConnected = "Connected"
	// ReasonNoEndpoint: neither side has an endpoint the other can dial.
	ReasonNoEndpoint = "NoEndpoint"
	// ReasonNoPublicKey: the peer's spec.publicKey is empty.
	ReasonNoPublicKey = "NoPublicKey"
	// ReasonNoHandshake: the peer is configured but no handshake has
	// completed yet.
	ReasonNoHandshake = "NoHandshake"
	// ReasonSelfKeyMismatch: this cluster's own spec.publicKey is not the
	// key its gateways use, so remote clusters cannot complete a handshake.
	ReasonSelfKeyMismatch = "KeyMismatch"
	// ReasonCIDRsRefused: the tunnel is up but every range the peer claims
	// is refused, so nothing is routed to it.
	ReasonCIDRsRefused = "CIDRsRefused"
	// ReasonKernelRefused: the node's kernel refused part of the tunnel's
	// configuration (the WireGuard device, the peer, or a route to the
	// peer) and no handshake has completed; the message names each object and the
	// kernel's error. It is tried again on every sync.
	ReasonKernelRefused = "KernelRefused"
	// ReasonTunnelAddressConflict: the peer's key derives the same tunnel
	// address as another peer's; one of the clusters needs a new key.
	ReasonTunnelAddressConflict = "TunnelAddressConflict"
)
