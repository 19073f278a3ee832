package agent

import (
	"fmt"
	"net/netip"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Families are the IP families a cluster routes.
type Families struct {
	IPv4, IPv6 bool
}

// FamiliesOf are the families of a cluster's own pod and Service ranges.
// A cluster whose ranges are not known yet (its operator has not
// published them) counts as IPv4 only, which is what every cluster was
// before IPv6 was routed: it then changes nothing in the kernel of an
// IPv4 cluster, and an IPv6 range waits for the next sync.
func FamiliesOf(ranges []netip.Prefix) Families {
	var f Families
	for _, r := range ranges {
		if r.Addr().Is4() {
			f.IPv4 = true
		} else {
			f.IPv6 = true
		}
	}
	if !f.IPv4 && !f.IPv6 {
		f.IPv4 = true
	}
	return f
}

// Has says whether the family of a is one of f.
func (f Families) Has(a netip.Addr) bool {
	if a.Is4() {
		return f.IPv4
	}
	return f.IPv6
}

// String is "IPv4", "IPv6" or "dual-stack".
func (f Families) String() string {
	switch {
	case f.IPv4 && f.IPv6:
		return "dual-stack"
	case f.IPv6:
		return "IPv6"
	default:
		return "IPv4"
	}
}

// routableFamily returns the check that says why a range cannot be routed
// on this node because of its IP family, or "" when it can. A pair of
// clusters talks over every family both have: a peer's range of a family
// this cluster has no range of is refused here, never attempted, and
// shown in the peer's status (the peer refuses ours the same way, since
// we claim none of that family). The kernel refuses a route whose source
// or next hop is of another family than its destination, so a family with
// no tunnel address (no --tunnel-cidr-v6), or a node agent's path that
// cannot carry it, refuses the range too.
func routableFamily(in Inputs, plan Plan, fams Families) func(netip.Prefix) string {
	return func(p netip.Prefix) string {
		fam := familyName(p.Addr())
		switch {
		case !fams.Has(p.Addr()):
			return fmt.Sprintf("%s is not routed: cluster %s has no %s pod or Service range (it is %s)", fam, in.Cluster, fam, fams)
		case p.Addr().Is6() && !in.Config.TunnelCIDR6.IsValid():
			return "IPv6 is not routed: no IPv6 tunnel range (--tunnel-cidr-v6) gives this cluster an IPv6 tunnel address"
		case plan.Role != RoleNode || plan.Active == nil:
			return ""
		case in.Config.Mode == RouteVXLAN && p.Addr().Is6():
			return "" // a link-local next hop, whatever the node network's family
		case plan.Active.IP.Is4() != p.Addr().Is4():
			return fmt.Sprintf("%s is not routed from this node: the active gateway %s has no %s node address", fam, plan.Active.Node, fam)
		}
		return ""
	}
}

// VXLANLinkLocal is the IPv6 link-local address (RFC 4291, appendix A:
// modified EUI-64) of the MAC that MAC derives for a gateway's VXLAN link
// from its node address. Node agents route IPv6 to it, and resolve it to
// that MAC with a permanent neighbor entry: it is also the link-local
// address the kernel gives the gateway's VXLAN link (with the default
// addr_gen_mode), though nothing depends on the gateway holding it.
func VXLANLinkLocal(gatewayIP netip.Addr) netip.Addr {
	mac := MAC(gatewayIP)
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	a[8], a[9], a[10] = mac[0]^0x02, mac[1], mac[2]
	a[11], a[12] = 0xff, 0xfe
	a[13], a[14], a[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(a)
}

// endpointFor picks the endpoint to send to from a peer's endpoints, in
// their order: the first of the family of this node's own address, which
// its node network can be expected to reach (a dual-stack cluster lists
// an endpoint of each family, and an IPv6-only peer must pick the IPv6
// one), else the first. Zero when there is none.
func endpointFor(endpoints []netip.AddrPort, node netip.Addr) netip.AddrPort {
	for _, ep := range endpoints {
		if ep.Addr().Is4() == node.Is4() {
			return ep
		}
	}
	if len(endpoints) > 0 {
		return endpoints[0]
	}
	return netip.AddrPort{}
}

// gossipAddress is where a cluster's gossip listens: its IPv4 tunnel
// address, whatever families the cluster routes. Every gateway must be
// able to compute every other's gossip address from Git alone (a key and
// the tunnel range), before it has heard anything, and the families a
// cluster routes are learned over gossip: an address that depended on
// them could not be found. The IPv4 tunnel address is Wirespan's own
// overlay address, on the WireGuard device of every gateway, so it needs
// no IPv4 on the node network nor in the cluster's pods.
func gossipAddress(cfg Config, publicKey wgtypes.Key) netip.Addr {
	return TunnelAddress(cfg.TunnelCIDR, publicKey)
}

// tunnelPrefixes are the host prefixes of a peer's tunnel addresses that
// its WireGuard peer carries and routes: the IPv4 one always (gossip), the
// IPv6 one when the two clusters share IPv6.
func (p PeerPlan) tunnelPrefixes() []netip.Prefix {
	out := []netip.Prefix{netip.PrefixFrom(p.TunnelAddr, 32)}
	if p.TunnelAddr6.IsValid() {
		out = append(out, netip.PrefixFrom(p.TunnelAddr6, 128))
	}
	return out
}

func familyName(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}
