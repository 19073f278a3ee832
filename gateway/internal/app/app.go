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
	goruntime "runtime"
	"sync"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
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
	"github.com/wirespan/wirespan/gateway/internal/election"
	"github.com/wirespan/wirespan/gateway/internal/services"
)

// newManager creates the controller manager. It needs the API server (to
// map the cached kinds), and its errors come from asking it: a starting
// API server answers discovery with errors for a while. So while it
// fails, newManager puts back the kept data plane once (restore) and tries
// again every second (one discovery request): a gateway that starts
// during an API server outage carries traffic instead of exiting with its
// pod, again and again.
func newManager(ctx context.Context, cfg *rest.Config, opts Options, scheme *runtime.Scheme, log logr.Logger, restore func()) (manager.Manager, error) {
	restored := false
	var lastErr string
	for {
		mgr, err := ctrl.NewManager(cfg, managerOptions(opts, scheme))
		if err == nil {
			return mgr, nil
		}
		if !restored {
			restore()
			restored = true
		}
		if msg := err.Error(); msg != lastErr {
			log.Error(err, "the API server does not answer; trying again every second")
			lastErr = msg
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("create manager: %w", err)
		case <-time.After(time.Second):
		}
	}
}

func managerOptions(opts Options, scheme *runtime.Scheme) ctrl.Options {
	return ctrl.Options{
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
			&coordinationv1.Lease{}: {
				Namespaces: map[string]cache.Config{opts.Lease.Namespace: {}},
				Field:      fields.OneTermEqualSelector("metadata.name", opts.Lease.Name),
			},
			// The release namespace's, where the gateway may read them.
			&wirespanv1alpha1.ProbeRequest{}: {Namespaces: map[string]cache.Config{opts.Lease.Namespace: {}}},
		}},
	}
}

// restoreKept applies the kept gateway state, if there is one: the API
// server is unreachable, and this node may have been the active gateway.
func restoreKept(log logr.Logger, applier *dataplane.Applier, last *lastState) {
	st, ok, err := last.load()
	switch {
	case err != nil:
		log.Error(err, "the API server is unreachable, and the kept data plane cannot be used; the kernel keeps what it has")
		return
	case !ok:
		log.Info("the API server is unreachable; this node kept no gateway state, and the kernel keeps what it has")
		return
	}
	changes, err := applier.Apply(st)
	for _, c := range changes {
		log.Info("dataplane", "change", c)
	}
	if err != nil {
		log.Error(err, "putting back the kept data plane")
	}
	peers := 0
	if st.WireGuard != nil {
		peers = len(st.WireGuard.Peers)
	}
	log.Info("the API server is unreachable: put back the data plane this gateway last applied, until it answers",
		"peers", peers, "routes", len(st.Routes), "changes", len(changes))
}

// Run runs the gateway until ctx is done. On the way out it leaves the
// kernel state as it is, so traffic keeps flowing through a restart; use
// Teardown to remove it.
func Run(ctx context.Context, cfg *rest.Config, opts Options) error {
	logger := ctrl.Log.WithName("gateway")
	if opts.GoMaxProcs > 0 {
		logger.Info("GOMAXPROCS from --gomaxprocs", "gomaxprocs", opts.GoMaxProcs, "was", goruntime.GOMAXPROCS(opts.GoMaxProcs))
	}
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

	applier := &dataplane.Applier{Kernel: kernel, WireGuardName: opts.Agent.WireGuardName, VXLANName: opts.Agent.VXLANName}
	last := &lastState{path: opts.StateFile}
	mgr, err := newManager(ctx, cfg, opts, scheme, logger, func() { restoreKept(logger, applier, last) })
	if err != nil {
		return err
	}
	elector := election.New(election.Config{
		Lease: opts.Lease, Identity: opts.NodeName, Duration: opts.LeaseDuration, RenewPeriod: opts.LeaseRenewPeriod,
		AfterOutage: afterOutage,
		Reader:      mgr.GetAPIReader(), Writer: mgr.GetClient(), Log: logger.WithName("election"),
		Metrics: election.NewMetrics(crmetrics.Registry),
	})
	if err := services.AddIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	mcsController := &services.Controller{
		ClusterID: opts.ClusterID, Cache: mgr.GetCache(), Client: mgr.GetClient(),
		Log: logger.WithName("mcs"), DNS: dns.NewStore(), Metrics: services.NewMetrics(crmetrics.Registry),
		ImportGrace: opts.ImportGrace, MaxImportsPerCluster: opts.MaxImportsPerCluster,
	}
	m := newMetrics(crmetrics.Registry)
	s := &syncer{
		elector:       elector,
		opts:          opts,
		log:           logger,
		cache:         mgr.GetCache(),
		kernel:        kernel,
		applier:       applier,
		metrics:       m,
		poke:          make(chan struct{}, 1),
		role:          &activeRole{opts: opts, log: logger, services: mcsController, registry: crmetrics.Registry},
		reporter:      &reporter{opts: opts, writer: mgr.GetClient(), metrics: m},
		interfaceWith: interfaceWith,
		last:          last,
	}
	s.tunnels = newTunnels(s, elector.Confirmed)
	s.probes = newProbes(s, mgr.GetClient(), kernel)
	s.dns = &clustersetDNS{
		opts: opts, log: logger, services: mcsController, registry: crmetrics.Registry, linger: dnsLinger,
		endpoint: &dnsEndpoint{service: opts.DNSService, reader: mgr.GetAPIReader(), writer: mgr.GetClient(),
			log: logger.WithName("dns-endpoint")},
		reader: mgr.GetCache(), wake: s.wake, takeovers: newTakeoverCounter(crmetrics.Registry), ask: askDNS,
	}
	for _, r := range []manager.Runnable{elector, s, mcsController, s.probes} {
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
		"routeMode", opts.Agent.Mode, "table", opts.Agent.Table, "tunnelCIDR", opts.Agent.TunnelCIDR, "tunnelCIDRv6", opts.Agent.TunnelCIDR6)
	return mgr.Start(ctx)
}

