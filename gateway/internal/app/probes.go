package app

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/gateway/internal/agent"
	"github.com/wirespan/wirespan/gateway/internal/dataplane"
	"github.com/wirespan/wirespan/gateway/internal/gossip"
	"github.com/wirespan/wirespan/gateway/internal/probe"
	"github.com/wirespan/wirespan/internal/version"
)

// probeTimeout bounds one request's probing; probe's waits keep a healthy
// request to about a second, a request about silent peers to a few.
const probeTimeout = 20 * time.Second

// probeRetention is how long the active gateway keeps a request after
// it was answered (or, unanswered, after it was made): `kubectl wirespan
// diagnose` deletes its own, this removes those of an interrupted one.
const probeRetention = 10 * time.Minute

// probeSweep is how often every node looks again for requests it has
// not answered (one that came before this node knew its role, or while
// another node was active), and the active gateway for old ones.
const probeSweep = 10 * time.Second

// probeNetwork is the network side of the probes: dataplane/linux's
// Kernel.
type probeNetwork interface {
	Echo(ctx context.Context, dst netip.Addr, mark, size int, wait time.Duration) (bool, error)
	UDPRefused(ctx context.Context, ep netip.AddrPort, mark int, wait time.Duration) (bool, error)
	UnderlayMTU(ctx context.Context, ep netip.AddrPort, mark, size int) (int, error)
	ReversePath(link string, src, dst netip.Addr) (int, bool, string, error)
	Lookup(ctx context.Context, server netip.AddrPort, name string) (string, []netip.Addr, error)
}

// probes answers the ProbeRequests addressed to this node (package
// probe), one at a time, from what the last sync saw: the request names
// this node, or no node while this node is the active gateway.
type probes struct {
	opts    Options
	log     logr.Logger
	cache   cache.Cache
	writer  client.Client
	net     probeNetwork
	tunnels *tunnels
	link    func(name string) (int, error)
	now     func() time.Time

	mu sync.Mutex
	// plan is the last plan this node applied, pods this cluster's pod
	// ranges, gossip the active role's (nil elsewhere).
	plan   *agent.Plan
	pods   []netip.Prefix
	gossip *gossip.Gossip

	queue chan types.NamespacedName
	// answered holds the requests this node answered, by UID, until the
	// retention is over: the cache shows an answer a moment after it is
	// written, and a sweep or an update event in that moment must not
	// probe again. Only the Start goroutine uses it.
	answered map[types.UID]time.Time
}

func newProbes(s *syncer, writer client.Client, net probeNetwork) *probes {
	return &probes{
		opts: s.opts, log: s.log.WithName("probes"), cache: s.cache, writer: writer, net: net, tunnels: s.tunnels,
		link: func(name string) (int, error) {
			l, ok, err := s.kernel.Link(name)
			if err == nil && !ok {
				err = fmt.Errorf("no link %s", name)
			}
			return l.MTU, err
		},
		now: time.Now, queue: make(chan types.NamespacedName, 64), answered: map[types.UID]time.Time{},
	}
}

// learn takes what the sync applied. A syncer without probes (a test's)
// has nothing to tell.
func (p *probes) learn(plan agent.Plan, self *wirespanv1alpha1.ClusterPeer, g *gossip.Gossip) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.plan = &plan
	p.pods = nil
	if self != nil {
		p.pods = parseLoose(self.Status.PodCIDRs)
	}
	p.gossip = g
}

// NeedLeaderElection is false: every node answers its own requests.
func (p *probes) NeedLeaderElection() bool { return false }

// Start watches the requests of the release namespace until ctx is done.
// A cluster whose CRDs predate ProbeRequest only loses the probes.
func (p *probes) Start(ctx context.Context) error {
	inf, err := p.cache.GetInformer(ctx, &wirespanv1alpha1.ProbeRequest{})
	if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
		p.log.Info("the ProbeRequest CRD is not installed; `kubectl wirespan diagnose` cannot probe from this node", "err", err.Error())
		<-ctx.Done()
		return nil
	}
	if err != nil {
		return fmt.Errorf("watch ProbeRequests: %w", err)
	}
	enqueue := func(obj any) {
		if r, ok := obj.(*wirespanv1alpha1.ProbeRequest); ok && r.Status.CompletionTime == nil {
			select {
			case p.queue <- client.ObjectKeyFromObject(r):
			default:
				// Full: the resync below picks it up.
			}
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	}); err != nil {
		return err
	}
	sweep := time.NewTicker(probeSweep)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case key := <-p.queue:
			p.answer(ctx, key)
		case <-sweep.C:
			p.sweep(ctx)
		}
	}
}

