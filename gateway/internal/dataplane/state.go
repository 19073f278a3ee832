// Package dataplane describes the kernel state Wirespan wants on a node, the
// small interfaces through which that state is read and changed (the kernel
// seam), and the Applier that turns the difference between wanted and found
// into the fewest changes. It imports no kernel code: the Linux
// implementation is in dataplane/linux, an in-memory one in dataplane/fake.
package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// RouteProtocol is the rtnetlink protocol number that tags Wirespan's routes
// and rules ("proto 201" in `ip route`). Only objects carrying it are ever
// changed or deleted.
const RouteProtocol = 201

// State is everything Wirespan wants in the kernel of one node.
type State struct {
	// WireGuard is the tunnel device; nil on a node agent.
	WireGuard *Device
	// VXLAN is the link that carries traffic between node agents and the
	// active gateway; nil when routes go straight over the node network.
	VXLAN *VXLAN
	// Neighbors are permanent neighbor entries Wirespan owns (the gateway's
	// VXLAN MAC on node agents).
	Neighbors []Neighbor
	// Table is the routing table that holds Routes; Rules send lookups to
	// it.
	Table int
	// Routes are the routes to remote clusters' ranges, all in Table, of
	// both families.
	Routes []Route
	// Rules are the policy rules that consult Table, one per IP family the
	// node routes (policy rules are per family in Linux); rules of
	// Wirespan's not listed are removed.
	Rules []Rule
	// MSSClamp lists the interfaces on which forwarded TCP SYNs get their
	// MSS clamped to the route's MTU.
	MSSClamp []string
	// GossipInput closes the gossip port to all but the peers; nil opens
	// it (no rule).
	GossipInput *GossipInput
	// Sysctls are kernel parameters to set, by /proc/sys path relative name
	// ("net/ipv4/ip_forward"). They are set, never reset.
	Sysctls map[string]string
}

// Device is a WireGuard device and its peers.
type Device struct {
	Name       string
	PrivateKey wgtypes.Key
	ListenPort int
	// FirewallMark marks the device's own UDP packets (fwmark), so that
	// the Rule, which skips marked packets, never sends them into
	// Wirespan's table: a claimed range that held a peer's endpoint would
	// otherwise route WireGuard's packets into the tunnel itself. 0 leaves
	// packets unmarked.
	FirewallMark int
	MTU          int
	// Addresses are the device's tunnel addresses, host prefixes: the
	// IPv4 one, and the IPv6 one on a node that routes IPv6.
	Addresses []netip.Prefix
	Peers     []Peer
}

// StoredKey is a private key as WireGuard stores it, and so reads it
// back: clamped for X25519 (RFC 7748, section 5). Both the kernel module
// and wireguard-go clamp on set, and a key made by something other than
// `wg genkey` (any 32 random bytes are a valid X25519 key) may not be
// clamped yet: comparing with the unclamped key would set it on every
// apply.
func StoredKey(k wgtypes.Key) wgtypes.Key {
	k[0] &= 248
	k[31] = k[31]&127 | 64
	return k
}

// Peer is one remote cluster on the WireGuard device.
type Peer struct {
	PublicKey wgtypes.Key
	// Endpoint is where to send; the zero value leaves the endpoint to
	// WireGuard's roaming (a peer behind NAT that dials us).
	Endpoint netip.AddrPort
	// AlsoAccepted are the peer's other endpoints (Git lists every gateway
	// of a cluster): when WireGuard has roamed to one of them, because the
	// peer's new active gateway spoke from there, the applier leaves it,
	// rather than pointing the tunnel back at a gateway that failed.
	AlsoAccepted []netip.AddrPort
	AllowedIPs   []netip.Prefix
	// Keepalive is the persistent keepalive interval; 0 disables it.
	Keepalive time.Duration
}

// VXLAN is a point-to-point VXLAN link between a node and its gateway.
type VXLAN struct {
	Name string
	VNI  int
	Port int
	// Underlay is the node-network interface the VXLAN packets leave by.
	Underlay string
	// Local is this node's node-network address.
	Local netip.Addr
	// Remote is the peer's node-network address: the active gateway on a
	// node agent; zero on the gateway, which only receives.
	Remote netip.Addr
	MAC    net.HardwareAddr
	MTU    int
}

// Neighbor is a permanent neighbor entry (ARP for IPv4, NDP for IPv6).
type Neighbor struct {
	Dev string
	IP  netip.Addr
	MAC net.HardwareAddr
}

// Route is a route in Wirespan's table.
type Route struct {
	Dst netip.Prefix
	Dev string
	// Via is the next hop; zero for a route straight out of Dev.
	Via netip.Addr
	// Onlink marks Via as reachable on Dev even though no address of Dev
	// covers it.
	Onlink bool
	// Src is the preferred source address; zero lets the kernel choose.
	Src netip.Addr
	MTU int
}

// Rule is a policy routing rule that sends lookups to a table.
type Rule struct {
	// IPv6 makes it a rule of the IPv6 policy database (`ip -6 rule`);
	// false, of the IPv4 one.
	IPv6     bool
	Priority int
	Table    int
	// SkipMark, when not 0, makes the rule match only packets that do not
	// carry this fwmark ("not fwmark SkipMark", as wg-quick does), so the
	// WireGuard device's own packets (Device.FirewallMark) follow the main
	// table.
	SkipMark uint32
}

// String is the rule as `ip rule` shows its selector and action, after
// "-6" for an IPv6 rule.
func (r Rule) String() string {
	s := fmt.Sprintf("priority %d", r.Priority)
	if r.IPv6 {
		s = "-6 " + s
	}
	if r.SkipMark != 0 {
		s += fmt.Sprintf(" not fwmark %#x", r.SkipMark)
	}
	return s + fmt.Sprintf(" table %d", r.Table)
}

// GossipInput is the input rule that lets only the peers' tunnel
// addresses reach the gossip port (TCP and UDP) on this gateway's tunnel
// address: gossip refuses other sources itself, and this stops them in the
// kernel first.
type GossipInput struct {
	Addr  netip.Addr
	Port  uint16
	Peers []netip.Addr // sorted
}

// String is the rule as nft would read it, less the two protocols.
func (g *GossipInput) String() string {
	if g == nil {
		return "none"
	}
	peers := make([]string, len(g.Peers))
	for i, p := range g.Peers {
		peers[i] = p.String()
	}
	return fmt.Sprintf("daddr %s dport %d saddr != {%s} drop", g.Addr, g.Port, strings.Join(peers, ","))
}
