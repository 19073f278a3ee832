package lab

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/wirespan/wirespan/internal/testenv"
	"github.com/wirespan/wirespan/test/internal/lab/plan"
)

// benchInstance keeps the benchmark's lab apart from a user's (0) and the
// e2e suite's (1..3).
const benchInstance = 4

// BenchmarkUpThreeClusters times `up` of a three-cluster lab (the budget:
// under 60 s and 3 GiB resident) and reports its resident memory. The
// reference, in the same run, is the control plane every Go operator test
// starts: one etcd and one kube-apiserver from envtest, to ready.
func BenchmarkUpThreeClusters(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("the lab needs root")
	}
	ctrllog.SetLogger(logr.Discard()) // envtest's reference logs nothing we read
	root, err := testenv.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	bins := DefaultBins(root)
	tmp := b.TempDir()
	bins.Operator = filepath.Join(tmp, "wirespan-operator")
	bins.Lab = filepath.Join(tmp, "wirespan-lab")
	for pkg, out := range map[string]string{"./operator": bins.Operator, "./test/lab": bins.Lab} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("build %s: %v\n%s", pkg, err, out)
		}
	}
	l := &Lab{Dir: filepath.Join(tmp, "lab"), Bins: bins, Out: io.Discard}
	cfg := plan.Config{Instance: benchInstance, Clusters: 3, Nodes: 2, Gateways: 1, NAT: "c3"}

	var up, ref time.Duration
	var rssMiB float64
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if err := l.Up(context.Background(), cfg, false); err != nil {
			b.Fatal(err)
		}
		up += time.Since(start)
		rssMiB += residentMiB(b, l)
		if err := l.Down(); err != nil {
			b.Fatal(err)
		}

		start = time.Now()
		env, err := testenv.Start(testenv.Options{})
		if err != nil {
			b.Fatal(err)
		}
		ref += time.Since(start)
		if err := env.Stop(); err != nil {
			b.Fatal(err)
		}
	}
	n := float64(b.N)
	b.ReportMetric(up.Seconds()/n, "s/up")
	b.ReportMetric(rssMiB/n, "MiB-resident")
	b.ReportMetric(ref.Seconds()/n, "s/ref-envtest-start")
	b.ReportMetric(0, "ns/op")
}

// residentMiB sums the resident memory of the lab's processes.
func residentMiB(b *testing.B, l *Lab) float64 {
	s, err := l.Status()
	if err != nil {
		b.Fatal(err)
	}
	var kb float64
	for _, p := range s.Processes {
		raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.PID), "status"))
		if err != nil {
			b.Fatalf("%s: %v", p.Name, err)
		}
		for line := range strings.Lines(string(raw)) {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				v, _ := strconv.ParseFloat(f[1], 64)
				kb += v
			}
		}
	}
	return kb / 1024
}
