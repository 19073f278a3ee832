package app

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wirespan/wirespan/gateway/internal/agent"
	"github.com/wirespan/wirespan/gateway/internal/dns"
	"github.com/wirespan/wirespan/gateway/internal/gossip"
	"github.com/wirespan/wirespan/gateway/internal/services"
	"github.com/wirespan/wirespan/internal/mcs"
)

// activeRole is everything that runs only on the active gateway and moves
// with the role as one piece: gossip on the tunnel address, the MCS
// controller's link to it, the clusterset DNS server and the DNS Service's
// endpoint. run starts what is not running and brings it up to date; stop
// stops it all. The syncer calls one or the other on every sync.
type activeRole struct {
	opts     Options
	log      logr.Logger
	services *services.Controller
	// dnsEndpoint points the DNS Service at this node while it serves DNS.
	dnsEndpoint *dnsEndpoint
	// registry receives gossip's and the DNS server's metrics while they
	// run.
	registry prometheus.Registerer

	gossip     *gossip.Gossip
	gossipAddr netip.Addr
	// dnsLinger is how long the DNS server keeps answering after the role
	// went (dnsLinger below).
	dnsLinger time.Duration

	// dnsStop stops the clusterset DNS server, which runs as long as
	// gossip and dnsLinger more; dnsTimer is that delay, while it runs.
	// joining is closed when the last join attempt is over.
	dnsMu    sync.Mutex
	dnsStop  func()
	dnsTimer *time.Timer
	joining  chan struct{}
}

// dnsLinger is how long a gateway that lost the role keeps answering DNS:
// the DNS Service names it until the successor has published itself and
// kube-proxy has followed (its sync period, 1 s by default), and a query
// sent there meanwhile must still be answered.
const dnsLinger = 2 * time.Second

// running says whether this node runs the active role now.
func (r *activeRole) running() bool { return r.gossip != nil }

// changed receives when gossip learned something; nil when not running.
func (r *activeRole) changed() <-chan struct{} {
	if r.gossip == nil {
		return nil
	}
	return r.gossip.Changed()
}

// learned is what gossip knows of a cluster.
func (r *activeRole) learned(cluster string) *agent.Learned {
	if r.gossip == nil {
		return nil
	}
	st, ok := r.gossip.Clusters()[cluster]
	if !ok {
		return nil
	}
	return &agent.Learned{PodCIDRs: st.PodCIDRs, ServiceCIDRs: st.ServiceCIDRs, ActiveGateway: st.ActiveGateway}
}

// rtt is gossip's round-trip time to a cluster, zero if unknown.
func (r *activeRole) rtt(cluster string) time.Duration {
	if r.gossip == nil {
		return 0
	}
	d, _ := r.gossip.RTT(cluster)
	return d
}

// run starts gossip on the tunnel address (restarting it if the key, and
// so the address, changed) with the DNS server beside it, publishes this
// cluster's state, joins clusters that have no member in the pool yet, and
// points the DNS Service here. DNS and status go on when gossip cannot
// start (its tunnel address may be what the kernel refused): they are how
// a user learns why.
func (r *activeRole) run(ctx context.Context, w *world, plan agent.Plan) error {
	err := r.runGossip(w, plan)
	r.publishDNS(ctx, w)
	return err
}

func (r *activeRole) runGossip(w *world, plan agent.Plan) error {
	addr := plan.GossipAddr
	if r.gossip != nil && r.gossipAddr != addr {
		r.stopGossip()
	}
	if r.gossip == nil {
		g, err := gossip.New(gossip.Config{
			Cluster: r.opts.ClusterID, Node: r.opts.NodeName, PrivateKey: *w.in.PrivateKey,
			BindAddr: addr, Port: r.opts.GossipPort, Logger: r.log.WithName("gossip"), Registerer: r.registry,
			ExportTTL: r.opts.ExportTTL,
			PeerAddr: func(k wgtypes.Key) netip.AddrPort {
				return netip.AddrPortFrom(agent.TunnelAddress(r.opts.Agent.TunnelCIDR, k), uint16(r.opts.GossipPort))
			},
		})
		if err != nil {
			return fmt.Errorf("start gossip on %s: %w", addr, err)
		}
		r.gossip, r.gossipAddr = g, addr
		r.log.Info("gossip started", "addr", g.LocalAddr())
		if err := r.startDNS(w.in.Node.IP); err != nil {
			return err
		}
		r.services.SetExchange(g)
	}
	keys := map[string]wgtypes.Key{}
	for _, p := range plan.Peers {
		if p.Problem == "" {
			keys[p.Cluster] = p.Key
		}
	}
	if err := r.gossip.SetPeers(keys); err != nil {
		r.log.Error(err, "some peers are left out of gossip")
	}
	local := gossip.ClusterState{Cluster: r.opts.ClusterID, ActiveGateway: r.opts.NodeName}
	if w.self != nil {
		local.PodCIDRs = parseLoose(w.self.Status.PodCIDRs)
		local.ServiceCIDRs = parseLoose(w.self.Status.ServiceCIDRs)
	}
	r.services.SetServiceFamilies(mcs.FamiliesOf(local.ServiceCIDRs))
	ranges := map[string][]netip.Prefix{}
	for _, p := range plan.Peers {
		if p.Problem == "" {
			ranges[p.Cluster] = p.Routed
		}
	}
	r.services.SetClusterRanges(ranges)
	if err := r.gossip.SetLocal(local); err != nil {
		return fmt.Errorf("publish this cluster's state: %w", err)
	}
	r.joinMissing(plan)
	return nil
}