// role is this node's role for a request: "" when the request is not
// this node's to answer.
func (p *probes) role(r *wirespanv1alpha1.ProbeRequest) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.plan == nil {
		return ""
	}
	active := p.plan.Role == agent.RoleGateway
	if r.Spec.NodeName != p.opts.NodeName && (r.Spec.NodeName != "" || !active) {
		return ""
	}
	if active {
		return wirespanv1alpha1.ProbeRoleGateway
	}
	return wirespanv1alpha1.ProbeRoleNodeAgent
}

// answer probes for one request, if it is this node's and unanswered, and
// writes the answer.
func (p *probes) answer(ctx context.Context, key types.NamespacedName) {
	var r wirespanv1alpha1.ProbeRequest
	if err := p.cache.Get(ctx, key, &r); err != nil || r.Status.CompletionTime != nil {
		return
	}
	if _, done := p.answered[r.UID]; done {
		return
	}
	role := p.role(&r)
	if role == "" {
		return
	}
	in := p.inputs(ctx, role)
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	st := probe.Run(pctx, r.Spec, in, p.env(), p.now)
	cancel()
	r.Status = st
	if err := p.writer.Status().Update(ctx, &r); err != nil {
		// Deleted meanwhile (the plugin timed out), or changed: nothing
		// to tell anyone.
		if !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			p.log.Error(err, "write the answer to a ProbeRequest", "request", key)
		}
		return
	}
	p.answered[r.UID] = p.now()
	p.log.Info("answered a ProbeRequest", "request", key, "peers", len(st.Peers), "dnsNames", len(st.DNS),
		"took", st.CompletionTime.Sub(st.StartTime.Time).Round(time.Millisecond))
}

// inputs gathers what the probes need from the last sync and the cache.
func (p *probes) inputs(ctx context.Context, role string) probe.Inputs {
	p.mu.Lock()
	plan, pods, g := p.plan, p.pods, p.gossip
	p.mu.Unlock()
	in := probe.Inputs{Node: p.opts.NodeName, Role: role, Version: version.Get(), Device: p.opts.Agent.WireGuardName,
		Paths: probe.Paths(plan.State, pods, p.otherNodesPods(ctx))}
	if role == wirespanv1alpha1.ProbeRoleGateway {
		var endpoints map[wgtypes.Key]netip.AddrPort
		if dev, err := p.tunnels.kernel.Device(p.opts.Agent.WireGuardName); err == nil {
			endpoints = map[wgtypes.Key]netip.AddrPort{}
			for _, dp := range dev.Peers {
				if dp.Endpoint != nil {
					endpoints[dp.PublicKey] = dataplane.UnmapAddrPort(dp.Endpoint.AddrPort())
				}
			}
		}
		for _, pp := range plan.Peers {
			peer := probe.Peer{Cluster: pp.Cluster, HasKey: pp.Problem == "", Problem: pp.Problem, Endpoint: pp.Endpoint, TunnelAddr: pp.TunnelAddr}
			if ep, ok := endpoints[pp.Key]; ok {
				// Where the device really sends: a roamed or NATed peer's
				// address, not the one Git lists.
				peer.Endpoint = ep
			}
			in.Peers = append(in.Peers, peer)
		}
		if g != nil {
			in.Gossip = g.Heard()
		}
	}
	in.DNSServer, in.DNSError = p.clusterDNS(ctx)
	return in
}

// maxAgentNodes bounds the nodes whose pods' reverse path one request
// checks: every node agent's pods take the same path.
const maxAgentNodes = 8

