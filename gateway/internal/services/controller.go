package services

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/wirespan/wirespan/gateway/internal/dns"
	"github.com/wirespan/wirespan/gateway/internal/gossip"
	"github.com/wirespan/wirespan/internal/mcs"
)

// Exchange carries exports between clusters: gossip.
type Exchange interface {
	SetExports(map[gossip.ExportKey]json.RawMessage) error
	RemoteExports() map[string]gossip.ClusterExports
}

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
	// Resync is how often everything is recomputed without a change.
	Resync time.Duration
	// Workers bounds concurrent API writes (default 32). Imports are
	// written one Service at a time, each a few sequential writes, so
	// the write rate is Workers over the API server's latency, which is
	// hundreds of milliseconds on a busy API server; the client's QPS
	// limit (--kube-api-qps) caps it either way.
	Workers int
	Metrics *Metrics

	mu   sync.Mutex
	exch Exchange
	wake chan struct{}
	// decoded caches remote records decoded from JSON, by cluster and
	// Service, with the version they were decoded from.
	decoded map[remoteKey]decodedExport
	// dnsLast is what DNS was last given, by service; dnsMu guards it,
	// since imports are fed to DNS as they are written, concurrently.
	dnsMu   sync.Mutex
	dnsLast map[serviceKey]dns.Service
	// present are the namespaces that exist here, as of the last sync.
	present map[string]bool
	// families are this cluster's Service IP families (SetServiceFamilies);
	// empty while unknown.
	families []corev1.IPFamily
	// createdMu guards created: the objects created since the last sync
	// began, which the next sync waits to see in the cache.
	createdMu sync.Mutex
	created   []client.Object
}

type remoteKey struct {
	cluster string
	key     gossip.ExportKey
}

type decodedExport struct {
	version uint64
	export  *mcs.Export // nil: the record did not decode
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

// SetServiceFamilies tells the controller which IP families this
// cluster's Services can have (from its Service ranges), so that imports
// get clusterset IPs only in those; it syncs again if they changed.
func (c *Controller) SetServiceFamilies(families []corev1.IPFamily) {
	c.mu.Lock()
	changed := !slices.Equal(c.families, families)
	c.families = slices.Clone(families)
	c.mu.Unlock()
	if changed {
		c.Wake()
	}
}

func (c *Controller) serviceFamilies() []corev1.IPFamily {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.families
}

func (c *Controller) exchange() Exchange {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exch
}

// Wake asks for a sync, without blocking.
func (c *Controller) Wake() {
	c.init()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Controller) init() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wake == nil {
		c.wake = make(chan struct{}, 1)
		c.decoded = map[remoteKey]decodedExport{}
	}
}

// NeedLeaderElection is false: the active gateway, not a lease, decides.
func (c *Controller) NeedLeaderElection() bool { return false }

// Cache indexes of EndpointSlices by the Service they belong to. A cache
// List that matches labels scans every object of the namespace, and a
// sync lists the slices of each local export and of each import: with
// 10,000 Services in a namespace, a sync would scan 20,000 slices 13,000
// times.
const (
	// indexSlicesOfService: a Service's own slices, by its name
	// (kubernetes.io/service-name).
	indexSlicesOfService = "wirespan.io/slices-of-service"
	// indexImportedSlices: the slices Wirespan imported for a service,
	// by the service's name (multicluster.kubernetes.io/service-name).
	indexImportedSlices = "wirespan.io/imported-slices"
)

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

// watched are the kinds whose changes trigger a sync.
func watched() []client.Object {
	return []client.Object{
		&mcsv1beta1.ServiceExport{}, &mcsv1beta1.ServiceImport{}, &corev1.Service{},
		&discoveryv1.EndpointSlice{}, &corev1.Namespace{},
	}
}

// Start runs the controller until ctx is done.
func (c *Controller) Start(ctx context.Context) error {
	c.init()
	if c.Workers <= 0 {
		c.Workers = 32
	}
	if c.Resync <= 0 {
		c.Resync = 30 * time.Second
	}
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
	for _, obj := range watched() {
		inf, err := c.Cache.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("watch %T: %w", obj, err)
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { c.Wake() },
			UpdateFunc: func(any, any) { c.Wake() },
			DeleteFunc: func(any) { c.Wake() },
		}); err != nil {
			return err
		}
	}
	if !c.Cache.WaitForCacheSync(ctx) {
		return errors.New("caches did not sync")
	}
	tick := time.NewTicker(c.Resync)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.wake:
		case <-tick.C:
		}
		exch := c.exchange()
		if exch == nil {
			continue
		}
		start := time.Now()
		c.awaitCreated(ctx)
		err := c.sync(ctx, exch)
		c.Metrics.syncDuration.Observe(time.Since(start).Seconds())
		if err != nil {
			c.Metrics.syncErrors.Inc()
			c.Log.Error(err, "MCS sync failed; what was written stays, the next sync retries")
			// Retry soon, not only at the next resync.
			time.AfterFunc(time.Second, c.Wake)
		}
	}
}

// create creates obj and records it for awaitCreated.
func (c *Controller) create(ctx context.Context, obj client.Object) error {
	if err := c.Client.Create(ctx, obj); err != nil {
		return err
	}
	c.createdMu.Lock()
	c.created = append(c.created, obj)
	c.createdMu.Unlock()
	return nil
}

// createdCacheWait bounds how long a sync waits for the cache to show
// the objects the previous one created.
const createdCacheWait = 2 * time.Second

// awaitCreated waits, up to createdCacheWait, until the cache holds every
// object created since the last call. The events of a sync's own writes
// wake the next sync; begun before the cache has the last of them, it
// would find that object missing and create it again (a request the API
// server refuses as AlreadyExists, or, for a ServiceImport, a failed sync).
func (c *Controller) awaitCreated(ctx context.Context) {
	c.createdMu.Lock()
	pending := c.created
	c.created = nil
	c.createdMu.Unlock()
	deadline := time.Now().Add(createdCacheWait)
	for _, obj := range pending {
		into := obj.DeepCopyObject().(client.Object)
		for c.Cache.Get(ctx, client.ObjectKeyFromObject(obj), into) != nil && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
}

// serviceKey is the namespace and name of a Service.
type serviceKey = types.NamespacedName
