package services

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/wirespan/wirespan/gateway/internal/dns"
	"github.com/wirespan/wirespan/gateway/internal/gossip"
	"github.com/wirespan/wirespan/internal/mcs"
)

// Exchange carries exports between clusters: gossip.
type Exchange interface {
	// SetExports publishes our whole set of exports, once, before any
	// PublishExport or WithdrawExport.
	SetExports(map[gossip.ExportKey]json.RawMessage) error
	PublishExport(gossip.ExportKey, json.RawMessage) error
	WithdrawExport(gossip.ExportKey) error
	RemoteExports() map[string]gossip.ClusterExports
}

// Defaults of the Controller's settings.
const (
	DefaultWorkers     = 32
	DefaultResync      = 30 * time.Second
	DefaultImportGrace = 6 * time.Hour
	// DefaultMaxRetryDelay is shorter than Kubernetes' 1000 s: a service
	// that failed for a passing reason (an API server restart) should not
	// wait a quarter of an hour.
	DefaultMaxRetryDelay = 30 * time.Second
	// DefaultWarmup is the longest a newly active gateway waits for the
	// clusters its imports name before it writes imports without them.
	DefaultWarmup = 10 * time.Second
	// DefaultMaxImportsPerCluster is what one cluster can gossip at most.
	DefaultMaxImportsPerCluster = gossip.MaxExports
)

// Controller is the MCS controller. Start it with the manager; it works
// only while it has an Exchange (SetExchange), that is while this node is
// the active gateway.
type Controller struct {
	// ClusterID is this cluster's ID.
	ClusterID string
	Cache     cache.Cache
	Client    client.Client
	Log       logr.Logger
	// DNS, if set, gets every import's records.
	DNS *dns.Store
	// Resync is how often gossip is compared with what the controller
	// last saw, as a safety net (default DefaultResync); a cluster whose
	// exports did not change costs one comparison.
	Resync time.Duration
	// Workers is how many services are reconciled at once (default
	// DefaultWorkers). A new import is a few sequential writes, so the
	// write rate is Workers over the API server's latency, which is
	// hundreds of milliseconds on a busy API server; the client's QPS
	// limit (--kube-api-qps) caps it either way.
	Workers int
	// ImportGrace is how long the ServiceImports and derived Services of
	// a silent cluster's exports stay (default DefaultImportGrace): its
	// endpoints go when gossip reports it silent (the export TTL), its
	// VIPs only after this, so that a partition does not renumber them.
	ImportGrace time.Duration
	// MaxImportsPerCluster bounds how many services one remote cluster
	// may have imported here (default DefaultMaxImportsPerCluster); the
	// rest, last by namespace and name, are left out and counted.
	MaxImportsPerCluster int
	// Warmup bounds how long a newly active gateway waits, after it takes
	// the role, for gossip to bring it every cluster its imports name
	// (default DefaultWarmup). Until then imports are not written: a
	// failover must not drop another cluster's exports only because the
	// new gateway has not heard from it yet. DNS answers from the imports
	// as they are meanwhile (prefillDNS).
	Warmup time.Duration
	// MaxRetryDelay bounds the backoff of a failing service (default
	// DefaultMaxRetryDelay); the first retry comes after 5 ms, and each
	// next one waits twice as long.
	MaxRetryDelay time.Duration
	Metrics       *Metrics

	queue  workqueue.TypedRateLimitingInterface[serviceKey]
	writes writes
	// wake asks the loop to look at the exchange and gossip.
	wake     chan struct{}
	initOnce sync.Once

	mu sync.Mutex
	// exch is the exchange asked for (SetExchange); active is the one in
	// use, whose whole set of our exports has been given (seeded). The
	// loop moves exch to active.
	exch, active Exchange
	// enqueueAll asks the loop to reconcile every service (the IP
	// families changed).
	enqueueAll bool
	// standbyDNS: DNS is fed from the cache while no exchange is active
	// (SetStandbyDNS).
	standbyDNS bool
	// activatedAt is when the active exchange was seeded; warm says the
	// warm-up after it is over (warmup.go).
	activatedAt time.Time
	warm        bool
	// families are this cluster's Service IP families (SetServiceFamilies);
	// empty while unknown.
	families []corev1.IPFamily
	// ranges are the ranges accepted from each other cluster
	// (SetClusterRanges); nil until set.
	ranges map[string][]netip.Prefix
	// exportNamespaces are the namespaces each other cluster may export
	// from, for the clusters whose ClusterPeer lists them
	// (SetExportNamespaces); outOfNamespace marks the exports refused for
	// it, each counted once.
	exportNamespaces map[string][]string
	outOfNamespace   map[string]bool
	// remote is the view of the remote exports (remote.go).
	remote map[string]*remoteCluster
	// refreshes counts the loop's passes over gossip, for tests.
	refreshes int
	// busy counts services in work; failing are those waiting for a retry.
	busy    int
	failing map[serviceKey]bool

	// dnsMu guards dnsLast, what DNS was last given, by service.
	dnsMu   sync.Mutex
	dnsLast map[serviceKey]dns.Service
	// counts of local exports, imports and conflicting exports, for the
	// metrics.
	countMu                         sync.Mutex
	exported, imported, conflicting map[serviceKey]bool
}

