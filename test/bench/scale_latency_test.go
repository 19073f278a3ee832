package bench

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// What one more change costs once a clusterset holds thousands of
// imports (the MCS controller works per service, so neither should grow
// with what exists): measured by BenchmarkScale after convergence.

// latencySamples is how many changes of each kind are timed.
const latencySamples = 20

// idleCPU returns the CPU seconds each kind of lab process used over d,
// while nothing changes.
func idleCPU(procs []labProcess, d time.Duration) map[string]float64 {
	w := watchProcesses(procs)
	time.Sleep(d)
	_, cpu := w.stop()
	return cpu
}

// exportToDNS times n new exports from one cluster, each from the
// ServiceExport's creation until the other cluster's DNS, from a pod,
// answers its clusterset name. The Services exist before the clock
// starts.
func exportToDNS(ctx context.Context, cs *kubernetes.Clientset, dyn dynamic.Interface, conn *dns.Conn, n int) ([]time.Duration, error) {
	var out []time.Duration
	for i := range n {
		name := fmt.Sprintf("late-%02d", i)
		if _, err := cs.CoreV1().Services(scaleNamespace).Create(ctx, scaleService(name), metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("create Service %s: %w", name, err)
		}
		se := serviceExport(name)
		se.SetNamespace(scaleNamespace)
		start := time.Now()
		if _, err := dyn.Resource(serviceExports).Namespace(scaleNamespace).Create(ctx, se, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("create ServiceExport %s: %w", name, err)
		}
		if err := waitAnswer(conn, name+"."+scaleNamespace+".svc.clusterset.local.", 30*time.Second); err != nil {
			return nil, err
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// serviceToDNS is the reference of exportToDNS: n plain Services created
// in the cluster whose DNS answers, each timed until CoreDNS answers its
// cluster.local name (Kubernetes' own watch-to-DNS path, at the same
// scale).
func serviceToDNS(ctx context.Context, cs *kubernetes.Clientset, conn *dns.Conn, n int) ([]time.Duration, error) {
	var out []time.Duration
	for i := range n {
		name := fmt.Sprintf("ref-%02d", i)
		start := time.Now()
		if _, err := cs.CoreV1().Services(scaleNamespace).Create(ctx, scaleService(name), metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("create Service %s: %w", name, err)
		}
		if err := waitAnswer(conn, name+"."+scaleNamespace+".svc.cluster.local.", 30*time.Second); err != nil {
			return nil, err
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// endpointToImport times n endpoint changes of Service svc in the
// exporting cluster (an endpoint added to its EndpointSlice), each until
// the importing cluster's imported EndpointSlice shows it. The
// reference, from the same changes: until a watch in the exporting
// cluster itself shows the update (the API server's own write-to-watch
// time).
func endpointToImport(ctx context.Context, from, to *kubernetes.Clientset, svc string, pods netip.Prefix, n int) (imported, ref []time.Duration, err error) {
	slices := from.DiscoveryV1().EndpointSlices(scaleNamespace)
	own, err := slices.Watch(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	if err != nil {
		return nil, nil, fmt.Errorf("watch %s's EndpointSlices: %w", svc, err)
	}
	defer own.Stop()
	theirs, err := to.DiscoveryV1().EndpointSlices(scaleNamespace).Watch(ctx, metav1.ListOptions{
		LabelSelector: "multicluster.kubernetes.io/service-name=" + svc,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("watch the imported EndpointSlices of %s: %w", svc, err)
	}
	defer theirs.Stop()
	base := pods.Addr().As4()
	for i := range n {
		s, err := slices.Get(ctx, svc+"-bench", metav1.GetOptions{})
		if err != nil {
			return nil, nil, fmt.Errorf("read %s's EndpointSlice: %w", svc, err)
		}
		// Beyond scaleSlice's addresses: the top of the pod range.
		addr := netip.AddrFrom4([4]byte{base[0], base[1], 255, byte(i + 1)}).String()
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{addr},
			Conditions: discoveryv1.EndpointConditions{Ready: ptrTo(true), Serving: ptrTo(true), Terminating: ptrTo(false)},
		})
		start := time.Now()
		if _, err := slices.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			return nil, nil, fmt.Errorf("add an endpoint to %s: %w", svc, err)
		}
		seen, err := untilAddress(own, addr, 10*time.Second)
		if err != nil {
			return nil, nil, fmt.Errorf("own watch: %w", err)
		}
		ref = append(ref, seen.Sub(start))
		seen, err = untilAddress(theirs, addr, 30*time.Second)
		if err != nil {
			return nil, nil, fmt.Errorf("imported slice: %w", err)
		}
		imported = append(imported, seen.Sub(start))
	}
	return imported, ref, nil
}

// untilAddress reads w until an EndpointSlice with an endpoint at addr
// comes, and returns when it came. Events that came before (the watch
// reads on while the other one is read) are read at once.
func untilAddress(w watch.Interface, addr string, limit time.Duration) (time.Time, error) {
	timeout := time.After(limit)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return time.Time{}, fmt.Errorf("the watch ended before %s appeared", addr)
			}
			s, isSlice := ev.Object.(*discoveryv1.EndpointSlice)
			if !isSlice || ev.Type == watch.Deleted {
				continue
			}
			if slices.ContainsFunc(s.Endpoints, func(e discoveryv1.Endpoint) bool { return slices.Contains(e.Addresses, addr) }) {
				return time.Now(), nil
			}
		case <-timeout:
			return time.Time{}, fmt.Errorf("%s did not appear within %s", addr, limit)
		}
	}
}

// reportLatencies logs and reports p50 and p99 of ds under name.
func reportLatencies(b *testing.B, name string, ds []time.Duration) {
	b.Helper()
	p50, p99 := percentile(ds, 50), percentile(ds, 99)
	b.Logf("  %-34s p50 %6.0f ms   p99 %6.0f ms   (%d)", name, ms(p50), ms(p99), len(ds))
	b.ReportMetric(p50.Seconds(), "s/"+name+"-p50")
	b.ReportMetric(p99.Seconds(), "s/"+name+"-p99")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
