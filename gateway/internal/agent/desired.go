// Package agent turns what a gateway or node agent knows (its node, the
// cluster's gateways, the ClusterPeers from Git, the ranges each cluster
// claims) into the kernel state it wants. It is pure: no kernel, no API
// server, no clock.
package agent

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wirespan/wirespan/gateway/internal/dataplane"
	"github.com/wirespan/wirespan/internal/cidr"
	"github.com/wirespan/wirespan/internal/claims"
)

// RouteMode says how a node agent sends cross-cluster traffic to the active
// gateway.
type RouteMode string

const (
	// RouteVXLAN encapsulates it in VXLAN to the gateway's node address, so
	// the node network only ever sees node addresses. It works wherever
	// nodes reach each other, including clouds that drop packets whose
	// source is not the sending machine's address (AWS source/destination
	// check, GCP and Azure anti-spoofing) and overlay CNIs that do not route
	// pod addresses between nodes.
	RouteVXLAN RouteMode = "vxlan"
	// RouteDirect routes it to the gateway's node address unencapsulated:
	// no overhead, but the node network must carry pod source addresses.
	RouteDirect RouteMode = "direct"
)

// WireGuardOverhead is what WireGuard adds to a packet over IPv6 (40 IPv6 +
// 8 UDP + 32 WireGuard): the tunnel MTU is the underlay MTU minus this, the
// same choice as wg-quick, so it holds over either underlay family.
const WireGuardOverhead = 80

// VXLANOverhead is what VXLAN over IPv4 adds (20 + 8 + 8 + 14), and
// VXLANOverhead6 what it adds over IPv6 (40 + 8 + 8 + 14).
const (
	VXLANOverhead  = 50
	VXLANOverhead6 = 70
)

// Config holds the settings that come from flags.
type Config struct {
	WireGuardName string
	ListenPort    int
	// TunnelCIDR is the IPv4 range tunnel addresses are derived from; every
	// gateway has one, and gossip runs on it.
	TunnelCIDR netip.Prefix
	// TunnelCIDR6 is the IPv6 range IPv6 tunnel addresses are derived
	// from, for clusters that route IPv6; invalid: IPv6 is not routed.
	TunnelCIDR6  netip.Prefix
	Table        int
	RulePriority int
	// FirewallMark marks the WireGuard device's own packets; the rule that
	// consults Table skips them (wg-quick's "not fwmark"), so no claimed
	// route can send WireGuard's UDP into its own tunnel.
	FirewallMark uint32
	Mode         RouteMode
	VXLANName    string
	VXLANVNI     int
	VXLANPort    int
	// Keepalive is the persistent keepalive towards every peer.
	// NATKeepalive replaces it when this cluster is behind NAT (its
	// ClusterPeer lists no endpoints): only this side can open or move
	// its NAT mapping, and a mapping that changed (a router restarted, a
	// timeout) is found by the peers only when this side next sends, so
	// it sends at least this often.
	Keepalive    time.Duration
	NATKeepalive time.Duration
}

// Node is the node this agent runs on.
type Node struct {
	Name string
	// IP is the node's address on the node network.
	IP netip.Addr
	// Underlay is the interface that holds IP, and UnderlayMTU its MTU.
	Underlay    string
	UnderlayMTU int
	// Networks are the prefixes of the underlay's addresses: the node
	// network, which no claim may cover.
	Networks []netip.Prefix
}

// Gateway is a node labeled as a gateway.
type Gateway struct {
	Node string
	IP   netip.Addr
}

// Peer is a remote cluster as Git declares it and as it claims.
type Peer struct {
	Cluster string
	// PublicKey is spec.publicKey; empty or invalid means no tunnel.
	PublicKey string
	// Endpoints are spec.endpoints, resolved, the one to dial first.
	// Healthy says the tunnel works on Endpoints[0]: a roam to another
	// listed endpoint (the peer's next active gateway speaking) is then
	// kept; otherwise the tunnel is pointed at Endpoints[0].
	Endpoints    []netip.AddrPort
	Healthy      bool
	AllowedCIDRs []netip.Prefix
	// Claims are the pod and Service ranges the peer announced, at most
	// claims.MaxPerList of each kind; Excess is the rest (see claims.Limit).
	Claims []netip.Prefix
	Excess []netip.Prefix
}