func (c *Controller) init() {
	c.initOnce.Do(func() {
		c.wake = make(chan struct{}, 1)
		c.exported, c.imported, c.conflicting = map[serviceKey]bool{}, map[serviceKey]bool{}, map[serviceKey]bool{}
		c.failing = map[serviceKey]bool{}
	})
}

// SetExchange attaches the exchange (this node became the active gateway)
// or, with nil, detaches it; then the controller writes nothing.
func (c *Controller) SetExchange(e Exchange) {
	c.mu.Lock()
	changed := c.exch != e
	c.exch = e
	c.mu.Unlock()
	if changed {
		c.Wake()
	}
}

// SetStandbyDNS says whether DNS is kept current while this node is not
// the active gateway: a standby gateway serves clusterset DNS too, so that
// the DNS Service can fall over to it before the Lease moves. Its answers
// are the imports the active gateway wrote, as the cache shows them. Off,
// DNS keeps what it has (a server that lingers still answers from it);
// on again, every import and every name DNS has is brought up to date.
func (c *Controller) SetStandbyDNS(on bool) {
	c.mu.Lock()
	changed := c.standbyDNS != on
	c.standbyDNS = on
	if on && changed {
		c.enqueueAll = true
	}
	c.mu.Unlock()
	if on && changed {
		c.Wake()
	}
}

// SetClusterRanges gives, for each other cluster, the ranges accepted
// from it (what this cluster routes to it): an import keeps only the
// endpoints inside them. Until it is first called, nothing is filtered;
// after, a cluster missing from ranges has no endpoint imported. Every
// import is reconciled again if the ranges changed.
func (c *Controller) SetClusterRanges(ranges map[string][]netip.Prefix) {
	c.mu.Lock()
	changed := c.ranges == nil || !maps.EqualFunc(c.ranges, ranges, slices.Equal)
	c.ranges = maps.Clone(ranges)
	if c.ranges == nil {
		c.ranges = map[string][]netip.Prefix{}
	}
	c.mu.Unlock()
	if changed {
		c.requeueAll()
	}
}

// withinRanges filters exports from other clusters to the endpoints inside
// the ranges accepted from them, and counts what it drops.
func (c *Controller) withinRanges(exports []mcs.Export) []mcs.Export {
	c.mu.Lock()
	ranges := c.ranges
	c.mu.Unlock()
	if ranges == nil {
		return exports
	}
	out := make([]mcs.Export, len(exports))
	for i, e := range exports {
		kept, dropped := e.WithinRanges(ranges[e.Cluster])
		if dropped > 0 {
			c.Metrics.refusedEndpoints.WithLabelValues(e.Cluster).Add(float64(dropped))
			c.Log.V(1).Info("Left out endpoints outside the ranges accepted from their cluster", "cluster", e.Cluster, "service", e.Service.String(), "endpoints", dropped)
		}
		out[i] = kept
	}
	return out
}

// SetServiceFamilies tells the controller which IP families this
// cluster's Services can have (from its Service ranges), so that imports
// get clusterset IPs only in those; every import is reconciled again if
// they changed.
func (c *Controller) SetServiceFamilies(families []corev1.IPFamily) {
	c.mu.Lock()
	changed := !slices.Equal(c.families, families)
	c.families = slices.Clone(families)
	c.mu.Unlock()
	if changed {
		c.requeueAll()
	}
}

