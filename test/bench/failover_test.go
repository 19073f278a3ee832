package bench

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wirespan/wirespan/internal/poll"
	"github.com/wirespan/wirespan/internal/testenv"
	"github.com/wirespan/wirespan/test/internal/drill"
)

// failoverTrials is how many times each fault is measured.
const failoverTrials = 10

// BenchmarkFailover measures the traffic gap a pod of c2 sees pinging a pod
// of c1 every 10 ms (both on node agents, so the packets cross both active
// gateways) when c1's active gateway goes away, for each fault of package
// drill, failoverTrials times each, and reports the median and the worst;
// and the gap in clusterset DNS answers a pod of c1 sees meanwhile. The
// reference, measured in the same run, is the active gateway's process
// killed and started again at once, which keeps the role.
func BenchmarkFailover(b *testing.B) {
	st := peeredLab(b, "--clusters", "2", "--nodes", "3", "--gateways", "2")
	b.Cleanup(func() {
		if b.Failed() { // before the lab goes: its logs say why
			dst := filepath.Join(repo, ".cache", "bench-logs", time.Now().Format("20060102-150405"))
			if out, err := exec.Command("cp", "-a", filepath.Join(labDir, "logs"), dst).CombinedOutput(); err != nil {
				b.Logf("keep the lab's logs: %v %s", err, out)
			} else {
				b.Logf("the lab's logs are kept in %s", dst)
			}
		}
	})
	assets, err := testenv.AssetsDir(repo)
	if err != nil {
		b.Fatal(err)
	}
	kubectl := filepath.Join(assets, "kubectl")
	l := drill.Lab{
		Cmd: func(args ...string) *exec.Cmd {
			argv := append([]string{args[0], "--state-dir", labDir, "--instance", instance, "--bin-dir", binDir}, args[1:]...)
			return exec.Command(filepath.Join(binDir, "wirespan-lab"), argv...)
		},
		Kubectl: func(cluster string, args ...string) (string, error) {
			for _, c := range st.Clusters {
				if c.Name == cluster {
					out, err := exec.Command(kubectl,
						append([]string{"--kubeconfig", c.Kubeconfig}, args...)...).CombinedOutput()
					return strings.TrimSpace(string(out)), err
				}
			}
			return "", fmt.Errorf("no cluster %s", cluster)
		},
	}
	var dst string // echo-2, on c1's last node: a node agent
	for _, p := range st.Clusters[0].Pods {
		if p.Name == "echo-2" {
			dst = p.IP
		}
	}
	// c2 exports echo: c1 resolves it through the clusterset DNS server
	// that its DNS Service names.
	export := filepath.Join(b.TempDir(), "export.yaml")
	if err := os.WriteFile(export, []byte("apiVersion: multicluster.x-k8s.io/v1beta1\nkind: ServiceExport\nmetadata:\n  name: echo\n  namespace: default\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	if out, err := l.Kubectl("c2", "apply", "-f", export); err != nil {
		b.Fatal(err, out)
	}
	b.ResetTimer()
	for range b.N {
		for _, f := range append([]drill.Fault{drill.Restart}, drill.Faults...) {
			var gaps, dnsGaps []time.Duration
			for range failoverTrials {
				gap, dnsGap := failoverGap(b, l, f, dst)
				gaps, dnsGaps = append(gaps, gap), append(dnsGaps, dnsGap)
			}
			slices.Sort(gaps)
			slices.Sort(dnsGaps)
			b.ReportMetric(gaps[len(gaps)/2].Seconds(), "s-median-gap-"+f.Name)
			b.ReportMetric(gaps[len(gaps)-1].Seconds(), "s-worst-gap-"+f.Name)
			b.ReportMetric(dnsGaps[len(dnsGaps)/2].Seconds(), "s-median-dns-gap-"+f.Name)
			b.ReportMetric(dnsGaps[len(dnsGaps)-1].Seconds(), "s-worst-dns-gap-"+f.Name)
			b.Logf("%s: gaps %v; DNS gaps %v", f.Name, gaps, dnsGaps)
		}
	}
}

// clustersetName is what c1's pod resolves through the failover.
const clustersetName = "echo.default.svc.clusterset.local"

// failoverGap runs one trial of f and undoes it. It returns the longest
// gap in the ping's replies, and in the answers to clustersetName asked
// from c1 every 50 ms (the resolver's own rhythm, about 0.1 s, is the
// smallest gap it can see).
func failoverGap(b *testing.B, l drill.Lab, f drill.Fault, dst string) (traffic, dns time.Duration) {
	b.Helper()
	old, err := l.Active("c1")
	if err != nil {
		b.Fatal(err)
	}
	p, err := drill.StartPinger(l, "c2", "echo-2", dst)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Stop()
	r, err := drill.StartResolver(l, "c1", "echo-2", clustersetName)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Stop()
	poll.Until(b, 10*time.Second, "replies to the ping", p.Flowing)
	poll.Until(b, 60*time.Second, "answers for "+clustersetName, r.Answering)
	start := time.Now()
	if err := f.Inject(l, "c1", old); err != nil {
		b.Fatal(err)
	}
	poll.Until(b, 20*time.Second, "another gateway active, traffic flowing and DNS answering", func() error {
		if now, err := l.Active("c1"); err != nil || (now == old && f.Name != drill.Restart.Name) {
			return fmt.Errorf("the Lease holder is still %s (%w)", now, err)
		}
		return errors.Join(p.Flowing(), r.Answering())
	})
	traffic, dns = p.Gap(start), r.Gap(start)
	if err := f.Undo(l, "c1", old); err != nil {
		b.Fatal(err)
	}
	// Let the undone node settle as a standby before the next trial.
	poll.Until(b, 20*time.Second, "traffic flowing after the undo", p.Flowing)
	time.Sleep(2 * time.Second)
	return traffic, dns
}
