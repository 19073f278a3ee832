// Package app assembles the gateway binary: it reads its inputs from the
// API server's caches and from gossip, computes the desired kernel state
// with package agent, applies it through the kernel seam and reports what it
// sees in the remote ClusterPeers' status. One loop does all of it, so there
// is exactly one writer of the data plane.
package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/gateway/internal/agent"
	"github.com/wirespan/wirespan/gateway/internal/dataplane"
	"github.com/wirespan/wirespan/gateway/internal/dataplane/linux"
	"github.com/wirespan/wirespan/gateway/internal/dns"
	"github.com/wirespan/wirespan/gateway/internal/gossip"
	"github.com/wirespan/wirespan/gateway/internal/services"
	"github.com/wirespan/wirespan/internal/mcs"
)

// Run runs the gateway until ctx is done. On the way out it leaves the
// kernel state as it is, so traffic keeps flowing through a restart; use
// Teardown to remove it.
func Run(ctx context.Context, cfg *rest.Config, opts Options) error {
	logger := ctrl.Log.WithName("gateway")
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, wirespanv1alpha1.AddToScheme, mcsv1beta1.Install} {
		if err := add(scheme); err != nil {
			return err
		}
	}
	kernel, err := linux.New(linux.Options{WireGuardMode: opts.WireGuardMode, Log: logger.WithName("kernel"), SysctlDir: opts.SysctlDir})
	if err != nil {
		return err
	}
	defer func() { _ = kernel.Close() }()

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress: opts.ProbeAddr,
		PprofBindAddress:       opts.PprofAddr,
		// Managed fields are half the size of a typical cached object,
		// and the gateway never reads them; an Update without them leaves
		// the server's as they are.
		Cache: cache.Options{DefaultTransform: cache.TransformStripManagedFields(), ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {
				Namespaces: map[string]cache.Config{opts.KeySecret.Namespace: {}},
				Field:      fields.OneTermEqualSelector("metadata.name", opts.KeySecret.Name),
			},
		}},
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	s := &syncer{
		opts:    opts,
		log:     logger,
		cache:   mgr.GetCache(),
		writer:  mgr.GetClient(),
		kernel:  kernel,
		applier: &dataplane.Applier{Kernel: kernel, WireGuardName: opts.Agent.WireGuardName, VXLANName: opts.Agent.VXLANName},
		metrics: newMetrics(crmetrics.Registry),
		poke:    make(chan struct{}, 1),
		written: map[string]time.Time{},
		dnsEndpoint: &dnsEndpoint{service: opts.DNSService, reader: mgr.GetAPIReader(), writer: mgr.GetClient(),
			log: logger.WithName("dns-endpoint")},
	}
	if err := services.AddIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	s.services = &services.Controller{
		ClusterID: opts.ClusterID, Cache: mgr.GetCache(), Client: mgr.GetClient(),
		Log: logger.WithName("mcs"), DNS: dns.NewStore(), Metrics: services.NewMetrics(crmetrics.Registry),
		ImportGrace: opts.ImportGrace, MaxImportsPerCluster: opts.MaxImportsPerCluster,
	}
	for _, r := range []manager.Runnable{s, s.services} {
		if err := mgr.Add(r); err != nil {
			return err
		}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("synced", s.readyCheck); err != nil {
		return err
	}
	logger.Info("starting", "clusterID", opts.ClusterID, "node", opts.NodeName, "wireguard", opts.WireGuardMode,
		"routeMode", opts.Agent.Mode, "table", opts.Agent.Table, "tunnelCIDR", opts.Agent.TunnelCIDR)
	return mgr.Start(ctx)
}

// syncer is the one loop that owns the data plane.
type syncer struct {
	opts    Options
	log     logr.Logger
	cache   cache.Cache
	writer  client.Client
	kernel  *linux.Kernel
	applier *dataplane.Applier
	metrics *metrics
	poke    chan struct{}
	// resolver caches endpoint DNS answers.
	resolver resolver

	gossip     *gossip.Gossip
	gossipAddr netip.Addr
	// services is the MCS controller, working while gossip runs; dnsStop
	// stops the clusterset DNS server, which runs as long.
	services *services.Controller
	dnsStop  func()
	joining  chan struct{}
	// dnsEndpoint points the DNS Service at this node while it serves DNS.
	dnsEndpoint *dnsEndpoint
	// refusals remembers what the kernel refused at the last apply, so each
	// refusal is logged once, not once per sync.
	refusals dataplane.RefusalLog
	// written is when each remote peer's status was last written, so
	// tunnel figures alone are written at most every StatusPeriod.
	written map[string]time.Time
	// health is what the readiness check reports; the check runs on the
	// probe server's goroutines, so it is guarded.
	healthMu sync.Mutex
	synced   bool  // the data plane has been applied once
	lastErr  error // the last sync's error
}

