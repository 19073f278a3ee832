package bench

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wirespan/wirespan/test/internal/lab/plan"
)

// The scale the MCS issue asks for: 10,000 exported Services of 10
// endpoints each, spread over three clusters.
const (
	scaleServices  = 10000
	scaleEndpoints = 10
	scaleNamespace = "scale"
	// scaleWriters is how many objects the benchmark creates at once per
	// cluster.
	scaleWriters = 32
)

var serviceImports = schema.GroupVersionResource{Group: "multicluster.x-k8s.io", Version: "v1beta1", Resource: "serviceimports"}

// BenchmarkScale exports 10,000 Services with 10 endpoints each from a
// peered three-cluster lab (one node per cluster, its gateway), a third
// from each cluster, and waits until every cluster imports all of them:
// 10,000 ServiceImports with clusterset IPs and 10,000 imported
// EndpointSlices in each. Then it resolves every name through each
// cluster's DNS (CoreDNS forwarding clusterset.local to the gateway) from
// a pod and checks each answer against that cluster's ServiceImport.
//
// Figures: the time from the first ServiceExport to full convergence, and
// the peak resident memory of the operators and gateways. References from
// the same run: the time the benchmark itself took to create the 10,000
// Services and EndpointSlices (the API server's write rate on this
// machine), and the peak memory of kube-proxy and CoreDNS, which watch
// the same Services and EndpointSlices.
//
// Then, with every import in place: the CPU each program uses over an
// idle minute (the gateway's next to kube-proxy's, which watches the same
// objects); one more export until the other cluster's DNS answers it,
// next to a plain Service until CoreDNS answers it; one endpoint change
// until the other cluster's imported slice shows it, next to the
// exporting cluster's own watch seeing the change (scale_latency_test.go).
//
// One round takes minutes; `make bench` runs it once.
func BenchmarkScale(b *testing.B) {
	services := scaleServiceCount(b)
	// kube-proxy syncs at most every 10 s instead of every second: each
	// sync runs nft at a cost that grows with the whole ruleset, and three
	// clusters' kube-proxies share this machine's CPU with their API
	// servers, where a real cluster gives each its own node.
	st := peeredLab(b, "--clusters", "3", "--nodes", "1", "--kube-proxy-min-sync-period", "10s")
	ctx := context.Background()
	type cluster struct {
		name string
		cs   *kubernetes.Clientset
		dyn  dynamic.Interface
		svcs []string
		pods netip.Prefix
	}
	var cls []*cluster
	for i, c := range st.Clusters {
		cfg := restConfig(b, c.Kubeconfig)
		cl := &cluster{name: c.Name, cs: kubernetes.NewForConfigOrDie(cfg), dyn: dynamic.NewForConfigOrDie(cfg)}
		cl.pods = netip.MustParsePrefix(c.PodCIDRs[0])
		for n := i; n < services; n += len(st.Clusters) {
			cl.svcs = append(cl.svcs, fmt.Sprintf("svc-%05d", n))
		}
		cls = append(cls, cl)
	}
	inAll := func(f func(c *cluster) error) {
		b.Helper()
		var wg sync.WaitGroup
		errs := make([]error, len(cls))
		for i, c := range cls {
			wg.Go(func() { errs[i] = f(c) })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	inAll(func(c *cluster) error {
		_, err := c.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: scaleNamespace}}, metav1.CreateOptions{})
		return err
	})

	b.ResetTimer()
	b.StopTimer()
	// The reference: the Services and their EndpointSlices.
	start := time.Now()
	inAll(func(c *cluster) error {
		return concurrently(len(c.svcs), func(i int) error {
			name := c.svcs[i]
			if _, err := c.cs.CoreV1().Services(scaleNamespace).Create(ctx, scaleService(name), metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("%s: create Service %s: %w", c.name, name, err)
			}
			slice, err := scaleSlice(name, c.pods, i)
			if err != nil {
				return err
			}
			if _, err := c.cs.DiscoveryV1().EndpointSlices(scaleNamespace).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("%s: create EndpointSlice of %s: %w", c.name, name, err)
			}
			return nil
		})
	})
	refCreate := time.Since(start)
	b.Logf("created %d Services and EndpointSlices in %s", services, refCreate.Round(time.Millisecond))

	usage := watchProcesses(st.Processes)
	b.StartTimer()
	start = time.Now()
	inAll(func(c *cluster) error {
		return concurrently(len(c.svcs), func(i int) error {
			se := serviceExport(c.svcs[i])
			se.SetNamespace(scaleNamespace)
			if _, err := c.dyn.Resource(serviceExports).Namespace(scaleNamespace).Create(ctx, se, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("%s: create ServiceExport %s: %w", c.name, c.svcs[i], err)
			}
			return nil
		})
	})
	exportsCreated := time.Since(start)
	b.Logf("created %d ServiceExports in %s", services, exportsCreated.Round(time.Millisecond))
	ips := make([]map[string][]string, len(cls))
	for i, c := range cls {
		got, err := waitImports(ctx, c.cs, c.dyn, services, 75*time.Minute, func(msg string) { b.Logf("%s: %s after %s", c.name, msg, time.Since(start).Round(time.Second)) })
		if err != nil {
			b.Fatalf("%s: %v", c.name, err)
		}
		ips[i] = got
	}
	converged := time.Since(start)
	b.StopTimer()
	peaks, cpu := usage.stop()
	b.Logf("converged in %s; peak resident memory and CPU time (children included) while importing, by program:", converged.Round(time.Second))
	for _, kind := range slices.Sorted(maps.Keys(cpu)) {
		b.Logf("  %-20s %6.0f MiB %8.1f CPU s", kind, peaks[kind]/(1<<20), cpu[kind])
	}

	// DNS: every name, through each cluster's own DNS, from a pod.
	for i, c := range st.Clusters {
		conn := dnsConnIn(b, c.Pods[0].Netns, c.ClusterDNS)
		wrong := 0
		for name, want := range ips[i] {
			have, err := lookupA(conn, name+"."+scaleNamespace+".svc.clusterset.local.")
			if err != nil || !slices.Equal(have, want) {
				if wrong < 5 {
					b.Errorf("%s: %s resolves to %v (%v), want %v", c.Name, name, have, err, want)
				}
				wrong++
			}
		}
		_ = conn.Close()
		if wrong > 0 {
			b.Fatalf("%s: %d of %d names answered wrong", c.Name, wrong, len(ips[i]))
		}
		b.Logf("%s: all %d names resolve to their ServiceImport's IPs", c.Name, len(ips[i]))
	}

	// With every import in place: an idle minute, then one more change at
	// a time, each timed next to its reference from the same run.
	gateway := st.Clusters[0].Nodes[0].Netns
	profiled := make(chan error, 1)
	if path := os.Getenv("WIRESPAN_SCALE_PROFILE"); path != "" {
		go func() { profiled <- cpuProfile(gateway, path, 60*time.Second) }()
	} else {
		profiled <- nil
	}
	idle := idleCPU(st.Processes, 60*time.Second)
	if err := <-profiled; err != nil {
		b.Error(err)
	}
	b.Logf("an idle minute at %d imports per cluster, CPU seconds by program (all clusters):", services)
	for _, kind := range slices.Sorted(maps.Keys(idle)) {
		b.Logf("  %-24s %6.2f CPU s", kind, idle[kind])
	}
	b.ReportMetric(idle["wirespan-gateway"]/float64(len(cls)), "cpu-s/idle-minute-gateway")
	b.ReportMetric(idle["kube-proxy"]/float64(len(cls)), "cpu-s/idle-minute-ref-kube-proxy")

	b.Logf("one more change at %d imports (%s exports, %s answers):", services, cls[1].name, cls[0].name)
	conn := dnsConnIn(b, st.Clusters[0].Pods[0].Netns, st.Clusters[0].ClusterDNS)
	late, err := exportToDNS(ctx, cls[1].cs, cls[1].dyn, conn, latencySamples)
	if err != nil {
		b.Fatal(err)
	}
	refs, err := serviceToDNS(ctx, cls[0].cs, conn, latencySamples)
	if err != nil {
		b.Fatal(err)
	}
	_ = conn.Close()
	reportLatencies(b, "export-to-dns", late)
	reportLatencies(b, "ref-service-to-dns", refs)
	imported, own, err := endpointToImport(ctx, cls[1].cs, cls[0].cs, cls[1].svcs[0], cls[1].pods, latencySamples)
	if err != nil {
		b.Fatal(err)
	}
	reportLatencies(b, "endpoint-to-import", imported)
	reportLatencies(b, "ref-endpoint-to-own-watch", own)

	b.ReportMetric(converged.Seconds(), "s/converge")
	b.ReportMetric(exportsCreated.Seconds(), "s/exports-created")
	b.ReportMetric(refCreate.Seconds(), "s/ref-create-services")
	for _, kind := range []string{"wirespan-gateway", "wirespan-operator", "kube-proxy", "coredns"} {
		b.ReportMetric(peaks[kind]/(1<<20), "MiB/"+kind)
	}
}