// requeueAll has the loop queue every service.
func (c *Controller) requeueAll() {
	c.mu.Lock()
	c.enqueueAll = true
	c.mu.Unlock()
	c.Wake()
}

func (c *Controller) serviceFamilies() []corev1.IPFamily {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.families
}

// refreshCount returns how many passes over gossip the loop made.
func (c *Controller) refreshCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refreshes
}

// idle reports whether the controller has nothing to do: no service
// queued, in work, or waiting for a retry.
func (c *Controller) idle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queue != nil && c.queue.Len() == 0 && c.busy == 0 && len(c.failing) == 0
}

// Wake asks the controller to compare gossip with what it last saw, and
// reconcile the services whose records changed; it does not block. Call
// it when gossip signals a change.
func (c *Controller) Wake() {
	c.init()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// NeedLeaderElection is false: the active gateway, not a lease, decides.
func (c *Controller) NeedLeaderElection() bool { return false }

// Start runs the controller until ctx is done.
func (c *Controller) Start(ctx context.Context) error {
	c.init()
	c.Workers = cmpOr(c.Workers, DefaultWorkers)
	c.Resync = cmpOr(c.Resync, DefaultResync)
	c.ImportGrace = cmpOr(c.ImportGrace, DefaultImportGrace)
	c.MaxImportsPerCluster = cmpOr(c.MaxImportsPerCluster, DefaultMaxImportsPerCluster)
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
	for _, kind := range []string{"ServiceExport", "ServiceImport"} {
		gk := schema.GroupKind{Group: mcsv1beta1.GroupName, Kind: kind}
		if _, err := c.Client.RESTMapper().RESTMapping(gk, mcsv1beta1.GroupVersion.Version); err != nil {
			c.Log.Info("The Multi-Cluster Services API is not installed (CRDs serviceexports and serviceimports.multicluster.x-k8s.io): no services are exported or imported. Install the CRDs and restart the gateway.", "missing", kind, "error", err.Error())
			return nil
		}
	}
	c.MaxRetryDelay = cmpOr(c.MaxRetryDelay, DefaultMaxRetryDelay)
	c.Warmup = cmpOr(c.Warmup, DefaultWarmup)
	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[serviceKey](5*time.Millisecond, c.MaxRetryDelay),
		workqueue.TypedRateLimitingQueueConfig[serviceKey]{Name: "wirespan_mcs"})
	unwatch, err := c.watch(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while the informers were starting
		}
		return err
	}
	defer unwatch()
	if !c.Cache.WaitForCacheSync(ctx) {
		return errors.New("caches did not sync")
	}
	var wg sync.WaitGroup
	for range c.Workers {
		wg.Go(func() {
			for c.processNext(ctx) {
			}
		})
	}
	c.loop(ctx)
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// loop follows the exchange and gossip: it seeds a new exchange, and on
// every wake (gossip changed) and every Resync queues the services whose
// remote records changed.
func (c *Controller) loop(ctx context.Context) {
	tick := time.NewTicker(c.Resync)
	defer tick.Stop()
	var graceTimer *time.Timer
	defer func() {
		if graceTimer != nil {
			graceTimer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		case <-tick.C:
		}
		change, ok := c.step(ctx)
		if !ok {
			continue
		}
		// Wake when the grace of a silent cluster ends.
		if !change.wakeAt.IsZero() {
			if graceTimer != nil {
				graceTimer.Stop()
			}
			graceTimer = time.AfterFunc(time.Until(change.wakeAt)+10*time.Millisecond, c.Wake)
		}
	}
}

