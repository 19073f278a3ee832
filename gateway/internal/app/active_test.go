package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wirespan/wirespan/gateway/internal/agent"
	"github.com/wirespan/wirespan/gateway/internal/dataplane"
	wsdns "github.com/wirespan/wirespan/gateway/internal/dns"
	"github.com/wirespan/wirespan/gateway/internal/services"
	"github.com/wirespan/wirespan/internal/poll"
)

// freeUDPPort is a UDP port nothing listens on now, on 127.0.0.1.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// answers says whether a DNS server answers at addr.
func answers(addr string) error {
	c := &dns.Client{Timeout: 300 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion("nothing.default.svc.clusterset.local.", dns.TypeA)
	_, _, err := c.Exchange(m, addr)
	return err
}

// The active role's pieces start together, stop together, and start again
// when the role comes back: gossip on the tunnel address, the DNS server,
// and the MCS controller's link to gossip.
func TestActiveRoleStartsAndStopsAsOnePiece(t *testing.T) {
	key, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	dnsAddr := fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
	opts := Options{ClusterID: "c1", NodeName: "n0", GossipPort: freeUDPPort(t), DNSAddr: dnsAddr, DNSZone: "clusterset.local",
		ExportTTL: time.Minute, Agent: DefaultAgentConfig()}
	mcs := &services.Controller{ClusterID: "c1", DNS: wsdns.NewStore()}
	const linger = 300 * time.Millisecond
	r := &activeRole{opts: opts, log: testr.New(t), services: mcs, registry: prometheus.NewRegistry(), dnsEndpoint: &dnsEndpoint{}, dnsLinger: linger}
	w := &world{in: agent.Inputs{PrivateKey: &key, Node: agent.Node{IP: netip.MustParseAddr("127.0.0.1")}}}
	plan := func(tunnel string) agent.Plan {
		pfx := netip.MustParsePrefix(tunnel)
		return agent.Plan{Role: agent.RoleGateway, GossipAddr: pfx.Addr(), State: dataplane.State{WireGuard: &dataplane.Device{Addresses: []netip.Prefix{pfx}}}}
	}
	ctx := context.Background()
	t.Cleanup(func() { _ = r.stop(ctx); r.stopDNS() })

	for round := range 2 {
		if err := r.run(ctx, w, plan("127.0.0.11/32")); err != nil {
			t.Fatalf("round %d: run: %v", round, err)
		}
		if !r.running() || r.gossip.LocalAddr().Addr() != netip.MustParseAddr("127.0.0.11") {
			t.Fatalf("round %d: gossip not running on the tunnel address", round)
		}
		if err := answers(dnsAddr); err != nil {
			t.Fatalf("round %d: the DNS server does not answer: %v", round, err)
		}
		if r.changed() == nil {
			t.Fatalf("round %d: no gossip changes to follow", round)
		}
		if err := r.stop(ctx); err != nil {
			t.Fatalf("round %d: stop: %v", round, err)
		}
		if r.running() || r.changed() != nil {
			t.Fatalf("round %d: gossip still running after stop", round)
		}
		// DNS lingers, for queries kube-proxy still sends here...
		if err := answers(dnsAddr); err != nil {
			t.Fatalf("round %d: the DNS server stopped at once, want it to linger: %v", round, err)
		}
		// ...and then stops.
		poll.Until(t, 10*linger, "the DNS server stops after lingering", func() error {
			if answers(dnsAddr) == nil {
				return errors.New("it still answers")
			}
			return nil
		})
		// Both ports are free again: nothing was left behind.
		for _, port := range []string{dnsAddr, fmt.Sprintf("127.0.0.11:%d", opts.GossipPort)} {
			c, err := net.ListenPacket("udp", port)
			if err != nil {
				t.Fatalf("round %d: %s still taken after stop: %v", round, port, err)
			}
			_ = c.Close()
		}
	}

	// The role back while DNS lingers: the same server goes on.
	if err := r.run(ctx, w, plan("127.0.0.11/32")); err != nil {
		t.Fatal(err)
	}
	_ = r.stop(ctx)
	if err := r.run(ctx, w, plan("127.0.0.11/32")); err != nil {
		t.Fatalf("the role back while DNS lingered: %v", err)
	}
	time.Sleep(2 * linger)
	if err := answers(dnsAddr); err != nil {
		t.Fatalf("the role came back while DNS lingered, and DNS stopped: %v", err)
	}

	// A new key means a new tunnel address: gossip moves there.
	if err := r.run(ctx, w, plan("127.0.0.11/32")); err != nil {
		t.Fatal(err)
	}
	if err := r.run(ctx, w, plan("127.0.0.12/32")); err != nil {
		t.Fatal(err)
	}
	if got := r.gossip.LocalAddr().Addr(); got != netip.MustParseAddr("127.0.0.12") {
		t.Fatalf("gossip on %s after the tunnel address changed, want 127.0.0.12", got)
	}
	if err := answers(dnsAddr); err != nil {
		t.Fatalf("the DNS server does not answer after gossip moved: %v", err)
	}
}
