package agent

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/gateway/internal/dataplane"
	"github.com/wirespan/wirespan/internal/cidr"
	"github.com/wirespan/wirespan/internal/claims"
)

// HandshakeFresh is how old the last handshake may be for a tunnel to count
// as connected: WireGuard re-keys every 2 minutes while traffic flows and
// keepalives (or gossip) keep it flowing, and rejects a session after 3.
const HandshakeFresh = 3 * time.Minute

// Learned is what a remote cluster announced about itself over gossip.
type Learned struct {
	PodCIDRs, ServiceCIDRs []netip.Prefix
	ActiveGateway          string
}

// Observation is what the gateway sees of one remote cluster.
type Observation struct {
	// Learned is nil until the cluster's state arrived over gossip.
	Learned *Learned
	// WireGuard is the device's peer entry; nil when there is none.
	WireGuard *wgtypes.Peer
	// RTT is the last gossip probe's round trip; zero when unknown.
	RTT time.Duration
	// SelfKeyMismatch is true when this cluster's own spec.publicKey is not
	// the key its gateways use, so no remote can complete a handshake.
	SelfKeyMismatch bool
	// Refused are this cluster's kernel objects (its WireGuard peer, its
	// routes) that the last apply could not put in place; see
	// PeerPlan.Concerns.
	Refused []dataplane.Refusal
	Now     time.Time
}

// RemoteStatus is the status of a remote ClusterPeer with the fields the
// gateway owns (learned ranges, gateways, tunnel, Connected) set from what
// it sees; every other field is kept as it is.
func RemoteStatus(cur wirespanv1alpha1.ClusterPeerStatus, generation int64, p PeerPlan, obs Observation) wirespanv1alpha1.ClusterPeerStatus {
	st := *cur.DeepCopy()
	if l := obs.Learned; l != nil {
		st.Role = wirespanv1alpha1.RoleRemote
		// Gossip carries longer lists than the status holds: the excess
		// is refused (claims.Limit, reason TooMany), never written, so the
		// status write cannot fail on it.
		pods, _ := claims.Limit(l.PodCIDRs)
		services, _ := claims.Limit(l.ServiceCIDRs)
		st.PodCIDRs = cidr.Strings(pods)
		st.ServiceCIDRs = cidr.Strings(services)
		st.Gateways = nil
		if l.ActiveGateway != "" {
			st.Gateways = []wirespanv1alpha1.GatewayStatus{{Node: l.ActiveGateway, Active: true}}
		}
	}
	st.Tunnel = tunnelStatus(obs)
	c := connected(p, obs)
	c.ObservedGeneration = generation
	c.LastTransitionTime = metav1.NewTime(obs.Now.Truncate(time.Second))
	meta.SetStatusCondition(&st.Conditions, c)
	return st
}

func tunnelStatus(obs Observation) *wirespanv1alpha1.TunnelStatus {
	w := obs.WireGuard
	if w == nil {
		return nil
	}
	t := &wirespanv1alpha1.TunnelStatus{RxBytes: w.ReceiveBytes, TxBytes: w.TransmitBytes}
	if w.Endpoint != nil {
		t.Endpoint = dataplane.UnmapAddrPort(w.Endpoint.AddrPort()).String()
	}
	if !w.LastHandshakeTime.IsZero() {
		hs := metav1.NewTime(w.LastHandshakeTime.Truncate(time.Second))
		t.LastHandshakeTime = &hs
	}
	if obs.RTT > 0 {
		t.Latency = &metav1.Duration{Duration: obs.RTT.Round(10 * time.Microsecond)}
	}
	return t
}

