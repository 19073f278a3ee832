package election

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/internal/poll"
	"github.com/wirespan/wirespan/internal/testenv"
)

var (
	k8s client.Client
	cfg *rest.Config
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	os.Exit(testenv.Main(m, testenv.Options{}, func(e *testenv.Env) error {
		k8s, cfg = e.Client, e.Config
		return nil
	}))
}

// watchLease feeds the Lease's watch events to the electors, through an
// informer as the gateway does.
func watchLease(t *testing.T, lease types.NamespacedName, es ...*Elector) {
	t.Helper()
	c, err := cache.New(cfg, cache.Options{Scheme: k8s.Scheme(), DefaultNamespaces: map[string]cache.Config{lease.Namespace: {}}})
	if err != nil {
		t.Fatal(err)
	}
	inf, err := c.GetInformer(context.Background(), &coordinationv1.Lease{})
	if err != nil {
		t.Fatal(err)
	}
	observe := func(obj any) {
		if l, ok := obj.(*coordinationv1.Lease); ok && l.Name == lease.Name {
			for _, e := range es {
				e.Observe(l)
			}
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: observe, UpdateFunc: func(_, obj any) { observe(obj) },
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// Timings short enough for a quick test, long enough for a loaded machine.
const (
	testDuration = time.Second
	testRenew    = 150 * time.Millisecond
)

// flaky is the API server as one candidate sees it: down makes every call
// fail, as when its node is cut off or its process is frozen.
type flaky struct {
	client.Client
	down atomic.Bool
	// writesWhileDown counts the writes tried while down.
	writesWhileDown atomic.Int32
}

var errDown = errors.New("connection refused (test)")

func (f *flaky) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if f.down.Load() {
		return errDown
	}
	return f.Client.Get(ctx, key, obj, opts...)
}

func (f *flaky) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if f.down.Load() {
		f.writesWhileDown.Add(1)
		return errDown
	}
	return f.Client.Create(ctx, obj, opts...)
}

func (f *flaky) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	if f.down.Load() {
		f.writesWhileDown.Add(1)
		return errDown
	}
	return f.Client.Update(ctx, obj, opts...)
}

type candidate struct {
	name   string
	e      *Elector
	api    *flaky
	cancel context.CancelFunc
	done   chan struct{}
}

// startPair starts two candidates for a new Lease in a new namespace.
func startPair(t *testing.T, afterOutage time.Duration) (types.NamespacedName, *candidate, *candidate) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "election-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), ns) })
	lease := types.NamespacedName{Namespace: ns.Name, Name: "wirespan-gateway"}
	var cs []*candidate
	for _, name := range []string{"n0", "n1"} {
		api := &flaky{Client: k8s}
		e := New(Config{Lease: lease, Identity: name, Duration: testDuration, RenewPeriod: testRenew, AfterOutage: afterOutage,
			Reader: api, Writer: api, Log: testr.New(t).WithName(name), Version: versionOf(name)})
		e.SetCandidate(true)
		ctx, cancel := context.WithCancel(context.Background())
		c := &candidate{name: name, e: e, api: api, cancel: cancel, done: make(chan struct{})}
		go func() { defer close(c.done); _ = e.Start(ctx) }()
		t.Cleanup(func() { c.api.down.Store(false); cancel(); <-c.done })
		cs = append(cs, c)
	}
	cs[0].e.SetSuccessors([]string{cs[1].name})
	cs[1].e.SetSuccessors([]string{cs[0].name})
	watchLease(t, lease, cs[0].e, cs[1].e)
	return lease, cs[0], cs[1]
}

// active waits until exactly one candidate is active and both agree on it.
func active(t *testing.T, a, b *candidate) (leader, standby *candidate) {
	t.Helper()
	poll.Until(t, 10*time.Second, "one active gateway both candidates agree on", func() error {
		x, y := a.e.Active(), b.e.Active()
		switch {
		case x == "" || x != y:
			return errors.New(a.name + " sees " + x + ", " + b.name + " sees " + y)
		case x == a.name:
			leader, standby = a, b
		default:
			leader, standby = b, a
		}
		return nil
	})
	return leader, standby
}

// versionOf is the version each test candidate runs: a different one per
// node, as in a rolling upgrade, so the Lease shows whose it carries.
func versionOf(node string) string { return "v0.0.0-" + node }

// leaseVersion is the holder and the version annotation of the Lease.
func leaseVersion(t *testing.T, lease types.NamespacedName) (holder, version string) {
	t.Helper()
	var l coordinationv1.Lease
	if err := k8s.Get(context.Background(), lease, &l); err != nil {
		t.Fatal(err)
	}
	return ptr.Deref(l.Spec.HolderIdentity, ""), l.Annotations[wirespanv1alpha1.AnnotationVersion]
}

