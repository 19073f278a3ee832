package app

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wirespan/wirespan/gateway/internal/agent"
	"github.com/wirespan/wirespan/gateway/internal/gossip"
	"github.com/wirespan/wirespan/gateway/internal/services"
	"github.com/wirespan/wirespan/internal/mcs"
)

// activeRole is everything that runs only on the active gateway and moves
// with the role as one piece: gossip on the tunnel address and the MCS
// controller's link to it (every gateway serves DNS, clustersetDNS). run
// starts what is not running and brings it up to date; stop stops it all.
// The syncer calls one or the other on every sync.
type activeRole struct {
	opts     Options
	log      logr.Logger
	services *services.Controller
	// registry receives gossip's metrics while it runs.
	registry prometheus.Registerer

	gossip     *gossip.Gossip
	gossipAddr netip.Addr
	// joining is closed when the last join attempt is over.
	joining chan struct{}
}

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
// so the address, changed), publishes this cluster's state, and joins
// clusters that have no member in the pool yet.
func (r *activeRole) run(w *world, plan agent.Plan) error {
	addr := plan.GossipAddr
	if r.gossip != nil && r.gossipAddr != addr {
		r.stop()
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
	namespaces := map[string][]string{}
	for cluster, p := range w.remote {
		if len(p.Spec.ExportNamespaces) > 0 {
			namespaces[cluster] = p.Spec.ExportNamespaces
		}
	}
	r.services.SetExportNamespaces(namespaces)
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

// stop stops everything of the role on this node. It is cheap when
// nothing runs.
func (r *activeRole) stop() {
	if r.gossip == nil {
		return
	}
	r.services.SetExchange(nil)
	if err := r.gossip.Shutdown(); err != nil {
		r.log.Error(err, "stop gossip")
	}
	if r.joining != nil {
		<-r.joining
	}
	r.gossip, r.joining = nil, nil
}
