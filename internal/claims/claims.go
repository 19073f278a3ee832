package claims

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/wirespan/wirespan/internal/cidr"
)

// Reason says why a claim is refused. Reasons are few and fixed, so they
// can label metrics.
type Reason string

// The reasons, in the order the checks run: a claim is refused with the
// first that applies.
const (
	// ReasonTooMany: the claimer announced more ranges in one list than a
	// ClusterPeer status holds (MaxPerList); the excess is refused.
	ReasonTooMany Reason = "TooMany"
	// ReasonTooWide: the range is wider than MinBitsIPv4 or MinBitsIPv6.
	ReasonTooWide Reason = "TooWide"
	// ReasonUnspecified: 0.0.0.0/8 or ::/128, "this network".
	ReasonUnspecified Reason = "Unspecified"
	// ReasonLoopback: 127.0.0.0/8 or ::1/128.
	ReasonLoopback Reason = "Loopback"
	// ReasonLinkLocal: 169.254.0.0/16 (cloud metadata lives there) or
	// fe80::/10.
	ReasonLinkLocal Reason = "LinkLocal"
	// ReasonMulticast: 224.0.0.0/4 or ff00::/8.
	ReasonMulticast Reason = "Multicast"
	// ReasonNodeNetwork: the range overlaps a node network of this cluster.
	ReasonNodeNetwork Reason = "NodeNetwork"
	// ReasonPeerEndpoint: the range holds a WireGuard endpoint of a peer.
	ReasonPeerEndpoint Reason = "PeerEndpoint"
	// ReasonTunnelRange: the range overlaps the tunnel range.
	ReasonTunnelRange Reason = "TunnelRange"
	// ReasonNoAllowedCIDRs: the claimer's spec.allowedCIDRs is empty.
	ReasonNoAllowedCIDRs Reason = "NoAllowedCIDRs"
	// ReasonOutsideAllowedCIDRs: no entry of spec.allowedCIDRs holds it.
	ReasonOutsideAllowedCIDRs Reason = "OutsideAllowedCIDRs"
	// ReasonOverlap: it overlaps this cluster's ranges, or an accepted
	// claim of another cluster.
	ReasonOverlap Reason = "Overlap"
)

// Reasons lists every reason, for metrics that show zeros.
var Reasons = []Reason{ReasonTooMany, ReasonTooWide, ReasonUnspecified, ReasonLoopback, ReasonLinkLocal,
	ReasonMulticast, ReasonNodeNetwork, ReasonPeerEndpoint, ReasonTunnelRange, ReasonNoAllowedCIDRs,
	ReasonOutsideAllowedCIDRs, ReasonOverlap}

// The widest ranges a cluster may claim. A /8 is the largest private block
// (10.0.0.0/8) one organization can hold, so no real cluster needs more in
// IPv4; anything wider necessarily covers other people's public addresses
// (0.0.0.0/5 covered the lab's whole underlay and the internet's 0-7.x).
// In IPv6 a /32 is what a registry allocates to a whole provider; a site
// gets a /48 and fd00::/8 is shared by every ULA user, so a claim wider
// than /32 is never one cluster's own.
const (
	MinBitsIPv4 = 8
	MinBitsIPv6 = 32
)

// MaxPerList is how many ranges one list (pod, or Service) of a claimer may
// hold: the maxItems of status.podCIDRs and status.serviceCIDRs, so a
// status written with the accepted ones always fits.
const MaxPerList = 64

// never are the ranges no cluster may claim, whatever Git says.
var never = []struct {
	prefix netip.Prefix
	reason Reason
}{
	{netip.MustParsePrefix("0.0.0.0/8"), ReasonUnspecified},
	{netip.MustParsePrefix("127.0.0.0/8"), ReasonLoopback},
	{netip.MustParsePrefix("169.254.0.0/16"), ReasonLinkLocal},
	{netip.MustParsePrefix("224.0.0.0/4"), ReasonMulticast},
	{netip.MustParsePrefix("::/128"), ReasonUnspecified},
	{netip.MustParsePrefix("::1/128"), ReasonLoopback},
	{netip.MustParsePrefix("fe80::/10"), ReasonLinkLocal},
	{netip.MustParsePrefix("ff00::/8"), ReasonMulticast},
}

// Protected is a range this cluster needs to reach outside the tunnels: a
// claim that overlaps it is refused with Reason.
type Protected struct {
	Prefix netip.Prefix
	// Reason is ReasonNodeNetwork, ReasonPeerEndpoint or ReasonTunnelRange.
	Reason Reason
	// What names it for people: "node network of eth0", "endpoint of c2".
	What string
}

// Claimer is a cluster and what it claims.
type Claimer struct {
	Name string
	// Allowed is spec.allowedCIDRs from Git; empty accepts nothing.
	Allowed []netip.Prefix
	// Claims are the ranges it announced.
	Claims []netip.Prefix
	// Excess are ranges it announced beyond MaxPerList (see Limit).
	Excess []netip.Prefix
}

// Refusal is a claim that is not accepted, and why.
type Refusal struct {
	Prefix netip.Prefix
	Reason Reason
	// Detail says it for people: "outside spec.allowedCIDRs 10.3.0.0/16".
	Detail string
}

func (r Refusal) String() string { return r.Prefix.String() + " (" + r.Detail + ")" }

// Decision is what was decided about one claimer.
type Decision struct {
	// Accepted are the claims that may be routed, sorted.
	Accepted []netip.Prefix
	// Refused are the others, sorted by range.
	Refused []Refusal
	// Overlaps are the overlaps this claimer takes part in among accepted
	// claims and this cluster's ranges; each such claim is in Refused too.
	Overlaps []cidr.Overlap
}