// otherNodesPods are the pod ranges of other nodes (sorted by node name,
// at most maxAgentNodes nodes): the sources of what node agents send the
// gateway over VXLAN.
func (p *probes) otherNodesPods(ctx context.Context) []netip.Prefix {
	var nodes corev1.NodeList
	if err := p.cache.List(ctx, &nodes); err != nil {
		return nil
	}
	slices.SortFunc(nodes.Items, func(a, b corev1.Node) int { return strings.Compare(a.Name, b.Name) })
	var out []netip.Prefix
	n := 0
	for _, node := range nodes.Items {
		if node.Name == p.opts.NodeName || n == maxAgentNodes {
			continue
		}
		n++
		out = append(out, parseLoose(node.Spec.PodCIDRs)...)
	}
	return out
}

// clusterDNS is the address pods ask: the cluster DNS Service's
// ClusterIP, port 53.
func (p *probes) clusterDNS(ctx context.Context) (netip.AddrPort, string) {
	name := p.opts.ClusterDNSService
	if name.Name == "" {
		return netip.AddrPort{}, "not configured (--cluster-dns-service is empty)"
	}
	var svc corev1.Service
	if err := p.cache.Get(ctx, name, &svc); err != nil {
		return netip.AddrPort{}, fmt.Sprintf("read Service %s: %v", name, err)
	}
	ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil {
		return netip.AddrPort{}, fmt.Sprintf("Service %s has no ClusterIP (%q)", name, svc.Spec.ClusterIP)
	}
	return netip.AddrPortFrom(ip, 53), ""
}

// sweep answers the requests this node left unanswered, and on the
// active gateway deletes those answered (or, never answered, made) longer
// than probeRetention ago.
func (p *probes) sweep(ctx context.Context) {
	p.mu.Lock()
	active := p.plan != nil && p.plan.Role == agent.RoleGateway
	p.mu.Unlock()
	var list wirespanv1alpha1.ProbeRequestList
	if err := p.cache.List(ctx, &list); err != nil {
		return
	}
	now := p.now()
	for uid, at := range p.answered {
		if now.Sub(at) > probeRetention {
			delete(p.answered, uid)
		}
	}
	for i := range list.Items {
		r := &list.Items[i]
		if r.Status.CompletionTime == nil && p.role(r) != "" {
			p.answer(ctx, client.ObjectKeyFromObject(r))
		}
		if !active {
			continue
		}
		since := r.CreationTimestamp.Time
		if r.Status.CompletionTime != nil {
			since = r.Status.CompletionTime.Time
		}
		if now.Sub(since) < probeRetention {
			continue
		}
		if err := p.writer.Delete(ctx, r, client.Preconditions{UID: &r.UID}); err != nil && !apierrors.IsNotFound(err) {
			p.log.Error(err, "delete an old ProbeRequest", "request", client.ObjectKeyFromObject(r))
		}
	}
}

// env is probe's Env on this node.
func (p *probes) env() probe.Env {
	return probeEnv{p: p, mark: int(p.opts.Agent.FirewallMark)}
}

type probeEnv struct {
	p    *probes
	mark int
}

func (e probeEnv) Peers() (map[string]probe.PeerStats, error) { return e.p.tunnels.peerStats() }
func (e probeEnv) Rehandshake(cluster string) error           { return e.p.tunnels.rehandshake(cluster) }
func (e probeEnv) LinkMTU(link string) (int, error)           { return e.p.link(link) }
func (e probeEnv) Echo(ctx context.Context, dst netip.Addr, size int, wait time.Duration) (bool, error) {
	return e.p.net.Echo(ctx, dst, 0, size, wait)
}
func (e probeEnv) UnderlayEcho(ctx context.Context, dst netip.Addr, size int, wait time.Duration) (bool, error) {
	return e.p.net.Echo(ctx, dst, e.mark, size, wait)
}
func (e probeEnv) UDPRefused(ctx context.Context, ep netip.AddrPort, wait time.Duration) (bool, error) {
	return e.p.net.UDPRefused(ctx, ep, e.mark, wait)
}
func (e probeEnv) UnderlayMTU(ctx context.Context, ep netip.AddrPort, size int) (int, error) {
	return e.p.net.UnderlayMTU(ctx, ep, e.mark, size)
}
func (e probeEnv) ReversePath(pa probe.Path) (int, bool, string, error) {
	return e.p.net.ReversePath(pa.Link, pa.Source, pa.Destination)
}
func (e probeEnv) Lookup(ctx context.Context, server netip.AddrPort, name string) (string, []netip.Addr, error) {
	return e.p.net.Lookup(ctx, server, name)
}