// step is one pass of the loop; false if no exchange is active.
func (c *Controller) step(ctx context.Context) (gossipDelta, bool) {
	c.mu.Lock()
	exch, active, all := c.exch, c.active, c.enqueueAll
	c.enqueueAll = false
	c.mu.Unlock()
	if exch != active {
		if exch == nil {
			c.deactivate()
			return gossipDelta{}, false
		}
		if err := c.seed(ctx, exch); err != nil {
			c.Log.Error(err, "Cannot publish this cluster's exports yet; retrying in a second")
			time.AfterFunc(time.Second, c.Wake)
			return gossipDelta{}, false
		}
		all = true
	}
	if exch == nil {
		if all && c.feedsStandbyDNS() {
			if err := c.enqueueEverything(ctx); err != nil {
				c.Log.Error(err, "Cannot list the imports for DNS; retrying in a second")
				time.AfterFunc(time.Second, c.requeueAll)
			}
		}
		return gossipDelta{}, false
	}
	change := c.refreshRemote(exch, time.Now())
	c.mu.Lock()
	c.refreshes++
	c.mu.Unlock()
	if all || change.clusterState {
		if err := c.enqueueEverything(ctx); err != nil {
			c.Log.Error(err, "Cannot list the services to reconcile; retrying in a second")
			time.AfterFunc(time.Second, c.requeueAll)
		}
	}
	for key := range change.keys {
		c.queue.Add(key)
	}
	return change, true
}

// seed gives a new exchange the whole set of our exports, then makes it
// the active one: until then gossip says nothing of our exports, and
// remote clusters keep what they knew.
func (c *Controller) seed(ctx context.Context, exch Exchange) error {
	var ses mcsv1beta1.ServiceExportList
	if err := c.Cache.List(ctx, &ses); err != nil {
		return fmt.Errorf("list ServiceExports: %w", err)
	}
	records := map[gossip.ExportKey]json.RawMessage{}
	for i := range ses.Items {
		key := client.ObjectKeyFromObject(&ses.Items[i])
		l, err := c.readLocal(ctx, key)
		if err != nil {
			return err
		}
		if l == nil || !l.exported() {
			continue
		}
		rec, err := json.Marshal(l.export)
		if err != nil {
			return fmt.Errorf("encode export of %s: %w", key, err)
		}
		records[exportKey(key)] = rec
	}
	// Refused records are reported by their own reconcile.
	var refused *gossip.RefusedExportsError
	if err := exch.SetExports(records); err != nil && !errors.As(err, &refused) {
		return fmt.Errorf("publish %d exports: %w", len(records), err)
	}
	c.mu.Lock()
	c.active, c.remote = exch, nil
	c.activatedAt, c.warm = time.Now(), false
	c.mu.Unlock()
	n := c.prefillDNS(ctx)
	c.Log.Info("Publishing this cluster's exports; DNS answers from the imports already here until each is reconciled",
		"exports", len(records), "imports", n)
	return nil
}

// prefillDNS gives DNS every import this cluster already has, from the
// cache, before any is reconciled: a gateway that just became active (a
// restart, a failover) answers at once for thousands of imports instead
// of as the queue reaches each. The reconciles that follow correct what
// changed meanwhile. It returns how many imports it gave.
func (c *Controller) prefillDNS(ctx context.Context) int {
	if c.DNS == nil {
		return 0
	}
	var sis mcsv1beta1.ServiceImportList
	if err := c.Cache.List(ctx, &sis); err != nil {
		c.Log.Error(err, "Cannot list ServiceImports for DNS; names come as each import is reconciled")
		return 0
	}
	n := 0
	for i := range sis.Items {
		if svc, err := c.dnsFromImport(ctx, &sis.Items[i]); err == nil && svc != nil {
			c.setDNS(client.ObjectKeyFromObject(&sis.Items[i]), svc)
			n++
		}
	}
	return n
}

// deactivate stops writing: the next exchange starts from scratch.
func (c *Controller) deactivate() {
	c.mu.Lock()
	c.active, c.remote = nil, nil
	c.mu.Unlock()
}

// enqueueEverything queues every service the controller may have to act
// on: exported here, imported here, derived, exported by a remote
// cluster, or known to DNS.
func (c *Controller) enqueueEverything(ctx context.Context) error {
	lists := []client.ObjectList{&mcsv1beta1.ServiceExportList{}, &mcsv1beta1.ServiceImportList{}}
	for _, l := range lists {
		if err := c.Cache.List(ctx, l); err != nil {
			return fmt.Errorf("list %T: %w", l, err)
		}
	}
	for _, se := range lists[0].(*mcsv1beta1.ServiceExportList).Items {
		c.queue.Add(client.ObjectKeyFromObject(&se))
	}
	for _, si := range lists[1].(*mcsv1beta1.ServiceImportList).Items {
		c.queue.Add(client.ObjectKeyFromObject(&si))
	}
	derived, err := c.derivedServices(ctx, "")
	if err != nil {
		return err
	}
	for key := range derived {
		c.queue.Add(key)
	}
	for _, key := range c.remoteKeys() {
		c.queue.Add(key)
	}
	c.dnsMu.Lock()
	for key := range c.dnsLast {
		c.queue.Add(key)
	}
	c.dnsMu.Unlock()
	return nil
}