// scaleServiceCount is how many Services BenchmarkScale exports: 10,000,
// or WIRESPAN_SCALE_SERVICES for a quicker look while working on the
// import path (the figures in docs/benchmarks.md are for 10,000). With
// WIRESPAN_SCALE_PROFILE=FILE the benchmark also saves a 60 s CPU profile
// of c1's gateway while it has nothing to write.
func scaleServiceCount(b *testing.B) int {
	v := os.Getenv("WIRESPAN_SCALE_SERVICES")
	if v == "" {
		return scaleServices
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 3 || n > scaleServices*1.5 {
		b.Fatalf("WIRESPAN_SCALE_SERVICES=%q: want a whole number of Services from 3 to %d", v, scaleServices*3/2)
	}
	return n
}

func restConfig(b *testing.B, kubeconfig string) *rest.Config {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		b.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 2000, 4000
	return cfg
}

// concurrently runs f for 0..n-1 on scaleWriters goroutines and returns
// the first error.
func concurrently(n int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		next  = make(chan int)
	)
	for range scaleWriters {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// scaleService is a selector-less Service; the benchmark writes its
// EndpointSlice itself, so no pods are needed.
func scaleService(name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: scaleNamespace},
		Spec: corev1.ServiceSpec{
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
		},
	}
}