// TestLeaseCarriesTheHoldersVersion: the active gateway's version is on
// the Lease for as long as it holds it, and follows the role to the next
// holder, with no version of the old holder left under the new one's name.
func TestLeaseCarriesTheHoldersVersion(t *testing.T) {
	lease, a, b := startPair(t, 0)
	leader, standby := active(t, a, b)
	if h, v := leaseVersion(t, lease); h != leader.name || v != versionOf(leader.name) {
		t.Fatalf("Lease holder %q version %q, want %s and %s", h, v, leader.name, versionOf(leader.name))
	}
	// Renewals keep it, even when something else removed it meanwhile
	// (a Lease taken over from a release that wrote none).
	var l coordinationv1.Lease
	if err := k8s.Get(context.Background(), lease, &l); err != nil {
		t.Fatal(err)
	}
	delete(l.Annotations, wirespanv1alpha1.AnnotationVersion)
	if err := k8s.Update(context.Background(), &l); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "a renewal writes the version back", func() error {
		if h, v := leaseVersion(t, lease); h != leader.name || v != versionOf(leader.name) {
			return fmt.Errorf("holder %q version %q", h, v)
		}
		return nil
	})
	// A handover: the successor's version comes with its name.
	leader.cancel()
	takeover(t, standby, time.Now(), testDuration)
	poll.Until(t, 5*time.Second, "the successor's version on the Lease", func() error {
		h, v := leaseVersion(t, lease)
		switch {
		case h == standby.name && v == versionOf(standby.name):
			return nil
		case h == standby.name && v != "":
			t.Fatalf("Lease names %s with version %q, another node's", h, v)
		}
		return fmt.Errorf("holder %q version %q", h, v)
	})
}

func holder(t *testing.T, lease types.NamespacedName) string {
	t.Helper()
	var l coordinationv1.Lease
	if err := k8s.Get(context.Background(), lease, &l); err != nil {
		t.Fatal(err)
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// takeover measures how long after the holder went away the standby saw
// itself active.
func takeover(t *testing.T, standby *candidate, start time.Time, budget time.Duration) time.Duration {
	t.Helper()
	poll.Until(t, 10*time.Second, standby.name+" active", func() error {
		if standby.e.Active() != standby.name {
			return errors.New("not yet")
		}
		return nil
	})
	took := time.Since(start)
	t.Logf("%s active %v after the holder went", standby.name, took.Round(time.Millisecond))
	if took > budget {
		t.Errorf("takeover took %v, budget %v", took, budget)
	}
	return took
}

func TestOneActiveAndAgreement(t *testing.T) {
	lease, a, b := startPair(t, 0)
	leader, _ := active(t, a, b)
	if got := holder(t, lease); got != leader.name {
		t.Fatalf("Lease holder %q, candidates agree on %q", got, leader.name)
	}
	// Renewals go on: the standby never takes over a live holder.
	time.Sleep(3 * testDuration)
	if l2, _ := active(t, a, b); l2 != leader {
		t.Fatalf("the role moved from %s to %s with both alive", leader.name, l2.name)
	}
}

func TestHolderDiesStandbyTakesOverAfterDuration(t *testing.T) {
	lease, a, b := startPair(t, 0)
	leader, standby := active(t, a, b)
	// The holder stops talking to the API server, as if killed or cut off.
	leader.api.down.Store(true)
	start := time.Now()
	took := takeover(t, standby, start, testDuration+5*testRenew+2*time.Second)
	if took < testDuration-testRenew {
		t.Errorf("took the role after %v: the Lease had not expired (Duration %v)", took, testDuration)
	}
	if got := holder(t, lease); got != standby.name {
		t.Fatalf("Lease holder %q, want %s", got, standby.name)
	}
	// The old holder keeps the role while it cannot reach the API server
	// (traffic goes on through a control-plane outage)...
	if got := leader.e.Active(); got != leader.name {
		t.Fatalf("cut-off holder sees %q active, want itself", got)
	}
	// ...and steps down at its first renewal once it can.
	leader.api.down.Store(false)
	follows(t, lease, leader, standby)
}

// follows waits until old sees now active, and checks the Lease names now.
func follows(t *testing.T, lease types.NamespacedName, old, now *candidate) {
	t.Helper()
	poll.Until(t, 5*time.Second, old.name+" follows "+now.name, func() error {
		if got := old.e.Active(); got != now.name {
			return errors.New("it sees " + got)
		}
		return nil
	})
	if got := holder(t, lease); got != now.name {
		t.Fatalf("Lease holder %q, want %s", got, now.name)
	}
}

func TestPlannedHandoverIsImmediate(t *testing.T) {
	_, a, b := startPair(t, 0)
	leader, standby := active(t, a, b)
	start := time.Now()
	leader.cancel() // SIGTERM: release, and carry traffic until the successor holds
	// Until the successor holds the Lease, the old holder still calls
	// itself active, so some gateway always is.
	var gap sync.Once
	stop := make(chan struct{})
	watched := make(chan struct{})
	defer func() { close(stop); <-watched }()
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if leader.e.Active() == "" && standby.e.Active() == "" {
				gap.Do(func() { t.Errorf("no gateway active during the handover") })
			}
			time.Sleep(time.Millisecond)
		}
	}()
	takeover(t, standby, start, testDuration)
	select {
	case <-leader.done:
	case <-time.After(testDuration + time.Second):
		t.Fatal("the old holder's Start did not return after the handover")
	}
}