// processNext reconciles one service from the queue; false once the
// queue is shut down. A failure retries that service alone, with
// exponential backoff; a conflict (an object changed under the write) is
// an expected race, requeued without an error.
func (c *Controller) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	c.mu.Lock()
	exch, standby := c.active, c.standbyDNS
	c.busy++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.busy--
		c.mu.Unlock()
	}()
	if exch == nil {
		// Queued again when an exchange is seeded; meanwhile a standby
		// gateway's DNS follows the imports.
		if standby {
			if err := c.feedDNS(ctx, key); err != nil {
				c.queue.AddRateLimited(key)
				return true
			}
		}
		c.queue.Forget(key)
		return true
	}
	start := time.Now()
	err := c.reconcile(ctx, exch, key)
	c.Metrics.reconcileDuration.Observe(time.Since(start).Seconds())
	c.mu.Lock()
	if err == nil {
		delete(c.failing, key)
	} else {
		c.failing[key] = true
	}
	c.mu.Unlock()
	switch {
	case err == nil:
		c.queue.Forget(key)
	case onlyRaces(err):
		c.Metrics.requeues.Inc()
		c.Log.V(1).Info("A write raced another; reconciling the service again", "service", key.String(), "error", err.Error())
		c.queue.AddRateLimited(key)
	case ctx.Err() != nil:
	default:
		c.Metrics.reconcileErrors.Inc()
		c.Log.Error(err, "Cannot reconcile a service; what was written stays, and it is retried with backoff", "service", key.String(),
			"retries", c.queue.NumRequeues(key))
		c.queue.AddRateLimited(key)
	}
	return true
}

// AddIndexes registers the cache indexes the controller lists by. Call it
// before the cache starts.
func AddIndexes(ctx context.Context, indexer client.FieldIndexer) error {
	byLabel := func(key string, only func(labels map[string]string) bool) client.IndexerFunc {
		return func(o client.Object) []string {
			labels := o.GetLabels()
			if v, ok := labels[key]; ok && only(labels) {
				return []string{v}
			}
			return nil
		}
	}
	all := func(map[string]string) bool { return true }
	imported := func(labels map[string]string) bool { return labels[discoveryv1.LabelManagedBy] == mcs.ManagedBy }
	if err := indexer.IndexField(ctx, &discoveryv1.EndpointSlice{}, indexSlicesOfService, byLabel(discoveryv1.LabelServiceName, all)); err != nil {
		return fmt.Errorf("index EndpointSlices by Service: %w", err)
	}
	if err := indexer.IndexField(ctx, &discoveryv1.EndpointSlice{}, indexImportedSlices, byLabel(mcsv1beta1.LabelServiceName, imported)); err != nil {
		return fmt.Errorf("index imported EndpointSlices by service: %w", err)
	}
	return nil
}

// Cache indexes of EndpointSlices by the Service they belong to: a cache
// List that matches labels scans every object of the namespace.
const (
	// indexSlicesOfService: a Service's own slices, by its name
	// (kubernetes.io/service-name).
	indexSlicesOfService = "wirespan.io/slices-of-service"
	// indexImportedSlices: the slices Wirespan imported for a service,
	// by the service's name (multicluster.kubernetes.io/service-name).
	indexImportedSlices = "wirespan.io/imported-slices"
)

// serviceKey is the namespace and name of a Service.
type serviceKey = types.NamespacedName

func exportKey(key serviceKey) gossip.ExportKey {
	return gossip.ExportKey{Namespace: key.Namespace, Name: key.Name}
}

// activeExchange returns the exchange in use, nil if none.
func (c *Controller) activeExchange() Exchange {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.active
}