// NeedLeaderElection is false: every node runs its own data plane.
func (s *syncer) NeedLeaderElection() bool { return false }

// Start runs the loop until ctx is done.
func (s *syncer) Start(ctx context.Context) error {
	for _, obj := range []client.Object{&corev1.Node{}, &wirespanv1alpha1.ClusterPeer{}, &corev1.Secret{}} {
		inf, err := s.cache.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("watch %T: %w", obj, err)
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { s.wake() },
			UpdateFunc: func(any, any) { s.wake() },
			DeleteFunc: func(any) { s.wake() },
		}); err != nil {
			return err
		}
	}
	if !s.cache.WaitForCacheSync(ctx) {
		return errors.New("caches did not sync")
	}
	tick := time.NewTicker(s.opts.Resync)
	defer tick.Stop()
	defer s.stopGossip()
	for {
		s.sync(ctx)
		var changed <-chan struct{}
		if s.gossip != nil {
			changed = s.gossip.Changed()
		}
		select {
		case <-ctx.Done():
			s.log.Info("stopping; the data plane stays as it is")
			return nil
		case <-s.poke:
		case <-changed:
			s.services.Wake()
		case <-tick.C:
		}
	}
}

func (s *syncer) wake() {
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

func (s *syncer) readyCheck(*http.Request) error {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	if !s.synced {
		return errors.New("the data plane has not been applied yet")
	}
	return s.lastErr
}

// sync reads, decides, applies and reports, once.
func (s *syncer) sync(ctx context.Context) {
	err := s.syncOnce(ctx)
	if err != nil {
		s.metrics.syncErrors.Inc()
		s.log.Error(err, "sync failed; the data plane keeps its last state")
	}
	s.healthMu.Lock()
	s.lastErr = err
	s.healthMu.Unlock()
}

func (s *syncer) syncOnce(ctx context.Context) error {
	w, err := s.read(ctx, s.learned)
	if err != nil {
		return err
	}
	plan := agent.Desired(w.in)
	plan.State.GossipInput = gossipInput(plan, s.opts.GossipPort)
	if plan.Role == agent.RoleGateway && w.in.PrivateKey == nil {
		// Without the key the device cannot be configured; keep what runs.
		return fmt.Errorf("active gateway without the cluster key: %w", w.keyErr)
	}
	refused := s.apply(plan)
	s.healthMu.Lock()
	s.synced = true
	s.healthMu.Unlock()
	if plan.Role != agent.RoleGateway {
		s.stopGossip()
		if err := s.dnsEndpoint.withdraw(ctx, s.opts.NodeName); err != nil {
			s.log.Error(err, "withdraw this node from the DNS Service")
		}
		s.metrics.reset()
		return nil
	}
	// Status and DNS go on when gossip cannot start (its tunnel address
	// may be what the kernel refused): they are how a user learns why.
	err = s.runGossip(w, plan)
	s.publishDNS(ctx, w)
	return errors.Join(err, s.report(ctx, w, plan, refused))
}

// apply puts the plan's kernel state in place and returns what the kernel
// refused. A refusal is not a sync error: everything else is applied, and
// gossip, status and DNS go on. It is logged once when it appears and once
// when it clears, counted by kind, put on the peer it concerns (report),
// and tried again on every sync.
func (s *syncer) apply(plan agent.Plan) []dataplane.Refusal {
	start := time.Now()
	changes, err := s.applier.Apply(plan.State)
	s.metrics.applyDuration.Observe(time.Since(start).Seconds())
	s.metrics.changes.Add(float64(len(changes)))
	for _, c := range changes {
		s.log.Info("dataplane", "change", c)
	}
	var refused []dataplane.Refusal
	if ae, ok := errors.AsType[*dataplane.ApplyError](err); ok {
		refused = ae.Refused
	} else if err != nil {
		// Apply names what it refused; anything else is still reported.
		refused = []dataplane.Refusal{{Kind: "apply", Object: "data plane", Err: err}}
	}
	s.metrics.kernelRefusals(refused)
	appeared, cleared := s.refusals.Update(refused)
	for _, r := range appeared {
		s.log.Error(r.Err, "the kernel refused a change; the rest is applied, and this is tried again every sync",
			"kind", r.Kind, "object", r.Object)
	}
	for _, c := range cleared {
		s.log.Info("the kernel took a change it refused before", "refusal", c)
	}
	return refused
}

// learned is what gossip knows of a cluster.
func (s *syncer) learned(cluster string) *agent.Learned {
	if s.gossip == nil {
		return nil
	}
	st, ok := s.gossip.Clusters()[cluster]
	if !ok {
		return nil
	}
	return &agent.Learned{PodCIDRs: st.PodCIDRs, ServiceCIDRs: st.ServiceCIDRs, ActiveGateway: st.ActiveGateway}
}

// runGossip starts gossip on the tunnel address (restarting it if the key,
// and so the address, changed), publishes this cluster's state and joins
// clusters that have no member in the pool yet.
func (s *syncer) runGossip(w *world, plan agent.Plan) error {
	addr := plan.State.WireGuard.Address.Addr()
	if s.gossip != nil && s.gossipAddr != addr {
		s.stopGossip()
	}
	if s.gossip == nil {
		g, err := gossip.New(gossip.Config{
			Cluster: s.opts.ClusterID, Node: s.opts.NodeName, PrivateKey: *w.in.PrivateKey,
			BindAddr: addr, Port: s.opts.GossipPort, Logger: s.log.WithName("gossip"), Registerer: crmetrics.Registry,
			ExportTTL: s.opts.ExportTTL,
			PeerAddr: func(k wgtypes.Key) netip.AddrPort {
				return netip.AddrPortFrom(agent.TunnelAddress(s.opts.Agent.TunnelCIDR, k), uint16(s.opts.GossipPort))
			},
		})
		if err != nil {
			return fmt.Errorf("start gossip on %s: %w", addr, err)
		}
		s.gossip, s.gossipAddr = g, addr
		s.log.Info("gossip started", "addr", g.LocalAddr())
		if err := s.startDNS(); err != nil {
			return err
		}
		s.services.SetExchange(g)
	}
	keys := map[string]wgtypes.Key{}
	for _, p := range plan.Peers {
		if p.Problem == "" {
			keys[p.Cluster] = p.Key
		}
	}
	if err := s.gossip.SetPeers(keys); err != nil {
		s.log.Error(err, "some peers are left out of gossip")
	}
	local := gossip.ClusterState{Cluster: s.opts.ClusterID, ActiveGateway: s.opts.NodeName}
	if w.self != nil {
		local.PodCIDRs = parseLoose(w.self.Status.PodCIDRs)
		local.ServiceCIDRs = parseLoose(w.self.Status.ServiceCIDRs)
	}
	s.services.SetServiceFamilies(mcs.FamiliesOf(local.ServiceCIDRs))
	if err := s.gossip.SetLocal(local); err != nil {
		return fmt.Errorf("publish this cluster's state: %w", err)
	}
	s.joinMissing(plan)
	return nil
}

// joinMissing contacts, in the background, the clusters with no member in
// the pool. A peer behind NAT answers only once it has dialed in.
func (s *syncer) joinMissing(plan agent.Plan) {
	if s.joining != nil {
		select {
		case <-s.joining:
		default:
			return // the last attempt still runs
		}
	}
	present := map[string]bool{}
	for _, m := range s.gossip.Members() {
		present[m.Cluster] = true
	}
	var addrs []netip.AddrPort
	for _, p := range plan.Peers {
		if p.Problem == "" && !present[p.Cluster] {
			addrs = append(addrs, netip.AddrPortFrom(p.TunnelAddr, uint16(s.opts.GossipPort)))
		}
	}
	if len(addrs) == 0 {
		return
	}
	done := make(chan struct{})
	s.joining = done
	g := s.gossip
	go func() {
		defer close(done)
		if n, err := g.Join(addrs); err != nil && n == 0 {
			s.log.V(1).Info("gossip join found nobody yet", "tried", addrs, "error", err.Error())
		}
	}()
}

func (s *syncer) stopGossip() {
	if s.gossip == nil {
		return
	}
	s.services.SetExchange(nil)
	if s.dnsStop != nil {
		s.dnsStop()
		s.dnsStop = nil
	}
	if err := s.gossip.Shutdown(); err != nil {
		s.log.Error(err, "stop gossip")
	}
	s.gossip, s.joining = nil, nil
}

// report writes, on each remote ClusterPeer, what this gateway sees of it.
// refused are the kernel refusals of this sync's apply; each goes on the
// peer it concerns.
func (s *syncer) report(ctx context.Context, w *world, plan agent.Plan, refused []dataplane.Refusal) error {
	var errs []error
	dev, err := s.kernel.Device(s.opts.Agent.WireGuardName)
	if err != nil {
		// The kernel may have refused the device: each peer's status
		// still says so (see refused), with no tunnel figures.
		errs = append(errs, fmt.Errorf("read WireGuard device: %w", err))
		dev = &wgtypes.Device{}
	}
	now := time.Now()
	selfMismatch := w.self != nil && w.self.Spec.PublicKey != "" && w.self.Spec.PublicKey != w.in.PrivateKey.PublicKey().String()
	s.metrics.reset()
	up := 0
	for _, p := range plan.Peers {
		cp, ok := w.remote[p.Cluster]
		if !ok {
			continue
		}
		obs := agent.Observation{Learned: s.learned(p.Cluster), SelfKeyMismatch: selfMismatch, Now: now}
		for _, r := range refused {
			if p.Concerns(r, s.opts.Agent.WireGuardName) {
				obs.Refused = append(obs.Refused, r)
			}
		}
		if i := slices.IndexFunc(dev.Peers, func(x wgtypes.Peer) bool { return x.PublicKey == p.Key }); i >= 0 && p.Problem == "" {
			obs.WireGuard = &dev.Peers[i]
		}
		if s.gossip != nil {
			obs.RTT, _ = s.gossip.RTT(p.Cluster)
		}
		s.metrics.peer(p.Cluster, obs.WireGuard, obs.RTT, p.Refused, now)
		want := agent.RemoteStatus(cp.Status, cp.Generation, p, obs)
		if connectedTrue(want.Conditions) {
			up++
		}
		if err := s.writeStatus(ctx, cp, want, now); err != nil {
			errs = append(errs, err)
		}
	}
	s.metrics.peersUp.Set(float64(up))
	return errors.Join(errs...)
}

// writeStatus writes want unless it equals what is there, or differs only
// in tunnel figures written less than StatusPeriod ago.
func (s *syncer) writeStatus(ctx context.Context, cp *wirespanv1alpha1.ClusterPeer, want wirespanv1alpha1.ClusterPeerStatus, now time.Time) error {
	if equality.Semantic.DeepEqual(cp.Status, want) {
		return nil
	}
	figuresOnly := cp.Status.DeepCopy()
	figuresOnly.Tunnel = want.Tunnel
	if equality.Semantic.DeepEqual(*figuresOnly, want) && now.Sub(s.written[cp.Name]) < s.opts.StatusPeriod {
		return nil
	}
	updated := cp.DeepCopy()
	updated.Status = want
	err := s.writer.Status().Update(ctx, updated)
	switch {
	case apierrors.IsConflict(err), apierrors.IsNotFound(err):
		// The operator wrote in between, or the peer went; the watch
		// brings us back with the new object.
		return nil
	case err != nil:
		return fmt.Errorf("update status of ClusterPeer %s: %w", cp.Name, err)
	}
	s.written[cp.Name] = now
	return nil
}

func connectedTrue(conds []metav1.Condition) bool {
	return meta.IsStatusConditionTrue(conds, wirespanv1alpha1.ConditionConnected)
}

// Teardown removes everything Wirespan put in this node's kernel: its
// links, routes, rules, neighbor entries and nftables table. Sysctls stay
// as they are.
func Teardown(opts Options, log logr.Logger) ([]string, error) {
	kernel, err := linux.New(linux.Options{WireGuardMode: opts.WireGuardMode, Log: log, SysctlDir: opts.SysctlDir})
	if err != nil {
		return nil, err
	}
	defer func() { _ = kernel.Close() }()
	a := &dataplane.Applier{Kernel: kernel, WireGuardName: opts.Agent.WireGuardName, VXLANName: opts.Agent.VXLANName}
	return a.Apply(dataplane.State{Table: opts.Agent.Table})
}

// startDNS starts the clusterset DNS server, answering from the MCS
// controller's store, unless --dns-bind-address is empty.
func (s *syncer) startDNS() error {
	if s.opts.DNSAddr == "" || s.dnsStop != nil {
		return nil
	}
	srv, err := dns.NewServer(dns.Config{
		Zone: s.opts.DNSZone, Addr: s.opts.DNSAddr, Store: s.services.DNS,
		Logger: s.log.WithName("dns"), Registerer: crmetrics.Registry,
	})
	if err != nil {
		return fmt.Errorf("start the clusterset DNS server: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Run(ctx); err != nil {
			s.log.Error(err, "clusterset DNS server stopped")
		}
	}()
	s.log.Info("clusterset DNS server started", "addr", srv.Addr(), "zone", s.opts.DNSZone)
	s.dnsStop = func() { cancel(); <-done }
	return nil
}

// publishDNS points the DNS Service (--dns-service) at this gateway's DNS
// server once it runs. A failure is logged and retried at the next sync; it
// does not make the data plane unready.
func (s *syncer) publishDNS(ctx context.Context, w *world) {
	if s.dnsStop == nil {
		return
	}
	addr, err := netip.ParseAddrPort(defaultHost(s.opts.DNSAddr))
	if err != nil {
		return // Validate refused it already
	}
	if addr.Addr().IsUnspecified() {
		addr = netip.AddrPortFrom(w.in.Node.IP, addr.Port())
	}
	if err := s.dnsEndpoint.publish(ctx, s.opts.NodeName, addr, time.Now()); err != nil {
		s.log.Error(err, "publish this gateway in the DNS Service")
	}
}
