package app

import (
	"net/netip"
	"slices"

	"github.com/wirespan/wirespan/gateway/internal/agent"
	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

// gossipInput is the input rule that closes the gossip port on the active
// gateway's tunnel address to all but the peers' tunnel addresses (those
// gossip takes messages from); nil where this node runs no gossip.
func gossipInput(plan agent.Plan, port int) *dataplane.GossipInput {
	if plan.Role != agent.RoleGateway || plan.State.WireGuard == nil || !plan.GossipAddr.IsValid() {
		return nil
	}
	g := &dataplane.GossipInput{Addr: plan.GossipAddr, Port: uint16(port)}
	for _, p := range plan.Peers {
		if p.Problem == "" && p.TunnelAddr.IsValid() {
			g.Peers = append(g.Peers, p.TunnelAddr)
		}
	}
	slices.SortFunc(g.Peers, netip.Addr.Compare)
	g.Peers = slices.Compact(g.Peers)
	return g
}