// joinMissing contacts, in the background, the clusters with no member in
// the pool. A peer behind NAT answers only once it has dialed in.
func (r *activeRole) joinMissing(plan agent.Plan) {
	if r.joining != nil {
		select {
		case <-r.joining:
		default:
			return // the last attempt still runs
		}
	}
	present := map[string]bool{}
	for _, m := range r.gossip.Members() {
		present[m.Cluster] = true
	}
	var addrs []netip.AddrPort
	for _, p := range plan.Peers {
		if p.Problem == "" && !present[p.Cluster] {
			addrs = append(addrs, netip.AddrPortFrom(p.TunnelAddr, uint16(r.opts.GossipPort)))
		}
	}
	if len(addrs) == 0 {
		return
	}
	done := make(chan struct{})
	r.joining = done
	g := r.gossip
	go func() {
		defer close(done)
		if n, err := g.Join(addrs); err != nil && n == 0 {
			r.log.V(1).Info("gossip join found nobody yet", "tried", addrs, "error", err.Error())
		}
	}()
}

// stop stops everything of the role on this node and withdraws it from
// the DNS Service. It is cheap when nothing runs.
func (r *activeRole) stop(ctx context.Context) error {
	r.stopGossip()
	return r.dnsEndpoint.withdraw(ctx, r.opts.NodeName)
}

func (r *activeRole) stopGossip() {
	if r.gossip == nil {
		return
	}
	r.services.SetExchange(nil)
	r.lingerDNS()
	if err := r.gossip.Shutdown(); err != nil {
		r.log.Error(err, "stop gossip")
	}
	if r.joining != nil {
		<-r.joining
	}
	r.gossip, r.joining = nil, nil
}

// lingerDNS stops the DNS server dnsLinger from now.
func (r *activeRole) lingerDNS() {
	r.dnsMu.Lock()
	defer r.dnsMu.Unlock()
	if r.dnsStop == nil || r.dnsTimer != nil {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(r.dnsLinger, func() {
		r.dnsMu.Lock()
		defer r.dnsMu.Unlock()
		if r.dnsTimer == t { // not taken back by startDNS meanwhile
			r.dnsTimer = nil
			r.dnsStop()
			r.dnsStop = nil
		}
	})
	r.dnsTimer = t
}

// stopDNS stops the DNS server now, and returns once it has.
func (r *activeRole) stopDNS() {
	r.dnsMu.Lock()
	defer r.dnsMu.Unlock()
	if r.dnsTimer != nil {
		r.dnsTimer.Stop()
		r.dnsTimer = nil
	}
	if r.dnsStop != nil {
		r.dnsStop()
		r.dnsStop = nil
	}
}

// startDNS starts the clusterset DNS server, answering from the MCS
// controller's store, unless --dns-bind-address is empty; a server still
// lingering from this node's last turn is kept. nodeIP stands for "node"
// in --dns-bind-address.
func (r *activeRole) startDNS(nodeIP netip.Addr) error {
	r.dnsMu.Lock()
	defer r.dnsMu.Unlock()
	if r.dnsTimer != nil {
		// The role is back: the lingering server goes on.
		r.dnsTimer.Stop()
		r.dnsTimer = nil
	}
	if r.opts.DNSAddr == "" || r.dnsStop != nil {
		return nil
	}
	bind := r.opts.DNSAddr // ":port" stays as it is: every address, both families
	if strings.HasPrefix(bind, "node:") {
		addr, err := dnsBindAddress(bind, nodeIP)
		if err != nil {
			return fmt.Errorf("--dns-bind-address %q: %w", r.opts.DNSAddr, err)
		}
		bind = addr.String()
	}
	srv, err := dns.NewServer(dns.Config{
		Zone: r.opts.DNSZone, Addr: bind, Store: r.services.DNS,
		Logger: r.log.WithName("dns"), Registerer: r.registry,
	})
	if err != nil {
		return fmt.Errorf("start the clusterset DNS server: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Run(ctx); err != nil {
			r.log.Error(err, "clusterset DNS server stopped")
		}
	}()
	r.log.Info("clusterset DNS server started", "addr", srv.Addr(), "zone", r.opts.DNSZone)
	r.dnsStop = func() { cancel(); <-done }
	return nil
}

// publishDNS points the DNS Service (--dns-service) at this gateway's DNS
// server once it runs. A failure is logged and retried at the next sync; it
// does not make the data plane unready.
func (r *activeRole) publishDNS(ctx context.Context, w *world) {
	r.dnsMu.Lock()
	running := r.dnsStop != nil
	r.dnsMu.Unlock()
	if !running {
		return
	}
	addr, err := dnsBindAddress(r.opts.DNSAddr, w.in.Node.IP)
	if err != nil {
		return // Validate refused it already
	}
	if addr.Addr().IsUnspecified() {
		addr = netip.AddrPortFrom(w.in.Node.IP, addr.Port())
	}
	if err := r.dnsEndpoint.publish(ctx, r.opts.NodeName, addr, time.Now()); err != nil {
		r.log.Error(err, "publish this gateway in the DNS Service")
	}
}
