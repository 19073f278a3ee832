package services

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/wirespan/wirespan/gateway/internal/dns"
	"github.com/wirespan/wirespan/gateway/internal/gossip"
	"github.com/wirespan/wirespan/internal/poll"
	"github.com/wirespan/wirespan/internal/testenv"
)

// localCluster is the ID of the cluster the controller under test runs in.
const localCluster = "east"

var (
	// k8s reads and writes the API server directly, not through a cache.
	k8s client.WithWatch
	// sharedCache is the manager's cache, which every test's controller
	// reads from, as in the gateway.
	sharedCache cache.Cache
)

// TestMain runs one real control plane and one manager cache for the
// package. Each test starts its own Controller, with its own Exchange and
// DNS store, in namespaces of its own, and removes them.
func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	os.Exit(testenv.Main(m, testenv.Options{}, startManager))
}

func startManager(e *testenv.Env) error {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := mcsv1beta1.Install(scheme); err != nil {
		return err
	}
	var err error
	if k8s, err = client.NewWithWatch(e.Config, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(e.Config, ctrl.Options{
		Scheme: scheme,
		// As the gateway's cache: without managed fields.
		Cache:                  cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return err
	}
	sharedCache = mgr.GetCache()
	ctx, cancel := context.WithCancel(context.Background())
	if err := AddIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		cancel()
		return err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	e.Cleanup(func() { cancel(); <-done })
	if !sharedCache.WaitForCacheSync(ctx) {
		return fmt.Errorf("manager cache did not sync")
	}
	return nil
}

// harness is one test's controller, its exchange and DNS store, and its
// namespace.
type harness struct {
	t     *testing.T
	ns    string
	exch  *fakeExchange
	ctrl  *Controller
	store *dns.Store
	// namespaces are those the test created, deleted when it ends.
	namespaces []string

	mu sync.Mutex
	// writes are the controller's API writes, as "verb kind ns/name".
	writes []string
	// held are objects by name whose creation waits until the channel is
	// closed (hold).
	held map[string]chan struct{}
}

// hold makes the controller's creation of any object named name wait
// until the returned release is called (at the latest when the test ends).
func (h *harness) hold(name string) (release func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held == nil {
		h.held = map[string]chan struct{}{}
	}
	ch := make(chan struct{})
	h.held[name] = ch
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	h.t.Cleanup(release)
	return release
}

func (h *harness) waitIfHeld(name string) {
	h.mu.Lock()
	ch := h.held[name]
	h.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

var nsCounter atomic.Int32

// start creates a namespace and runs a Controller until the test ends;
// then it stops the controller and deletes what the test created.
func start(t *testing.T, configure ...func(*Controller)) *harness {
	t.Helper()
	h := &harness{t: t, exch: &fakeExchange{remote: map[string]gossip.ClusterExports{}}, store: dns.NewStore()}
	// Cleanups run last registered first: the controller stops, then
	// the namespaces are emptied, so that nothing writes meanwhile.
	t.Cleanup(func() {
		for _, ns := range h.namespaces {
			deleteNamespace(t, ns)
		}
	})
	h.ns = h.namespace("")
	h.ctrl = &Controller{
		ClusterID: localCluster, Cache: sharedCache, Client: h.recordingClient(),
		Log: testr.New(t), DNS: h.store, Resync: time.Hour, Metrics: NewMetrics(nil),
		// A failure a test causes and then removes is retried within a second.
		MaxRetryDelay: time.Second,
		// Tests that take a cluster away across a re-attach see it go
		// after this; TestTakeoverKeepsUnheardClusters sets it longer.
		Warmup: time.Second,
	}
	for _, c := range configure {
		c(h.ctrl)
	}
	h.ctrl.SetExchange(h.exch)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := h.ctrl.Start(ctx); err != nil {
			t.Errorf("controller: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

// recordingClient is a client of the API server that records the writes
// it makes in h.writes. (An Update that changes nothing does not change
// an object's resourceVersion, so only the client sees such a write.)
func (h *harness) recordingClient() client.Client {
	record := func(verb string, obj client.Object) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.writes = append(h.writes, fmt.Sprintf("%s %T %s/%s", verb, obj, obj.GetNamespace(), obj.GetName()))
	}
	return interceptor.NewClient(k8s, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			h.waitIfHeld(obj.GetName())
			record("create", obj)
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			record("update", obj)
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			record("patch", obj)
			return c.Patch(ctx, obj, patch, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			record("delete", obj)
			return c.Delete(ctx, obj, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			record("update "+sub, obj)
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			record("patch "+sub, obj)
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	})
}

// takeWrites returns the writes recorded since the last call.
func (h *harness) takeWrites() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := h.writes
	h.writes = nil
	return w
}

var nonLabel = regexp.MustCompile(`[^a-z0-9]+`)

// namespaceName returns a new namespace name derived from the test's name
// and suffix, without creating it.
func (h *harness) namespaceName(suffix string) string {
	base := strings.Trim(nonLabel.ReplaceAllString(strings.ToLower(h.t.Name()), "-"), "-")
	if len(base) > 40 {
		base = base[len(base)-40:]
	}
	name := fmt.Sprintf("t%d-%s", nsCounter.Add(1), strings.Trim(base, "-"))
	if suffix != "" {
		name += "-" + suffix
	}
	return name
}

// namespace creates a namespace (named by namespaceName(suffix)) and
// deletes it, with everything the test put in it, when the test ends.
func (h *harness) namespace(suffix string) string {
	h.t.Helper()
	name := h.namespaceName(suffix)
	h.createNamespace(name)
	return name
}

// createNamespace creates the namespace name and registers its cleanup.
func (h *harness) createNamespace(name string) {
	h.t.Helper()
	h.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	h.namespaces = append(h.namespaces, name)
}

// deleteNamespace deletes every object the tests create in namespace ns,
// then ns. envtest runs no namespace or garbage collector, so the
// objects are deleted one by one and the namespace stays Terminating.
func deleteNamespace(t *testing.T, ns string) {
	ctx := context.Background()
	lists := []client.ObjectList{
		&mcsv1beta1.ServiceExportList{}, &mcsv1beta1.ServiceImportList{},
		&corev1.ServiceList{}, &discoveryv1.EndpointSliceList{},
	}
	for _, l := range lists {
		if err := k8s.List(ctx, l, client.InNamespace(ns)); err != nil {
			t.Errorf("cleanup: list %T in %s: %v", l, ns, err)
			continue
		}
		objs, err := metaItems(l)
		if err != nil {
			t.Errorf("cleanup: %v", err)
			continue
		}
		for _, o := range objs {
			if err := k8s.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("cleanup: delete %T %s/%s: %v", o, ns, o.GetName(), err)
			}
		}
	}
	ns0 := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
	if err := k8s.Delete(ctx, ns0); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("cleanup: delete namespace %s: %v", ns, err)
	}
}

// metaItems returns the items of a list as client.Objects.
func metaItems(l client.ObjectList) ([]client.Object, error) {
	var out []client.Object
	switch l := l.(type) {
	case *mcsv1beta1.ServiceExportList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *mcsv1beta1.ServiceImportList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *corev1.ServiceList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *discoveryv1.EndpointSliceList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	default:
		return nil, fmt.Errorf("unexpected list %T", l)
	}
	return out, nil
}

// waitFor bounds every wait for the controller.
const waitFor = 10 * time.Second

// eventually waits until check returns nil, at most waitFor.
func (h *harness) eventually(what string, check func() error) {
	h.t.Helper()
	poll.Until(h.t, waitFor, what, check)
}

// create creates obj, failing the test on error.
func (h *harness) create(obj client.Object) {
	h.t.Helper()
	if err := k8s.Create(context.Background(), obj); err != nil {
		h.t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// get reads ns/name from the API server into obj.
func get(ns, name string, obj client.Object) error {
	return k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj)
}
