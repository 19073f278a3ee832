package bench

import (
	"fmt"
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
// drill, failoverTrials times each, and reports the median and the worst.
// The reference, measured in the same run, is the active gateway's
// process killed and started again at once, which keeps the role.
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
	b.ResetTimer()
	for range b.N {
		for _, f := range append([]drill.Fault{drill.Restart}, drill.Faults...) {
			var gaps []time.Duration
			for range failoverTrials {
				gaps = append(gaps, failoverGap(b, l, f, dst))
			}
			slices.Sort(gaps)
			b.ReportMetric(gaps[len(gaps)/2].Seconds(), "s-median-gap-"+f.Name)
			b.ReportMetric(gaps[len(gaps)-1].Seconds(), "s-worst-gap-"+f.Name)
			b.Logf("%s: gaps %v", f.Name, gaps)
		}
	}
}

// failoverGap runs one trial of f and undoes it.
func failoverGap(b *testing.B, l drill.Lab, f drill.Fault, dst string) time.Duration {
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
	poll.Until(b, 10*time.Second, "replies to the ping", p.Flowing)
	start := time.Now()
	if err := f.Inject(l, "c1", old); err != nil {
		b.Fatal(err)
	}
	poll.Until(b, 20*time.Second, "another gateway active and traffic flowing", func() error {
		if now, err := l.Active("c1"); err != nil || (now == old && f.Name != drill.Restart.Name) {
			return fmt.Errorf("the Lease holder is still %s (%w)", now, err)
		}
		return p.Flowing()
	})
	gap := p.Gap(start)
	if err := f.Undo(l, "c1", old); err != nil {
		b.Fatal(err)
	}
	// Let the undone node settle as a standby before the next trial.
	poll.Until(b, 20*time.Second, "traffic flowing after the undo", p.Flowing)
	time.Sleep(2 * time.Second)
	return gap
}