// Inputs is everything the desired state depends on.
type Inputs struct {
	Config  Config
	Cluster string
	Node    Node
	// Gateways are the cluster's gateway nodes, and Active the name of the
	// one that holds the active role (package election); empty: none yet.
	Gateways []Gateway
	Active   string
	// PrivateKey is the cluster key; only the active gateway needs it.
	PrivateKey *wgtypes.Key
	// SelfRanges are this cluster's own pod and Service ranges; their
	// families are the families this cluster routes (see Families).
	SelfRanges []netip.Prefix
	// SelfHasEndpoint is false when this cluster's ClusterPeer lists no
	// endpoints: it sits behind NAT and must keep its mappings open.
	SelfHasEndpoint bool
	Peers           []Peer
}

// Refusal is a claimed range that is not routed, and why: Reason in words,
// Code for metrics (a claims.Reason, or ReasonFamily).
type Refusal struct {
	Prefix netip.Prefix
	Reason string
	Code   claims.Reason
}

// ReasonFamily refuses a range of an IP family this node does not route
// (see routableFamily): this cluster has no range of that family, or the
// path to the active gateway cannot carry it. It is a fact about the two
// clusters, not a judgement of the claim, so it is not in package claims.
const ReasonFamily claims.Reason = "FamilyNotRouted"

// PeerPlan is what the agent decided about one remote cluster.
type PeerPlan struct {
	Cluster string
	// Key is the parsed public key; Problem says why a tunnel cannot be
	// built when it is empty.
	Key wgtypes.Key
	// TunnelAddr is its IPv4 tunnel address, where its gossip listens;
	// TunnelAddr6 its IPv6 one, set when the two clusters share IPv6
	// (some IPv6 range of it is routed).
	TunnelAddr  netip.Addr
	TunnelAddr6 netip.Addr
	// Endpoint is the peer's endpoint to send to (endpointFor);
	// AlsoAccepted its others while the tunnel is healthy, where it may
	// roam when another of the peer's gateways becomes active.
	Endpoint     netip.AddrPort
	AlsoAccepted []netip.AddrPort
	Routed       []netip.Prefix
	Refused      []Refusal
	Problem      string
}

// Plan is the desired kernel state and the decisions behind it.
type Plan struct {
	State dataplane.State
	// Role is "gateway" on the active gateway, "node" elsewhere.
	Role   string
	Active *Gateway
	Peers  []PeerPlan
	// GossipAddr is where the active gateway's gossip listens: its IPv4
	// tunnel address (see gossipAddress); zero on other nodes.
	GossipAddr netip.Addr
}

// Roles.
const (
	RoleGateway = "gateway"
	RoleNode    = "node"
)

// ActiveGateway is the gateway named active, nil when it is not one of
// gws.
func ActiveGateway(gws []Gateway, active string) *Gateway {
	if i := slices.IndexFunc(gws, func(g Gateway) bool { return g.Node == active }); active != "" && i >= 0 {
		g := gws[i]
		return &g
	}
	return nil
}

// TunnelAddress derives a cluster's tunnel address in the range tunnel
// (IPv4 or IPv6) from its public key, so every cluster can compute every
// other's from what Git holds. The host part is a hash of the key, at most
// 64 bits of it; it is never the range's first or last address.
func TunnelAddress(tunnel netip.Prefix, publicKey wgtypes.Key) netip.Addr {
	sum := sha256.Sum256(publicKey[:])
	hash := binary.BigEndian.Uint64(sum[:8])
	hostBits := tunnel.Addr().BitLen() - tunnel.Bits()
	var host uint64
	if hostBits < 64 {
		host = hash%(uint64(1)<<hostBits-2) + 1
	} else {
		host = min(max(hash, 1), ^uint64(0)-1)
	}
	base := tunnel.Masked().Addr()
	if base.Is4() {
		b := base.As4()
		var out [4]byte
		binary.BigEndian.PutUint32(out[:], binary.BigEndian.Uint32(b[:])|uint32(host))
		return netip.AddrFrom4(out)
	}
	b := base.As16()
	binary.BigEndian.PutUint64(b[8:], binary.BigEndian.Uint64(b[8:])|host)
	return netip.AddrFrom16(b)
}

// MAC derives a stable, locally administered unicast MAC for a node's VXLAN
// link from its node address, so node agents can write the gateway's
// neighbor entry without asking it.
func MAC(ip netip.Addr) net.HardwareAddr {
	sum := sha256.Sum256(ip.AsSlice())
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&0xfe | 0x02
	return mac
}