func TestLabelRemovedHandsOver(t *testing.T) {
	lease, a, b := startPair(t, 0)
	leader, standby := active(t, a, b)
	start := time.Now()
	leader.e.SetCandidate(false)
	takeover(t, standby, start, testDuration)
	follows(t, lease, leader, standby)
}

func TestAPIServerOutageMovesNothing(t *testing.T) {
	lease, a, b := startPair(t, 0)
	leader, standby := active(t, a, b)
	a.api.down.Store(true)
	b.api.down.Store(true)
	time.Sleep(3 * testDuration)
	for _, c := range []*candidate{a, b} {
		if got := c.e.Active(); got != leader.name {
			t.Fatalf("during the outage %s sees %q active, want %s", c.name, got, leader.name)
		}
	}
	if n := standby.api.writesWhileDown.Load(); n != 0 {
		t.Errorf("the standby tried %d writes of the Lease while it could not read it", n)
	}
	// The API server answers the standby first, and the holder only a
	// while later (a restarting API server's authorizer refuses at first):
	// the standby's clock restarted when it could read again, so the
	// holder renews first and nothing moves.
	standby.api.down.Store(false)
	time.Sleep(testDuration / 2)
	leader.api.down.Store(false)
	deadline := time.Now().Add(3 * testDuration)
	for time.Now().Before(deadline) {
		for _, c := range []*candidate{a, b} {
			if got := c.e.Active(); got != leader.name {
				t.Fatalf("after the outage %s sees %q active, want %s", c.name, got, leader.name)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := holder(t, lease); got != leader.name {
		t.Fatalf("Lease holder %q after the outage, want %s", got, leader.name)
	}
}

// A holder that needs longer than Duration to renew after an outage (a
// gateway restarted during it builds its caches first) keeps the role:
// the standby waits AfterOutage on top.
func TestHolderSlowAfterOutageKeepsTheRole(t *testing.T) {
	lease, a, b := startPair(t, 3*testDuration)
	leader, standby := active(t, a, b)
	a.api.down.Store(true)
	b.api.down.Store(true)
	time.Sleep(2 * testDuration)
	standby.api.down.Store(false)
	time.Sleep(2 * testDuration) // longer than Duration, shorter than Duration+AfterOutage
	leader.api.down.Store(false)
	deadline := time.Now().Add(3 * testDuration)
	for time.Now().Before(deadline) {
		if got := standby.e.Active(); got != leader.name {
			t.Fatalf("after the outage the standby sees %q active, want %s", got, leader.name)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := holder(t, lease); got != leader.name {
		t.Fatalf("Lease holder %q, want %s", got, leader.name)
	}
}

// One gateway, restarted: it keeps the Lease on the way out (there is
// nobody to hand over to) and takes it straight back, without giving it up
// before it knows it may keep it; the role never leaves it.
func TestLoneGatewayRestartKeepsTheLease(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "election-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), ns) })
	lease := types.NamespacedName{Namespace: ns.Name, Name: "wirespan-gateway"}
	start := func() (*Elector, context.CancelFunc, chan struct{}) {
		e := New(Config{Lease: lease, Identity: "n0", Duration: testDuration, RenewPeriod: testRenew, Reader: k8s, Writer: k8s, Log: testr.New(t)})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = e.Start(ctx) }()
		return e, cancel, done
	}
	e, cancel, done := start()
	e.SetCandidate(true)
	poll.Until(t, 10*time.Second, "n0 active", func() error {
		if e.Active() != "n0" {
			return errors.New("not yet")
		}
		return nil
	})
	var before coordinationv1.Lease
	if err := k8s.Get(context.Background(), lease, &before); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	if got := holder(t, lease); got != "n0" {
		t.Fatalf("after a stop with no successor the Lease names %q, want n0 still", got)
	}
	// The new process reads the Lease before the syncer says whether it
	// may stand: it must see itself active and write nothing until then.
	e, cancel, done = start()
	defer func() { cancel(); <-done }()
	poll.Until(t, 5*time.Second, "the restarted gateway reads the Lease", func() error {
		if !e.Known() {
			return errors.New("not yet")
		}
		return nil
	})
	time.Sleep(3 * testRenew)
	if got := e.Active(); got != "n0" {
		t.Fatalf("restarted, before its candidacy is known, n0 sees %q active", got)
	}
	if got := holder(t, lease); got != "n0" {
		t.Fatalf("restarted, before its candidacy is known, the Lease names %q", got)
	}
	e.SetCandidate(true)
	poll.Until(t, 5*time.Second, "n0 renews again", func() error {
		var l coordinationv1.Lease
		if err := k8s.Get(context.Background(), lease, &l); err != nil {
			return err
		}
		if l.ResourceVersion == before.ResourceVersion || *l.Spec.LeaseTransitions != *before.Spec.LeaseTransitions {
			return fmt.Errorf("version %s, transitions %d", l.ResourceVersion, *l.Spec.LeaseTransitions)
		}
		return nil
	})
}
