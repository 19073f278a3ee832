package bench

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
)

// exportsPerRound is how many exports each round of BenchmarkExportToDNS
// times; refsPerRound how many reference Services.
const (
	exportsPerRound = 50
	refsPerRound    = 10
)

// BenchmarkExportToDNS times, on a peered lab, creating a ServiceExport in
// c2 until c1's cluster DNS (CoreDNS, forwarding clusterset.local to c1's
// gateway) answers <svc>.default.svc.clusterset.local, polled every 2 ms
// from a pod's namespace. The path: c2's gateway sees the export, gossips
// it; c1's gateway creates the ServiceImport and derived Service, takes
// its VIP and serves it. The reference, in the same run: creating a plain
// Service in c1 until the same CoreDNS answers its cluster.local name
// (Kubernetes' own watch-to-DNS path). It reports p50 and p99 of both.
func BenchmarkExportToDNS(b *testing.B) {
	st := peeredLab(b)
	c1, c2 := st.Clusters[0], st.Clusters[1]
	cs1, cs2 := clientFor(b, c1.Kubeconfig), clientFor(b, c2.Kubeconfig)
	dyn := dynamicFor(b, c2.Kubeconfig)
	conn := dnsConnIn(b, c1.Pods[0].Netns, c1.ClusterDNS)
	defer func() { _ = conn.Close() }()
	ctx := context.Background()
	var exports, refs []time.Duration
	b.ResetTimer()
	for round := range b.N {
		b.StopTimer()
		names := make([]string, exportsPerRound)
		for i := range names {
			names[i] = fmt.Sprintf("bench-%d-%d", round, i)
			if _, err := cs2.CoreV1().Services("default").Create(ctx, echoService(names[i]), metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		for _, name := range names {
			start := time.Now()
			if _, err := dyn.Resource(serviceExports).Namespace("default").Create(ctx, serviceExport(name), metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
			if err := waitAnswer(conn, name+".default.svc.clusterset.local.", 10*time.Second); err != nil {
				b.Fatal(err)
			}
			exports = append(exports, time.Since(start))
		}
		b.StopTimer()
		for i := range refsPerRound {
			name := fmt.Sprintf("ref-%d-%d", round, i)
			start := time.Now()
			if _, err := cs1.CoreV1().Services("default").Create(ctx, echoService(name), metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
			if err := waitAnswer(conn, name+".default.svc.cluster.local.", 10*time.Second); err != nil {
				b.Fatal(err)
			}
			refs = append(refs, time.Since(start))
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(percentile(exports, 50).Seconds(), "s/export-p50")
	b.ReportMetric(percentile(exports, 99).Seconds(), "s/export-p99")
	b.ReportMetric(percentile(refs, 50).Seconds(), "s/ref-service-p50")
	b.ReportMetric(percentile(refs, 99).Seconds(), "s/ref-service-p99")
	b.ReportMetric(float64(len(exports)), "exports")
}

var serviceExports = schema.GroupVersionResource{Group: "multicluster.x-k8s.io", Version: "v1beta1", Resource: "serviceexports"}

func serviceExport(name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("multicluster.x-k8s.io/v1beta1")
	u.SetKind("ServiceExport")
	u.SetNamespace("default")
	u.SetName(name)
	return u
}

// echoService is a Service in front of the lab's echo pods.
func echoService(name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "echo"},
			Ports:    []corev1.ServicePort{{Name: "tcp", Port: 8080, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
		},
	}
}

func dynamicFor(b *testing.B, kubeconfig string) dynamic.Interface {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		b.Fatal(err)
	}
	d, err := dynamic.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// dnsConnIn opens a UDP socket to server:53 from inside a network
// namespace.
func dnsConnIn(b *testing.B, ns, server string) *dns.Conn {
	c, err := dialIn(ns, "udp", net.JoinHostPort(server, "53"))
	if err != nil {
		b.Fatal(err)
	}
	return &dns.Conn{Conn: c}
}

// dialIn dials address from inside the network namespace ns. The socket
// stays in that namespace; the calling thread returns to its own.
func dialIn(ns, network, address string) (net.Conn, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return nil, err
	}
	defer func() { _ = netns.Set(orig); _ = orig.Close() }()
	target, err := netns.GetFromName(ns)
	if err != nil {
		return nil, fmt.Errorf("network namespace %s: %w", ns, err)
	}
	defer func() { _ = target.Close() }()
	if err := netns.Set(target); err != nil {
		return nil, fmt.Errorf("enter network namespace %s: %w", ns, err)
	}
	return net.Dial(network, address)
}

// waitAnswer asks for name's A record every 2 ms until an answer comes.
func waitAnswer(conn *dns.Conn, name string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for id := uint16(1); time.Now().Before(deadline); id++ {
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		q.Id = id
		_ = conn.SetDeadline(time.Now().Add(50 * time.Millisecond))
		if err := conn.WriteMsg(q); err == nil {
			for {
				r, err := conn.ReadMsg()
				if err != nil {
					break
				}
				if r.Id != id {
					continue // a late answer to an earlier query
				}
				if r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 {
					return nil
				}
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("no answer for %s within %s", name, limit)
}

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}
