package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// BenchmarkPeerFromGit times, on a fresh lab each round, applying the
// ClusterPeer folder to both clusters until a pod of c1 first gets an
// answer from a pod of c2. The reference is the apply alone (kubectl apply
// to both clusters).
func BenchmarkPeerFromGit(b *testing.B) {
	var total, apply time.Duration
	for range b.N {
		b.StopTimer()
		st := freshLab(b)
		c1, c2 := st.Clusters[0], st.Clusters[1]
		wait, err := firstReply(c1.Pods[0].Netns, c2.Pods[0].IP, 60*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if out, err := lab("apply", st.ClusterPeersDir); err != nil {
			b.Fatal(err, out)
		}
		apply += time.Since(start)
		at, err := wait()
		if err != nil {
			b.Fatal(err)
		}
		total += at.Sub(start)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/first-ping")
	b.ReportMetric(apply.Seconds()/float64(b.N), "s/ref-apply")
}

// BenchmarkNewNodeCIDR times, on a peered lab, creating a Node with a new
// podCIDR in c2 until a pod of c1, on the gateway node and on a node-agent
// node, first gets an answer from an address in it (held by c2's gateway
// node). The path: c2's operator republishes its ranges, c2's gateway
// gossips them, c1's gateway routes them and writes them to status, c1's
// node agent routes them. The reference is a Node create and read-back on
// c2's API server.
func BenchmarkNewNodeCIDR(b *testing.B) {
	st := peeredLab(b)
	c1, c2 := st.Clusters[0], st.Clusters[1]
	cs := clientFor(b, c2.Kubeconfig)
	ctx := context.Background()
	var gw, agent, ref time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		third := 2 + i
		cidr := fmt.Sprintf("10.2.%d.0/24", third)
		target := fmt.Sprintf("10.2.%d.10", third)
		// The new range's first address lives on c2's gateway node, which
		// answers for it once c1 routes the range.
		if out, err := exec.Command("ip", "netns", "exec", c2.Nodes[0].Netns, "ip", "addr", "add", target+"/32", "dev", "lo").CombinedOutput(); err != nil {
			b.Fatal(err, string(out))
		}
		waitGW, err := firstReply(c1.Pods[0].Netns, target, 30*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		waitAgent, err := firstReply(c1.Pods[1].Netns, target, 30*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // both pings run before the change
		b.StartTimer()
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("c2-bench-%d", third)},
			Spec:       corev1.NodeSpec{PodCIDR: cidr, PodCIDRs: []string{cidr}},
		}
		start := time.Now()
		if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		atGW, err := waitGW()
		if err != nil {
			b.Fatal(err)
		}
		atAgent, err := waitAgent()
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		gw += atGW.Sub(start)
		agent += atAgent.Sub(start)
		refStart := time.Now()
		probe := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("c2-ref-%d", i)}}
		if _, err := cs.CoreV1().Nodes().Create(ctx, probe, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		if _, err := cs.CoreV1().Nodes().Get(ctx, probe.Name, metav1.GetOptions{}); err != nil {
			b.Fatal(err)
		}
		ref += time.Since(refStart)
		_ = cs.CoreV1().Nodes().Delete(ctx, probe.Name, metav1.DeleteOptions{})
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(gw.Seconds()/n, "s/to-gateway-pod")
	b.ReportMetric(agent.Seconds()/n, "s/to-node-agent-pod")
	b.ReportMetric(ref.Seconds()/n, "s/ref-api-roundtrip")
}

// peeredLab is a fresh lab (freshLab(upArgs)) with the ClusterPeer folder
// applied and a pod of c1 already answered by a pod of every other
// cluster.
func peeredLab(b *testing.B, upArgs ...string) *labStatus {
	b.Helper()
	st := freshLab(b, upArgs...)
	if out, err := lab("apply", st.ClusterPeersDir); err != nil {
		b.Fatal(err, out)
	}
	c1 := st.Clusters[0]
	for _, other := range st.Clusters[1:] {
		wait, err := firstReply(c1.Pods[0].Netns, other.Pods[0].IP, 60*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := wait(); err != nil {
			b.Fatal(err)
		}
	}
	return st
}

func clientFor(b *testing.B, kubeconfig string) *kubernetes.Clientset {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		b.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return cs
}

// iperfSeconds is each throughput run's length; three runs per path, the
// median reported.
const iperfSeconds = "3"

// BenchmarkThroughput measures one TCP stream between pods of two peered
// dual-stack lab clusters, in each family: between pods on the gateway
// nodes (pod, node bridge, gateway's userspace WireGuard, router, the
// other gateway, bridge, pod), and between pods behind node agents (the
// same with VXLAN from the node to its gateway on both sides). Next to
// them, in the same run, a standalone wireguard-go tunnel of the same
// module version configured with `wg` between two namespaces, in each
// family, and plain veth.
func BenchmarkThroughput(b *testing.B) {
	st := peeredLab(b, "--ip-family", "dual")
	c1, c2 := st.Clusters[0], st.Clusters[1]
	wgA, wgB, veth := standalone(b)
	// Pods[0] is echo-0 on the gateway node, Pods[1] echo-1 behind the
	// node agent; IPs[0] is IPv4, IPs[1] IPv6.
	paths := []struct {
		metric                  string
		server, client, address string
		ref                     string // the reference metric it is compared with
	}{
		{"Gbit/s-wirespan", c2.Pods[0].Netns, c1.Pods[0].Netns, c2.Pods[0].IPs[0], "Gbit/s-ref-wireguard-go"},
		{"Gbit/s-wirespan-ipv6", c2.Pods[0].Netns, c1.Pods[0].Netns, c2.Pods[0].IPs[1], "Gbit/s-ref-wireguard-go-ipv6"},
		{"Gbit/s-wirespan-node-agents", c2.Pods[1].Netns, c1.Pods[1].Netns, c2.Pods[1].IPs[0], "Gbit/s-ref-wireguard-go"},
		{"Gbit/s-wirespan-node-agents-ipv6", c2.Pods[1].Netns, c1.Pods[1].Netns, c2.Pods[1].IPs[1], "Gbit/s-ref-wireguard-go-ipv6"},
		{"Gbit/s-ref-wireguard-go", wgB, wgA, "10.99.0.2", ""},
		{"Gbit/s-ref-wireguard-go-ipv6", wgB, wgA, "fd99::2", ""},
		{"Gbit/s-ref-veth", veth, wgA, "10.98.0.2", ""},
	}
	b.ResetTimer()
	sum := map[string]float64{}
	for range b.N {
		for _, p := range paths {
			sum[p.metric] += median(b, func() float64 { return iperf(b, p.server, p.client, p.address) })
		}
	}
	for _, p := range paths {
		b.ReportMetric(sum[p.metric]/float64(b.N), p.metric)
		if p.ref != "" {
			b.ReportMetric(sum[p.metric]/sum[p.ref], "ratio-"+strings.TrimPrefix(p.metric, "Gbit/s-"))
		}
	}
}

func median(b *testing.B, run func() float64) float64 {
	var xs []float64
	for range 3 {
		xs = append(xs, run())
	}
	sort.Float64s(xs)
	return xs[1]
}

// iperf runs an iperf3 server in serverNS and a client in clientNS, and
// returns the received rate in Gbit/s.
func iperf(b *testing.B, serverNS, clientNS, addr string) float64 {
	b.Helper()
	server := exec.Command("ip", "netns", "exec", serverNS, "iperf3", "-s", "-1", "-p", "5201")
	if err := server.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = server.Process.Kill(); _ = server.Wait() }()
	var out []byte
	var err error
	for range 50 { // until the server listens
		out, err = exec.Command("ip", "netns", "exec", clientNS, "iperf3", "-c", addr, "-p", "5201", "-t", iperfSeconds, "-J").Output()
		if err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		b.Fatalf("iperf3 %s -> %s: %v\n%s", clientNS, addr, err, out)
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		b.Fatal(err)
	}
	return r.End.SumReceived.BitsPerSecond / 1e9
}

// The standalone reference: namespaces wsb-a and wsb-b joined by a veth
// (10.98.0.0/24), with a wireguard-go device in each (10.99.0.0/24 and
// fd99::/64, MTU 1420 like Wirespan's tunnel on a 1500 underlay),
// configured with `wg`.
const standalonePrefix = "wsb-"

func standalone(b *testing.B) (a, bNS, vethNS string) {
	b.Helper()
	b.Cleanup(removeStandalone)
	a, bNS = standalonePrefix+"a", standalonePrefix+"b"
	run := func(args ...string) {
		b.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "netns", "add", a)
	run("ip", "netns", "add", bNS)
	run("ip", "link", "add", "wsb-veth-a", "netns", a, "type", "veth", "peer", "wsb-veth-b", "netns", bNS)
	keys := map[string]wgtypes.Key{}
	for i, ns := range []string{a, bNS} {
		side := string("ab"[i])
		run("ip", "-n", ns, "link", "set", "lo", "up")
		run("ip", "-n", ns, "addr", "add", fmt.Sprintf("10.98.0.%d/24", i+1), "dev", "wsb-veth-"+side)
		run("ip", "-n", ns, "link", "set", "wsb-veth-"+side, "up")
		k, err := wgtypes.GeneratePrivateKey()
		if err != nil {
			b.Fatal(err)
		}
		keys[ns] = k
		dev := "wsb-wg-" + side
		cmd := exec.Command("ip", "netns", "exec", ns, filepath.Join(binDir, "wireguard-go"), "-f", dev)
		cmd.Env = append(os.Environ(), "LOG_LEVEL=error")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		for range 100 {
			if _, err := os.Stat("/var/run/wireguard/" + dev + ".sock"); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for i, ns := range []string{a, bNS} {
		side, other := string("ab"[i]), []string{bNS, a}[i]
		dev := "wsb-wg-" + side
		keyFile := filepath.Join(b.TempDir(), "key")
		if err := os.WriteFile(keyFile, []byte(keys[ns].String()), 0o600); err != nil {
			b.Fatal(err)
		}
		run("ip", "netns", "exec", ns, "wg", "set", dev, "private-key", keyFile, "listen-port", "51820",
			"peer", keys[other].PublicKey().String(), "allowed-ips", fmt.Sprintf("10.99.0.%d/32,fd99::%d/128", 2-i, 2-i),
			"endpoint", fmt.Sprintf("10.98.0.%d:51820", 2-i))
		run("ip", "-n", ns, "addr", "add", fmt.Sprintf("10.99.0.%d/24", i+1), "dev", dev)
		run("ip", "-n", ns, "addr", "add", fmt.Sprintf("fd99::%d/64", i+1), "dev", dev, "nodad")
		run("ip", "-n", ns, "link", "set", dev, "mtu", "1420", "up")
	}
	return a, bNS, bNS
}

// removeStandalone removes the reference namespaces, their processes and
// their WireGuard sockets.
func removeStandalone() {
	for _, ns := range []string{standalonePrefix + "a", standalonePrefix + "b"} {
		if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
			for _, pid := range strings.Fields(string(out)) {
				_ = exec.Command("kill", "-9", pid).Run()
			}
		}
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
	socks, _ := filepath.Glob("/var/run/wireguard/" + standalonePrefix + "*.sock")
	for _, s := range socks {
		_ = os.Remove(s)
	}
}