// scaleSlice gives Service number i of a cluster scaleEndpoints ready
// endpoints, distinct addresses from the cluster's pod range.
func scaleSlice(name string, pods netip.Prefix, i int) (*discoveryv1.EndpointSlice, error) {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: name + "-bench", Namespace: scaleNamespace,
			Labels: map[string]string{discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "bench.wirespan.io"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptrTo("http"), Port: ptrTo(int32(8080)), Protocol: ptrTo(corev1.ProtocolTCP)}},
	}
	base := pods.Addr().As4()
	for e := range scaleEndpoints {
		// Past the first /24s, which the lab's nodes use.
		n := 4096 + i*scaleEndpoints + e
		a := netip.AddrFrom4([4]byte{base[0], base[1], byte(n >> 8), byte(n)})
		if n >= 1<<16 || !pods.Contains(a) {
			return nil, fmt.Errorf("pod range %s too small for %d endpoints", pods, n)
		}
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{a.String()},
			Conditions: discoveryv1.EndpointConditions{Ready: ptrTo(true), Serving: ptrTo(true), Terminating: ptrTo(false)},
		})
	}
	return s, nil
}

func ptrTo[T any](v T) *T { return &v }

// waitImports waits until a cluster has a ServiceImport with clusterset
// IPs and an imported EndpointSlice for each of n Services, and returns
// each one's IPs. It reports progress every 30 s. It looks every 5 s: a
// list of 10,000 ServiceImports costs the API server enough CPU to slow
// what it measures if done every second, and the figure is minutes.
func waitImports(ctx context.Context, cs *kubernetes.Clientset, dyn dynamic.Interface, n int, limit time.Duration, progress func(string)) (map[string][]string, error) {
	deadline := time.Now().Add(limit)
	lastReport := time.Now()
	for {
		ips, err := importedIPs(ctx, dyn)
		if err != nil {
			return nil, err
		}
		slices, err := cs.DiscoveryV1().EndpointSlices(scaleNamespace).List(ctx, metav1.ListOptions{
			LabelSelector: discoveryv1.LabelManagedBy + "=wirespan.io", ResourceVersion: "0",
		})
		if err != nil {
			return nil, fmt.Errorf("list imported EndpointSlices: %w", err)
		}
		msg := fmt.Sprintf("%d ServiceImports with IPs, %d imported EndpointSlices", len(ips), len(slices.Items))
		if len(ips) == n && len(slices.Items) == n {
			progress(msg)
			return ips, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("not converged after %s: %s", limit, msg)
		}
		if time.Since(lastReport) >= 30*time.Second {
			progress(msg)
			lastReport = time.Now()
		}
		time.Sleep(5 * time.Second)
	}
}

// importedIPs lists the ServiceImports that have their IPs, by name.
func importedIPs(ctx context.Context, dyn dynamic.Interface) (map[string][]string, error) {
	list, err := dyn.Resource(serviceImports).Namespace(scaleNamespace).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return nil, fmt.Errorf("list ServiceImports: %w", err)
	}
	out := map[string][]string{}
	for _, si := range list.Items {
		ips, _, _ := unstructured.NestedStringSlice(si.Object, "spec", "ips")
		if len(ips) > 0 {
			slices.Sort(ips)
			out[si.GetName()] = ips
		}
	}
	return out, nil
}

