package clusterpeer

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/internal/cidr"
)

// pollInterval bounds the resolution of both figures.
const pollInterval = 2 * time.Millisecond

// BenchmarkNodeToStatus measures how long a new Node's podCIDR takes to show
// in the self ClusterPeer's status (target: "within a second or two").
func BenchmarkNodeToStatus(b *testing.B) {
	ctx := context.Background()
	self := &v1.ClusterPeer{ObjectMeta: metav1.ObjectMeta{Name: clusterID}}
	if err := k8s.Create(ctx, self); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = k8s.Delete(ctx, self) }()
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		name, podCIDR := fmt.Sprintf("bench-%d", i), fmt.Sprintf("10.%d.%d.0/24", 100+i/256, i%256)
		start := time.Now()
		createBenchNode(b, name, podCIDR)
		waitFor(b, func() bool {
			p := &v1.ClusterPeer{}
			return k8s.Get(ctx, client.ObjectKey{Name: clusterID}, p) == nil && slices.ContainsFunc(p.Status.PodCIDRs, func(c string) bool {
				return c == podCIDR || covers(c, podCIDR)
			})
		})
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/change")
}

// BenchmarkReferenceAPIRoundTrip is the floor under BenchmarkNodeToStatus on
// the same machine in the same run: create a Node and read it back.
func BenchmarkReferenceAPIRoundTrip(b *testing.B) {
	ctx := context.Background()
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("ref-%d", i)
		start := time.Now()
		createBenchNode(b, name, "")
		waitFor(b, func() bool { return k8s.Get(ctx, client.ObjectKey{Name: name}, &corev1.Node{}) == nil })
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/change")
}

func createBenchNode(b *testing.B, name, podCIDR string) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if podCIDR != "" {
		n.Spec.PodCIDRs = []string{podCIDR}
	}
	if err := k8s.Create(context.Background(), n); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = k8s.Delete(context.Background(), n) })
}

func waitFor(b *testing.B, done func() bool) {
	deadline := time.Now().Add(10 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			b.Fatal("timed out")
		}
		time.Sleep(pollInterval)
	}
}

// covers reports whether the summarised range c holds the node range n.
func covers(c, n string) bool {
	pc, errC := netip.ParsePrefix(c)
	pn, errN := netip.ParsePrefix(n)
	return errC == nil && errN == nil && cidr.Contains(pc, pn)
}