// Desired computes the plan for one node.
func Desired(in Inputs) Plan {
	cfg := in.Config
	plan := Plan{Role: RoleNode, Active: ActiveGateway(in.Gateways, in.Active)}
	if plan.Active != nil && plan.Active.Node == in.Node.Name {
		plan.Role = RoleGateway
	}
	fams := FamiliesOf(in.SelfRanges)
	plan.Peers = peerPlans(in, routableFamily(in, plan, fams))
	st := dataplane.State{
		Table:   cfg.Table,
		Rules:   []dataplane.Rule{{Priority: cfg.RulePriority, Table: cfg.Table, SkipMark: cfg.FirewallMark}},
		Sysctls: map[string]string{"net/ipv4/ip_forward": "1"},
	}
	if fams.IPv6 && cfg.TunnelCIDR6.IsValid() {
		// Rules are per family: IPv6 lookups need a rule of their own.
		st.Rules = append(st.Rules, dataplane.Rule{IPv6: true, Priority: cfg.RulePriority, Table: cfg.Table, SkipMark: cfg.FirewallMark})
		st.Sysctls["net/ipv6/conf/all/forwarding"] = "1"
	}
	var routed []netip.Prefix
	for _, p := range plan.Peers {
		if p.Problem == "" {
			routed = append(routed, p.Routed...)
		}
	}
	routed = sortPrefixes(routed)
	switch {
	case plan.Role == RoleGateway && in.PrivateKey != nil:
		gatewayState(&st, in, fams, plan.Peers, routed)
		plan.GossipAddr = gossipAddress(cfg, in.PrivateKey.PublicKey())
	case plan.Role == RoleNode && plan.Active != nil:
		nodeState(&st, in, fams, *plan.Active, routed)
	}
	plan.State = st
	return plan
}

func gatewayState(st *dataplane.State, in Inputs, fams Families, peers []PeerPlan, routed []netip.Prefix) {
	cfg := in.Config
	pub := in.PrivateKey.PublicKey()
	self := TunnelAddress(cfg.TunnelCIDR, pub)
	dev := &dataplane.Device{
		Name:         cfg.WireGuardName,
		PrivateKey:   *in.PrivateKey,
		ListenPort:   cfg.ListenPort,
		FirewallMark: int(cfg.FirewallMark),
		MTU:          in.Node.UnderlayMTU - WireGuardOverhead,
		Addresses:    []netip.Prefix{netip.PrefixFrom(self, 32)},
	}
	var self6 netip.Addr
	if fams.IPv6 && cfg.TunnelCIDR6.IsValid() {
		self6 = TunnelAddress(cfg.TunnelCIDR6, pub)
		dev.Addresses = append(dev.Addresses, netip.PrefixFrom(self6, 128))
	}
	// src picks the tunnel address of the destination's family: the
	// kernel refuses a route whose source is of another family.
	src := func(dst netip.Prefix) netip.Addr {
		if dst.Addr().Is4() {
			return self
		}
		return self6
	}
	for _, p := range peers {
		if p.Problem != "" {
			continue
		}
		tunnels := p.tunnelPrefixes()
		// Every peer gets the keepalive: setting it makes WireGuard send
		// one at once, so a gateway that just became active announces
		// itself to every peer and their tunnels roam to it without waiting
		// for traffic; it also keeps NAT mappings open.
		peer := dataplane.Peer{
			PublicKey:    p.Key,
			Endpoint:     p.Endpoint,
			AlsoAccepted: p.AlsoAccepted,
			AllowedIPs:   append(slices.Clone(tunnels), p.Routed...),
			Keepalive:    cfg.Keepalive,
		}
		if !in.SelfHasEndpoint && cfg.NATKeepalive > 0 {
			peer.Keepalive = cfg.NATKeepalive
		}
		dev.Peers = append(dev.Peers, peer)
		for _, t := range tunnels {
			st.Routes = append(st.Routes, dataplane.Route{Dst: t, Dev: cfg.WireGuardName, Src: src(t)})
		}
	}
	for _, p := range routed {
		st.Routes = append(st.Routes, dataplane.Route{Dst: p, Dev: cfg.WireGuardName, Src: src(p)})
	}
	st.WireGuard = dev
	// One clamp serves both families: nftables' "rt mtu" takes off the
	// header size of the packet's own family (40 + 20 for IPv6).
	st.MSSClamp = []string{cfg.WireGuardName}
	// Forwarded cross-cluster traffic arrives from sources the reverse path
	// check would send elsewhere: loose mode keeps it. (IPv6 has no
	// reverse path check in the kernel's routing.)
	st.Sysctls["net/ipv4/conf/"+cfg.WireGuardName+"/rp_filter"] = "2"
	switch cfg.Mode {
	case RouteVXLAN:
		st.VXLAN = vxlan(cfg, in.Node, netip.Addr{})
		st.Sysctls["net/ipv4/conf/"+cfg.VXLANName+"/rp_filter"] = "2"
	case RouteDirect:
		st.Sysctls["net/ipv4/conf/"+in.Node.Underlay+"/rp_filter"] = "2"
	}
	sortRoutes(st.Routes)
}