// syncer is the one loop that owns the data plane: it reads, decides,
// applies through the kernel seam, then runs or stops the active role and
// reports.
type syncer struct {
	// elector says which gateway node is active (package election).
	elector *election.Elector
	opts    Options
	log     logr.Logger
	cache   cache.Cache
	kernel  dataplane.Kernel
	applier *dataplane.Applier
	metrics *metrics
	poke    chan struct{}
	// interfaceWith finds the node network's interface (interfaceWith in
	// inputs.go; a test's fake).
	interfaceWith func(netip.Addr) (string, int, []netip.Prefix, error)
	// resolver caches endpoint DNS answers; endpoints chooses which of a
	// peer's endpoints to dial.
	resolver  resolver
	endpoints endpointChooser
	// role runs what only the active gateway runs; dns what every gateway
	// runs; reporter writes the remote peers' status.
	role     *activeRole
	dns      *clustersetDNS
	reporter *reporter
	// tunnels restarts WireGuard sessions that stopped answering.
	tunnels *tunnels
	// probes answers ProbeRequests from what the last sync applied.
	probes *probes
	// refusals remembers what the kernel refused at the last apply, so each
	// refusal is logged once, not once per sync.
	refusals dataplane.RefusalLog
	// last keeps the applied gateway state on the node (laststate.go);
	// lastKeepErr is its last error, logged once.
	last        *lastState
	lastKeepErr string
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
	if err := s.watchLease(ctx); err != nil {
		return err
	}
	if !s.waitForCaches(ctx) {
		return errors.New("caches did not sync")
	}
	resync := time.NewTicker(s.opts.Resync)
	defer resync.Stop()
	checks, stopChecks := context.WithCancel(context.Background())
	defer stopChecks()
	go s.tunnels.run(checks)
	for {
		if s.elector.Known() {
			// Until then this node does not know where the active gateway
			// is: it keeps the kernel state it has.
			s.sync(ctx)
		}
		if !s.waitForWork(ctx, resync.C) {
			s.handOver()
			s.log.Info("stopping; the data plane stays as it is")
			return nil
		}
	}
}

// waitForWork waits for a reason to sync; false when ctx is done.
func (s *syncer) waitForWork(ctx context.Context, resync <-chan time.Time) bool {
	select {
	case <-ctx.Done():
		return false
	case <-s.poke:
	case <-s.elector.Changed():
	case <-s.role.changed():
		s.role.services.Wake()
	case <-resync:
	}
	return true
}

// afterOutage is how much longer a standby waits for the active gateway
// to renew the Lease after the API server comes back (election's
// Config.AfterOutage): long enough for a gateway restarted during the
// outage to create its manager (retried every second) and fill its caches.
const afterOutage = 5 * time.Second

// restoreAfter is how long a starting gateway waits for its caches before
// it takes the API server for unreachable and puts back the data plane it
// last applied. Against a reachable API server the caches fill in a small
// part of it.
const restoreAfter = time.Second

// waitForCaches waits until the caches are filled. When they are not
// within restoreAfter, it first puts back the kept state (lastState), so a
// gateway restarted during an API server outage carries traffic again.
func (s *syncer) waitForCaches(ctx context.Context) bool {
	quick, cancel := context.WithTimeout(ctx, restoreAfter)
	synced := s.cache.WaitForCacheSync(quick)
	cancel()
	if synced {
		return true
	}
	if ctx.Err() != nil {
		return false
	}
	restoreKept(s.log, s.applier, s.last)
	return s.cache.WaitForCacheSync(ctx)
}

