package claims

import (
	"net/netip"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
)

// FromPeers returns Decide's inputs as a cluster's operator sees them from
// the API alone: every remote peer's claims and allowedCIDRs, the
// cluster's own ranges, and the endpoints in Git that are IP addresses. A
// gateway also protects its node network, resolved endpoint names and the
// tunnel range, which only it knows, and names those refusals in the
// Connected condition. The operator and kubectl-wirespan both call it, so
// what the CLI shows as refused is what the operator decided.
func FromPeers(clusterID string, selfRanges []netip.Prefix, peers []wirespanv1alpha1.ClusterPeer) Inputs {
	in := Inputs{Self: clusterID, SelfRanges: selfRanges}
	for i := range peers {
		p := &peers[i]
		what, reason := "endpoint of cluster "+p.Name, ReasonPeerEndpoint
		if p.Name == clusterID {
			what, reason = "endpoint of this cluster's gateways", ReasonNodeNetwork
		}
		for _, ep := range p.Spec.Endpoints {
			if ap, err := netip.ParseAddrPort(ep); err == nil {
				a := ap.Addr().Unmap()
				in.Protected = append(in.Protected, Protected{Prefix: netip.PrefixFrom(a, a.BitLen()), Reason: reason, What: what})
			}
		}
		if p.Name == clusterID {
			continue
		}
		allowed, _ := ParseLoose(p.Spec.AllowedCIDRs)
		in.Claimers = append(in.Claimers, Claimer{Name: p.Name, Allowed: allowed, Claims: ClaimedRanges(p)})
	}
	return in
}

// ClaimedRanges are the ranges a remote peer is taken to claim: those it
// has announced, or until it has announced any, its declared allowedCIDRs,
// so a conflict in Git shows before the peer is even up.
func ClaimedRanges(p *wirespanv1alpha1.ClusterPeer) []netip.Prefix {
	if learned, _ := LearnedRanges(p); len(learned) > 0 {
		return learned
	}
	allowed, _ := ParseLoose(p.Spec.AllowedCIDRs)
	return allowed
}

// LearnedRanges parses the ranges a remote peer announced, as stored in its
// status, and returns those that do not parse separately. A status still
// marked Self holds what this cluster discovered under an earlier cluster ID,
// not anything the peer announced, so it counts as nothing.
func LearnedRanges(p *wirespanv1alpha1.ClusterPeer) ([]netip.Prefix, []string) {
	if p.Status.Role == wirespanv1alpha1.RoleSelf {
		return nil, nil
	}
	return ParseLoose(append(append([]string(nil), p.Status.PodCIDRs...), p.Status.ServiceCIDRs...))
}

// ParseLoose parses what it can; status is not validated at admission as
// strictly as spec, so garbage must not stop the rest.
func ParseLoose(values []string) ([]netip.Prefix, []string) {
	var good []netip.Prefix
	var bad []string
	for _, v := range values {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			bad = append(bad, v)
			continue
		}
		good = append(good, p.Masked())
	}
	return good, bad
}