func nodeState(st *dataplane.State, in Inputs, fams Families, active Gateway, routed []netip.Prefix) {
	cfg := in.Config
	if cfg.Mode == RouteVXLAN {
		st.VXLAN = vxlan(cfg, in.Node, active.IP)
		mac := MAC(active.IP)
		if active.IP.Is4() {
			st.Neighbors = append(st.Neighbors, dataplane.Neighbor{Dev: cfg.VXLANName, IP: active.IP, MAC: mac})
		}
		if fams.IPv6 {
			st.Neighbors = append(st.Neighbors, dataplane.Neighbor{Dev: cfg.VXLANName, IP: VXLANLinkLocal(active.IP), MAC: mac})
		}
		st.Sysctls["net/ipv4/conf/"+cfg.VXLANName+"/rp_filter"] = "2"
		// Replies come back through the node network, not the VXLAN link
		// their reverse route names: loose mode lets them in.
		st.Sysctls["net/ipv4/conf/"+in.Node.Underlay+"/rp_filter"] = "2"
	}
	for _, p := range routed {
		hop := nextHop(cfg, in.Node, active, p.Addr().Is6())
		hop.Dst = p
		st.Routes = append(st.Routes, hop)
	}
	sortRoutes(st.Routes)
}

// nextHop is how a node agent reaches the active gateway in one family, as
// a route without its destination. Over VXLAN, IPv4 goes to the gateway's
// node address and IPv6 to the link-local address derived from the
// gateway's VXLAN MAC (VXLANLinkLocal); permanent neighbor entries
// (nodeState) resolve both to that MAC. So VXLAN carries both families
// whatever the node network's family, and no address needs to be assigned
// or learned. Direct routes go to the gateway's node address, which must
// be of the route's family (routableFamily refuses the other).
func nextHop(cfg Config, n Node, active Gateway, is6 bool) dataplane.Route {
	switch {
	case cfg.Mode != RouteVXLAN:
		return dataplane.Route{Dev: n.Underlay, Via: active.IP}
	case is6:
		return dataplane.Route{Dev: cfg.VXLANName, Via: VXLANLinkLocal(active.IP)}
	default:
		return dataplane.Route{Dev: cfg.VXLANName, Via: active.IP, Onlink: true}
	}
}

func vxlan(cfg Config, n Node, remote netip.Addr) *dataplane.VXLAN {
	overhead := VXLANOverhead
	if n.IP.Is6() {
		overhead = VXLANOverhead6
	}
	return &dataplane.VXLAN{
		Name: cfg.VXLANName, VNI: cfg.VXLANVNI, Port: cfg.VXLANPort,
		Underlay: n.Underlay, Local: n.IP, Remote: remote,
		MAC: MAC(n.IP), MTU: n.UnderlayMTU - overhead,
	}
}