// Inputs is everything Decide needs.
type Inputs struct {
	// Self is this cluster's ID, and SelfRanges its own pod and Service
	// ranges. They are never refused here (they are not routed into a
	// tunnel), but a claim of another cluster that overlaps them is.
	Self       string
	SelfRanges []netip.Prefix
	Claimers   []Claimer
	Protected  []Protected
}

// Decide judges every claimer's claims. The result has one Decision per
// claimer, by name, and one for Self holding only its Overlaps.
func Decide(in Inputs) map[string]Decision {
	out := make(map[string]Decision, len(in.Claimers)+1)
	passed := map[string][]netip.Prefix{in.Self: sorted(in.SelfRanges)}
	for _, c := range in.Claimers {
		d := Check(c, in.Protected)
		out[c.Name] = d
		passed[c.Name] = d.Accepted
	}
	overlaps := cidr.Overlaps(passed)
	out[in.Self] = Decision{Overlaps: overlaps[in.Self]}
	for _, c := range in.Claimers {
		d := out[c.Name]
		d.Overlaps = overlaps[c.Name]
		var kept []netip.Prefix
		for _, p := range d.Accepted {
			if o, ok := firstOverlap(p, d.Overlaps); ok {
				d.Refused = append(d.Refused, Refusal{Prefix: p, Reason: ReasonOverlap,
					Detail: fmt.Sprintf("overlaps %s of cluster %s", o.OtherPrefix, o.Other)})
				continue
			}
			kept = append(kept, p)
		}
		d.Accepted = kept
		slices.SortFunc(d.Refused, func(a, b Refusal) int { return cidr.Compare(a.Prefix, b.Prefix) })
		out[c.Name] = d
	}
	return out
}

// Check judges a claimer's claims on their own (the first pass): it never
// refuses for an overlap. The operator also uses it for this cluster's own
// ranges, to tell what the other clusters will decide about them.
func Check(c Claimer, protected []Protected) Decision {
	var d Decision
	for _, p := range sorted(c.Excess) {
		d.Refused = append(d.Refused, Refusal{Prefix: p, Reason: ReasonTooMany,
			Detail: fmt.Sprintf("more than %d ranges in one list", MaxPerList)})
	}
	for _, p := range sorted(c.Claims) {
		if r, ok := refuse(p, c.Allowed, protected); ok {
			d.Refused = append(d.Refused, r)
			continue
		}
		d.Accepted = append(d.Accepted, p)
	}
	return d
}

// refuse returns why p may not be routed on its own, if it may not.
func refuse(p netip.Prefix, allowed []netip.Prefix, protected []Protected) (Refusal, bool) {
	if p.Addr().Is4() && p.Bits() < MinBitsIPv4 || !p.Addr().Is4() && p.Bits() < MinBitsIPv6 {
		return Refusal{p, ReasonTooWide, fmt.Sprintf("wider than /%d, the widest range a cluster may claim in %s",
			minBits(p), family(p))}, true
	}
	for _, n := range never {
		if p.Overlaps(n.prefix) {
			return Refusal{p, n.reason, fmt.Sprintf("overlaps %s, never routed", n.prefix)}, true
		}
	}
	for _, x := range protected {
		if p.Overlaps(x.Prefix) {
			return Refusal{p, x.Reason, fmt.Sprintf("overlaps %s, the %s", x.Prefix, x.What)}, true
		}
	}
	if len(allowed) == 0 {
		return Refusal{p, ReasonNoAllowedCIDRs, "spec.allowedCIDRs is empty, which accepts nothing"}, true
	}
	if !slices.ContainsFunc(allowed, func(a netip.Prefix) bool { return cidr.Contains(a, p) }) {
		return Refusal{p, ReasonOutsideAllowedCIDRs, "outside spec.allowedCIDRs"}, true
	}
	return Refusal{}, false
}

func firstOverlap(p netip.Prefix, os []cidr.Overlap) (cidr.Overlap, bool) {
	for _, o := range os {
		if o.Prefix == p {
			return o, true
		}
	}
	return cidr.Overlap{}, false
}

// Limit splits one announced list into what a status can hold (the first
// MaxPerList, sorted) and the excess, which is refused with ReasonTooMany.
func Limit(list []netip.Prefix) (kept, excess []netip.Prefix) {
	s := sorted(list)
	if len(s) <= MaxPerList {
		return s, nil
	}
	return s[:MaxPerList], s[MaxPerList:]
}

// Count returns how many refusals there are of each reason.
func Count(rs []Refusal) map[Reason]int {
	out := map[Reason]int{}
	for _, r := range rs {
		out[r.Reason]++
	}
	return out
}

// Prefixes returns the ranges of the refusals with one of the reasons.
func Prefixes(rs []Refusal, reasons ...Reason) []netip.Prefix {
	var out []netip.Prefix
	for _, r := range rs {
		if slices.Contains(reasons, r.Reason) {
			out = append(out, r.Prefix)
		}
	}
	return out
}

func sorted(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		if p.IsValid() {
			out = append(out, p.Masked())
		}
	}
	slices.SortFunc(out, cidr.Compare)
	return slices.Compact(out)
}

func minBits(p netip.Prefix) int {
	if p.Addr().Is4() {
		return MinBitsIPv4
	}
	return MinBitsIPv6
}

func family(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "IPv4"
	}
	return "IPv6"
}