// lookupA asks for name's A records, retrying a lost datagram.
func lookupA(conn *dns.Conn, name string) ([]string, error) {
	var last error
	for attempt := range 3 {
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		q.Id = uint16(attempt + 1)
		_ = conn.SetDeadline(time.Now().Add(time.Second))
		if err := conn.WriteMsg(q); err != nil {
			return nil, err
		}
		r, err := conn.ReadMsg()
		for err == nil && r.Id != q.Id {
			r, err = conn.ReadMsg() // a late answer to an earlier query
		}
		if err != nil {
			last = err
			continue
		}
		if r.Rcode != dns.RcodeSuccess {
			return nil, fmt.Errorf("%s", dns.RcodeToString[r.Rcode])
		}
		var out []string
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.A); ok {
				out = append(out, a.A.String())
			}
		}
		slices.Sort(out)
		return out, nil
	}
	return nil, last
}

// processWatch samples the resident memory and CPU time of the lab's
// processes.
type processWatch struct {
	stopped chan struct{}
	done    chan map[string]float64
	procs   []labProcess
	cpu     map[int]float64 // CPU seconds of each PID when the watch began
}

// watchProcesses samples, every 500 ms until stop, the resident memory
// of the lab's processes and keeps the peak of each kind (the program
// name, over all clusters and nodes).
func watchProcesses(procs []labProcess) *processWatch {
	m := &processWatch{stopped: make(chan struct{}), done: make(chan map[string]float64, 1), procs: procs, cpu: map[int]float64{}}
	for _, p := range procs {
		if s, err := cpuSeconds(p.PID); err == nil {
			m.cpu[p.PID] = s
		}
	}
	go func() {
		peaks := map[string]float64{}
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, p := range procs {
				kind := p.kind()
				if rss, err := residentBytes(p.PID); err == nil && rss > peaks[kind] {
					peaks[kind] = rss
				}
			}
			select {
			case <-m.stopped:
				m.done <- peaks
				return
			case <-tick.C:
			}
		}
	}()
	return m
}

// stop returns the peak resident bytes and the CPU seconds spent since
// the watch began, each by kind of process.
func (m *processWatch) stop() (peaks, cpu map[string]float64) {
	cpu = map[string]float64{}
	for _, p := range m.procs {
		if s, err := cpuSeconds(p.PID); err == nil {
			cpu[p.kind()] += s - m.cpu[p.PID]
		}
	}
	close(m.stopped)
	return <-m.done, cpu
}

// kind is the program a lab process runs, read from its name, which also
// names the cluster, node or pod it is for ("c1-n1-wirespan-gateway" is a
// wirespan-gateway).
func (p labProcess) kind() string {
	for _, k := range []string{"wirespan-gateway", "wirespan-operator", "kube-proxy", "coredns", "kube-apiserver", "kube-controller-manager", "etcd"} {
		if strings.Contains(p.Name, k) {
			return k
		}
	}
	return p.Name
}

// residentBytes reads a process's resident set size from /proc.
func residentBytes(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// cpuSeconds reads the user and system CPU time a process has used, with
// that of the children it has waited for (kube-proxy's nft runs), from
// /proc/PID/stat (fields 14 to 17, in USER_HZ ticks: 100 a second on
// every Linux this runs on).
func cpuSeconds(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields count from after it.
	_, rest, ok := strings.Cut(string(data), ") ")
	fields := strings.Fields(rest)
	if !ok || len(fields) < 15 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	var ticks float64
	for _, f := range fields[11:15] {
		t, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += t
	}
	return ticks / 100, nil
}

// httpClientIn is an HTTP client whose connections are made from inside
// the network namespace ns.
func httpClientIn(ns string, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
			return dialIn(ns, network, addr)
		},
	}}
}

// cpuProfile saves a CPU profile of the gateway whose node is the network
// namespace ns, taken over d, to path (WIRESPAN_SCALE_PROFILE: the
// benchmark takes it while the gateway has nothing to write).
func cpuProfile(ns, path string, d time.Duration) error {
	url := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", plan.GatewayPprofPort, int(d.Seconds()))
	resp, err := httpClientIn(ns, d+30*time.Second).Get(url)
	if err != nil {
		return fmt.Errorf("gateway CPU profile in %s: %w", ns, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("gateway CPU profile in %s: %s", ns, resp.Status)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("gateway CPU profile in %s: %w", ns, err)
	}
	return os.WriteFile(path, data, 0o644)
}
