package app

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wirespan/wirespan/gateway/internal/agent"
	"github.com/wirespan/wirespan/gateway/internal/dataplane"
	wsdns "github.com/wirespan/wirespan/gateway/internal/dns"
	"github.com/wirespan/wirespan/gateway/internal/services"
)

// The active role's pieces start together, stop together, and start again
// when the role comes back: gossip on the tunnel address and the MCS
// controller's link to gossip.
func TestActiveRoleStartsAndStopsAsOnePiece(t *testing.T) {
	key, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{ClusterID: "c1", NodeName: "n0", GossipPort: freePort(t), ExportTTL: time.Minute, Agent: DefaultAgentConfig()}
	mcs := &services.Controller{ClusterID: "c1", DNS: wsdns.NewStore()}
	r := &activeRole{opts: opts, log: testr.New(t), services: mcs, registry: prometheus.NewRegistry()}
	w := &world{in: agent.Inputs{PrivateKey: &key, Node: agent.Node{IP: netip.MustParseAddr("127.0.0.1")}}}
	plan := func(tunnel string) agent.Plan {
		pfx := netip.MustParsePrefix(tunnel)
		return agent.Plan{Role: agent.RoleGateway, GossipAddr: pfx.Addr(), State: dataplane.State{WireGuard: &dataplane.Device{Addresses: []netip.Prefix{pfx}}}}
	}
	t.Cleanup(r.stop)

	for round := range 2 {
		if err := r.run(w, plan("127.0.0.11/32")); err != nil {
			t.Fatalf("round %d: run: %v", round, err)
		}
		if !r.running() || r.gossip.LocalAddr().Addr() != netip.MustParseAddr("127.0.0.11") {
			t.Fatalf("round %d: gossip not running on the tunnel address", round)
		}
		if r.changed() == nil {
			t.Fatalf("round %d: no gossip changes to follow", round)
		}
		r.stop()
		if r.running() || r.changed() != nil {
			t.Fatalf("round %d: gossip still running after stop", round)
		}
		// The port is free again: nothing was left behind.
		c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.11:%d", opts.GossipPort))
		if err != nil {
			t.Fatalf("round %d: the gossip port is still taken after stop: %v", round, err)
		}
		_ = c.Close()
	}

	// A new key means a new tunnel address: gossip moves there.
	if err := r.run(w, plan("127.0.0.11/32")); err != nil {
		t.Fatal(err)
	}
	if err := r.run(w, plan("127.0.0.12/32")); err != nil {
		t.Fatal(err)
	}
	if got := r.gossip.LocalAddr().Addr(); got != netip.MustParseAddr("127.0.0.12") {
		t.Fatalf("gossip on %s after the tunnel address changed, want 127.0.0.12", got)
	}
}
