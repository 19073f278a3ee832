package bench

import (
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

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
