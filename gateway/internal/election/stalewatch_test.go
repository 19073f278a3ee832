package election

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/wirespan/wirespan/internal/poll"
)

// countingReader counts the reads a node makes of the Lease.
type countingReader struct {
	client.Reader
	gets atomic.Int32
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.gets.Add(1)
	return c.Reader.Get(ctx, key, obj, opts...)
}

// A node agent whose watch goes quiet (client-go re-establishes a watch
// with a backoff of up to 30 s after a long API server outage) reads the
// Lease itself, finds the holder that took over meanwhile, and says so;
// once the watch shows the Lease again, it stops reading.
func TestNodeAgentReadsTheLeaseWhenItsWatchGoesQuiet(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "election-"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), ns) })
	key := types.NamespacedName{Namespace: ns.Name, Name: "wirespan-gateway"}
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("n0"), RenewTime: &metav1.MicroTime{Time: time.Now()}}}
	if err := k8s.Create(ctx, lease); err != nil {
		t.Fatal(err)
	}

	reads := &countingReader{Reader: k8s}
	e := New(Config{Lease: key, Identity: "agent", Duration: testDuration, RenewPeriod: testRenew,
		StaleWatch: 500 * time.Millisecond, Reader: reads, Writer: k8s, Log: testr.New(t)})
	e.SetCandidate(false)
	done := make(chan struct{})
	go func() { defer close(done); _ = e.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e.Observe(lease)
	if got := e.Active(); got != "n0" {
		t.Fatalf("active %q after the watch showed n0", got)
	}

	// n1 takes over; the watch shows nothing of it.
	drain(e.Changed())
	lease.Spec.HolderIdentity = ptr.To("n1")
	lease.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
	if err := k8s.Update(ctx, lease); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "the node agent finds n1 by reading", func() error {
		if got := e.Active(); got != "n1" {
			return fmt.Errorf("active %q", got)
		}
		return nil
	})
	select {
	case <-e.Changed():
	case <-time.After(time.Second):
		t.Error("the holder found by reading was not announced on Changed")
	}

	// The watch is back, showing every renewal: no more reads.
	for range 5 {
		e.Observe(lease)
		time.Sleep(testRenew)
	}
	before := reads.gets.Load()
	for range 10 {
		e.Observe(lease)
		time.Sleep(testRenew)
	}
	if n := reads.gets.Load() - before; n != 0 {
		t.Errorf("%d reads of the Lease while the watch showed it every %v", n, testRenew)
	}
	if got := e.Active(); got != "n1" {
		t.Errorf("active %q, want n1 from the watch", got)
	}
}

func drain(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}