func connected(p PeerPlan, obs Observation) metav1.Condition {
	c := metav1.Condition{Type: wirespanv1alpha1.ConditionConnected, Status: metav1.ConditionFalse}
	w := obs.WireGuard
	fresh := w != nil && !w.LastHandshakeTime.IsZero() && obs.Now.Sub(w.LastHandshakeTime) < HandshakeFresh
	switch {
	case p.Problem != "" && p.Key == (wgtypes.Key{}):
		c.Reason, c.Message = wirespanv1alpha1.ReasonNoPublicKey, p.Problem+"; put the key from that cluster's self ClusterPeer status.publicKey in Git"
	case p.Problem != "":
		c.Reason, c.Message = wirespanv1alpha1.ReasonTunnelAddressConflict, p.Problem
	case obs.SelfKeyMismatch && !fresh:
		c.Reason = wirespanv1alpha1.ReasonSelfKeyMismatch
		c.Message = "this cluster's spec.publicKey in Git is not the key its gateways use, so no handshake can complete; see the self ClusterPeer's KeyMatches condition"
	case fresh && len(p.Routed) == 0 && len(p.Refused) > 0 && !onlyFamily(p.Refused):
		c.Reason = wirespanv1alpha1.ReasonCIDRsRefused
		c.Message = "the tunnel is up, but every range the cluster claims is refused: " + describeRefusals(p.Refused)
	case fresh:
		c.Status, c.Reason = metav1.ConditionTrue, wirespanv1alpha1.ReasonConnected
		// No "N seconds ago" here: a message that changes on every sync
		// would rewrite the status every sync. The time is in
		// status.tunnel.lastHandshakeTime.
		c.Message = fmt.Sprintf("a handshake completed within the last %s", HandshakeFresh)
		if len(p.Routed) == 0 && len(p.Refused) > 0 {
			// Two clusters with no IP family in common, in a mixed
			// clusterset: connected as they can be (gossip goes through),
			// with nothing to route, which is no fault of either.
			c.Message += "; the two clusters have no IP family in common, so nothing is routed"
		}
		if len(p.Refused) > 0 {
			c.Message += "; refused ranges: " + describeRefusals(p.Refused)
		}
		if len(obs.Refused) > 0 {
			c.Message += "; " + describeKernelRefusals(obs.Refused)
		}
	case len(obs.Refused) > 0:
		c.Reason = wirespanv1alpha1.ReasonKernelRefused
		c.Message = describeKernelRefusals(obs.Refused)
	case !p.Endpoint.IsValid() && (w == nil || w.Endpoint == nil):
		c.Reason = wirespanv1alpha1.ReasonNoEndpoint
		c.Message = "the cluster lists no spec.endpoints and has not dialed in yet; it must reach one of this cluster's endpoints"
	default:
		ep := p.Endpoint.String()
		if w != nil && w.Endpoint != nil {
			ep = w.Endpoint.String()
		}
		c.Reason = wirespanv1alpha1.ReasonNoHandshake
		c.Message = "no handshake yet with " + ep + "; check that its UDP port is reachable and its spec.publicKey is right"
	}
	return c
}

// onlyFamily says whether every refusal is of a family this cluster does
// not route (ReasonFamily).
func onlyFamily(rs []Refusal) bool {
	for _, r := range rs {
		if r.Code != ReasonFamily {
			return false
		}
	}
	return true
}

func describeRefusals(rs []Refusal) string {
	parts := make([]string, 0, len(rs))
	for _, r := range rs {
		parts = append(parts, r.Prefix.String()+" ("+r.Reason+")")
	}
	return strings.Join(parts, ", ")
}

func describeKernelRefusals(rs []dataplane.Refusal) string {
	parts := make([]string, 0, len(rs))
	for _, r := range rs {
		parts = append(parts, r.Error())
	}
	return "the kernel refused, and is asked again every sync: " + strings.Join(parts, "; ")
}

// Concerns says whether a kernel refusal is about this peer: its WireGuard
// peer, a route to its tunnel address or to a range routed to it, or the
// WireGuard link (named wireGuard: its creation, address, MTU) that every
// tunnel needs.
func (p PeerPlan) Concerns(r dataplane.Refusal, wireGuard string) bool {
	switch {
	case p.Problem != "":
		return false // no tunnel is built for it
	case r.Link != "":
		return r.Link == wireGuard
	case r.Peer != (wgtypes.Key{}):
		return r.Peer == p.Key
	case r.Dst.IsValid():
		return slices.Contains(p.tunnelPrefixes(), r.Dst) || slices.Contains(p.Routed, r.Dst)
	}
	return false
}