// peerPlans decides, for every remote cluster, the key, endpoint and which
// claimed ranges are routed. Which claims are accepted is claims.Decide's
// decision, the same the operator shows in the CIDRsAccepted and
// CIDRConflict conditions; this node adds only what it alone knows (its
// node network, the endpoints as resolved, the tunnel range) and refuses
// a range of a family it cannot route (see routableFamily).
func peerPlans(in Inputs, family func(netip.Prefix) string) []PeerPlan {
	decided := claims.Decide(claimsInputs(in))
	tunnels := map[netip.Addr]string{}
	var plans []PeerPlan
	for _, p := range in.Peers {
		pp := PeerPlan{Cluster: p.Cluster}
		key, err := wgtypes.ParseKey(p.PublicKey)
		switch {
		case p.PublicKey == "":
			pp.Problem = "spec.publicKey is empty"
		case err != nil:
			pp.Problem = fmt.Sprintf("spec.publicKey is not a WireGuard key: %v", err)
		default:
			pp.Key = key
			pp.TunnelAddr = TunnelAddress(in.Config.TunnelCIDR, key)
			if other, taken := tunnels[pp.TunnelAddr]; taken {
				pp.Problem = fmt.Sprintf("tunnel address %s is also derived for cluster %s; change one cluster's key", pp.TunnelAddr, other)
			}
			tunnels[pp.TunnelAddr] = p.Cluster
		}
		pp.Endpoint = endpointFor(p.Endpoints, in.Node.IP)
		if p.Healthy {
			for _, ep := range p.Endpoints {
				if ep != pp.Endpoint {
					pp.AlsoAccepted = append(pp.AlsoAccepted, ep)
				}
			}
		}
		d := decided[p.Cluster]
		for _, r := range d.Refused {
			pp.Refused = append(pp.Refused, Refusal{Prefix: r.Prefix, Reason: r.Detail, Code: r.Reason})
		}
		for _, c := range d.Accepted {
			if r := family(c); r != "" {
				pp.Refused = append(pp.Refused, Refusal{Prefix: c, Reason: r, Code: ReasonFamily})
				continue
			}
			pp.Routed = append(pp.Routed, c)
		}
		if pp.Key != (wgtypes.Key{}) && slices.ContainsFunc(pp.Routed, func(p netip.Prefix) bool { return p.Addr().Is6() }) {
			pp.TunnelAddr6 = TunnelAddress(in.Config.TunnelCIDR6, key)
		}
		slices.SortFunc(pp.Refused, func(a, b Refusal) int { return cidr.Compare(a.Prefix, b.Prefix) })
		plans = append(plans, pp)
	}
	slices.SortFunc(plans, func(a, b PeerPlan) int { return strings.Compare(a.Cluster, b.Cluster) })
	return plans
}

// claimsInputs are the inputs of claims.Decide as this node sees them. The
// ranges it protects are the node network (its own underlay's prefixes,
// its own address and the gateways'), every peer's endpoint (WireGuard's
// own packets go there) and the tunnel range (gossip goes there).
func claimsInputs(in Inputs) claims.Inputs {
	ci := claims.Inputs{Self: in.Cluster, SelfRanges: in.SelfRanges}
	protect := func(p netip.Prefix, r claims.Reason, what string) {
		if p.IsValid() {
			ci.Protected = append(ci.Protected, claims.Protected{Prefix: p.Masked(), Reason: r, What: what})
		}
	}
	for _, n := range in.Node.Networks {
		protect(n, claims.ReasonNodeNetwork, "node network of "+in.Node.Underlay)
	}
	if in.Node.IP.IsValid() {
		protect(netip.PrefixFrom(in.Node.IP, in.Node.IP.BitLen()), claims.ReasonNodeNetwork, "address of node "+in.Node.Name)
	}
	for _, g := range in.Gateways {
		protect(netip.PrefixFrom(g.IP, g.IP.BitLen()), claims.ReasonNodeNetwork, "address of gateway node "+g.Node)
	}
	protect(in.Config.TunnelCIDR, claims.ReasonTunnelRange, "tunnel range (--tunnel-cidr)")
	protect(in.Config.TunnelCIDR6, claims.ReasonTunnelRange, "IPv6 tunnel range (--tunnel-cidr-v6)")
	for _, p := range in.Peers {
		for _, ep := range p.Endpoints {
			protect(netip.PrefixFrom(ep.Addr(), ep.Addr().BitLen()), claims.ReasonPeerEndpoint, "endpoint of cluster "+p.Cluster)
		}
		ci.Claimers = append(ci.Claimers, claims.Claimer{Name: p.Cluster, Allowed: p.AllowedCIDRs, Claims: p.Claims, Excess: p.Excess})
	}
	return ci
}

func sortPrefixes(ps []netip.Prefix) []netip.Prefix {
	out := slices.Clone(ps)
	slices.SortFunc(out, cidr.Compare)
	return slices.Compact(out)
}

func sortRoutes(rs []dataplane.Route) {
	slices.SortFunc(rs, func(a, b dataplane.Route) int { return cidr.Compare(a.Dst, b.Dst) })
}
