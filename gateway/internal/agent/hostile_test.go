package agent

import (
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/internal/claims"
)

// routedTo returns the ranges the plan routes to cluster.
func routedTo(p Plan, cluster string) []netip.Prefix {
	for _, pp := range p.Peers {
		if pp.Cluster == cluster {
			return pp.Routed
		}
	}
	return nil
}

// A peer with no allowedCIDRs in Git gets nothing routed, whatever it
// claims: before, it could claim 0.0.0.0/5, the metadata address or this
// cluster's node network, and node agents routed them into table 51820.
func TestHostileEmptyAllowedRoutesNothing(t *testing.T) {
	in := threeClusters("c1-n1", RouteVXLAN)
	in.Peers[1].AllowedCIDRs = nil
	in.Peers[1].Claims = pfx("0.0.0.0/5", "169.254.169.254/32", "172.28.0.0/16", "10.3.0.0/16")
	if got := routedTo(Desired(in), "c3"); len(got) != 0 {
		t.Fatalf("c3 has no allowedCIDRs, yet %v is routed to it", got)
	}
}

// A claim refused as outside the claimer's allowedCIDRs does not knock out
// the rightful owner's range: before, c3 pinned to 10.3/16 claiming 10.2/16
// made c2's 10.2/16 refused as overlapping.
func TestHostileRefusedClaimIsNoOverlap(t *testing.T) {
	in := threeClusters("c1-n0", RouteVXLAN)
	in.Peers[1].AllowedCIDRs = pfx("10.3.0.0/16")
	in.Peers[1].Claims = pfx("10.2.0.0/16", "10.3.0.0/16")
	plan := Desired(in)
	if got := routedTo(plan, "c2"); !slices.Contains(got, netip.MustParsePrefix("10.2.0.0/16")) {
		t.Fatalf("c2's own 10.2.0.0/16 is not routed (routed: %v) because c3 claimed it outside its allowedCIDRs", got)
	}
	if got := routedTo(plan, "c3"); !slices.Equal(got, pfx("10.3.0.0/16")) {
		t.Fatalf("c3 routed %v, want only 10.3.0.0/16", got)
	}
}

// Ranges this node needs outside the tunnels are never routed into them,
// even when Git allows everything: each is refused with its own reason.
func TestHostileNeverRouted(t *testing.T) {
	in := threeClusters("c1-n1", RouteVXLAN)
	in.Node.Networks = pfx("172.28.1.0/24")
	in.Peers[1].AllowedCIDRs = pfx("0.0.0.0/0")
	in.Peers[1].Claims = pfx("0.0.0.0/5", "127.0.0.0/8", "169.254.169.254/32", "224.0.0.0/8",
		"172.28.0.0/16", "172.28.2.10/32", "100.96.0.0/24", "10.3.0.0/16")
	want := map[string]claims.Reason{
		"0.0.0.0/5": claims.ReasonTooWide, "127.0.0.0/8": claims.ReasonLoopback,
		"169.254.169.254/32": claims.ReasonLinkLocal, "224.0.0.0/8": claims.ReasonMulticast,
		"172.28.0.0/16": claims.ReasonNodeNetwork, "172.28.2.10/32": claims.ReasonPeerEndpoint,
		"100.96.0.0/24": claims.ReasonTunnelRange,
	}
	for _, pp := range Desired(in).Peers {
		if pp.Cluster != "c3" {
			continue
		}
		if !slices.Equal(pp.Routed, pfx("10.3.0.0/16")) {
			t.Errorf("routed %v, want only 10.3.0.0/16", pp.Routed)
		}
		got := map[string]claims.Reason{}
		for _, r := range pp.Refused {
			got[r.Prefix.String()] = r.Code
		}
		if !maps.Equal(got, want) {
			t.Errorf("refused %v\nwant    %v", got, want)
		}
	}
}

// A node agent's own node network, with no Networks known, is still
// protected through its own and the gateways' addresses.
func TestHostileGatewayAddressNeverRouted(t *testing.T) {
	in := threeClusters("c1-n1", RouteVXLAN)
	in.Peers[0].AllowedCIDRs = append(in.Peers[0].AllowedCIDRs, pfx("172.28.1.0/24")...)
	in.Peers[0].Claims = append(in.Peers[0].Claims, pfx("172.28.1.0/24")...)
	if got := routedTo(Desired(in), "c2"); slices.Contains(got, netip.MustParsePrefix("172.28.1.0/24")) {
		t.Errorf("the gateway's node network is routed into the tunnel: %v", got)
	}
}

// Gossip carries up to 256 ranges per list, the status only
// claims.MaxPerList: the status written holds no more, so the API server
// never refuses the write (before, it failed on every sync).
func TestHostileLongListFitsTheStatus(t *testing.T) {
	var many []netip.Prefix
	for i := range 256 {
		many = append(many, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16))
	}
	st := RemoteStatus(wirespanv1alpha1.ClusterPeerStatus{}, 1, PeerPlan{Cluster: "c3"},
		Observation{Learned: &Learned{PodCIDRs: many, ServiceCIDRs: many}, Now: time.Unix(1e9, 0)})
	if len(st.PodCIDRs) != claims.MaxPerList || len(st.ServiceCIDRs) != claims.MaxPerList {
		t.Errorf("status holds %d pod and %d Service ranges, want %d each", len(st.PodCIDRs), len(st.ServiceCIDRs), claims.MaxPerList)
	}
}