// watchLease passes the active role's Lease, as the watch shows it, to the
// elector: node agents learn the active gateway from it, and candidates
// read the Lease at once when it changes.
func (s *syncer) watchLease(ctx context.Context) error {
	inf, err := s.cache.GetInformer(ctx, &coordinationv1.Lease{})
	if err != nil {
		return fmt.Errorf("watch Lease %s: %w", s.opts.Lease, err)
	}
	observe := func(obj any) {
		if l, ok := obj.(*coordinationv1.Lease); ok && l.Name == s.opts.Lease.Name {
			s.elector.Observe(l)
		}
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    observe,
		UpdateFunc: func(_, obj any) { observe(obj) },
		DeleteFunc: func(any) { s.elector.Observe(nil) },
	})
	return err
}

// handOver carries traffic and answers DNS while this gateway stops and
// the elector hands the role over, at most one Lease duration. Gossip
// stops first: the peers keep this cluster's exports through a silence
// far shorter than their TTL, and a gossip message sent through this
// node's tunnel after the successor's handshake would make them roam back
// here. Once the successor holds the Lease, this node syncs once more, as
// the node agent it now is, so its WireGuard device goes as it would
// after a label removal, for the same reason.
func (s *syncer) handOver() {
	wasActive := s.role.running()
	s.role.stop()
	deadline := time.Now().Add(s.opts.LeaseDuration)
	for s.elector.Active() == s.opts.NodeName && time.Now().Before(deadline) {
		time.Sleep(s.opts.LeaseRenewPeriod / 4)
	}
	if holder := s.elector.Active(); wasActive && holder != "" && holder != s.opts.NodeName {
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.LeaseDuration)
		s.sync(ctx)
		cancel()
	}
	if wasActive || s.dns.names(context.Background()) {
		// DNS queries still reach this node until kube-proxy follows the
		// successor's endpoint (clustersetDNS's linger).
		time.Sleep(s.dns.linger)
	}
	s.dns.stop()
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
	w, err := s.read(ctx, s.role.learned)
	if err != nil {
		return err
	}
	plan := agent.Desired(w.in)
	plan.State.GossipInput = gossipInput(plan, s.opts.GossipPort)
	if plan.Role == agent.RoleGateway && w.in.PrivateKey == nil {
		// Without the key the device cannot be configured; keep what runs.
		keyErr := w.keyErr
		if keyErr == nil {
			keyErr = errors.New("not read")
		}
		return fmt.Errorf("active gateway without the cluster key: %w", keyErr)
	}
	if plan.Role != agent.RoleGateway {
		// Gossip stops before the tunnel goes: a message sent through it
		// after the successor's handshake would make the peers roam back
		// to this node, whose device is about to vanish.
		s.role.stop()
	}
	refused := s.apply(plan)
	if plan.Role != agent.RoleGateway {
		s.probes.learn(plan, w.self, nil)
	}
	s.healthMu.Lock()
	s.synced = true
	s.healthMu.Unlock()
	if plan.Role == agent.RoleGateway {
		// The plan's state, never the passive one: it is the state to
		// come back with.
		err = s.last.save(plan.State)
	} else {
		err = s.last.forget()
	}
	if msg := errString(err); msg != s.lastKeepErr {
		// Logged when it appears and when it clears, not on every sync.
		if err != nil {
			s.log.Error(err, "keep the data plane state on the node; a restart while the API server is down will not bring the tunnels back")
		} else {
			s.log.Info("the data plane state is kept on the node again")
		}
		s.lastKeepErr = msg
	}
	// Every gateway serves clusterset DNS, standbys too; the holder that
	// lost its label serves until its successor holds the Lease.
	var dnsErr error
	if w.gateway || plan.Role == agent.RoleGateway {
		dnsErr = s.dns.serve(ctx, w)
	} else if err := s.dns.retire(ctx); err != nil {
		s.log.Error(err, "withdraw this node from the DNS Service")
	}
	if plan.Role != agent.RoleGateway {
		s.metrics.reset()
		return dnsErr
	}
	s.tunnels.learn(plan, w.in.SelfHasEndpoint)
	newlyActive := !s.role.running()
	err = s.role.run(w, plan)
	s.probes.learn(plan, w.self, s.role.gossip)
	s.dns.publish(ctx, w, newlyActive)
	dev, devErr := s.kernel.Device(s.opts.Agent.WireGuardName)
	return errors.Join(err, dnsErr, s.reporter.report(ctx, w, plan, dev, devErr, refused, s.role))
}

// apply puts the plan's kernel state in place and returns what the kernel
// refused. A refusal is not a sync error: everything else is applied, and
// gossip, status and DNS go on. It is logged once when it appears and once
// when it clears, counted by kind, put on the peer it concerns (report),
// and tried again on every sync.
func (s *syncer) apply(plan agent.Plan) []dataplane.Refusal {
	start := time.Now()
	changes, err := s.tunnels.apply(plan, s.applier.Apply)
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

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
