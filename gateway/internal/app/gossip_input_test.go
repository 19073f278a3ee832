package app

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/wirespan/wirespan/gateway/internal/agent"
	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

func TestGossipInput(t *testing.T) {
	addr := netip.MustParseAddr
	plan := agent.Plan{
		Role:       agent.RoleGateway,
		GossipAddr: addr("100.96.0.7"),
		State:      dataplane.State{WireGuard: &dataplane.Device{Addresses: []netip.Prefix{netip.MustParsePrefix("100.96.0.7/32")}}},
		Peers: []agent.PeerPlan{
			{Cluster: "c3", TunnelAddr: addr("100.96.0.9")},
			{Cluster: "c2", TunnelAddr: addr("100.96.0.8")},
			{Cluster: "c4", TunnelAddr: addr("100.96.0.8"), Problem: "tunnel address 100.96.0.8 is also derived for cluster c2"},
			{Cluster: "c5", Problem: "no key"},
		},
	}
	want := &dataplane.GossipInput{Addr: addr("100.96.0.7"), Port: 7946, Peers: []netip.Addr{addr("100.96.0.8"), addr("100.96.0.9")}}
	if got := gossipInput(plan, 7946); !reflect.DeepEqual(got, want) {
		t.Errorf("gossipInput = %v, want %v", got, want)
	}
	plan.Role = agent.RoleNode
	if got := gossipInput(plan, 7946); got != nil {
		t.Errorf("gossipInput on a node agent = %v, want none", got)
	}
}
