package vm

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wirespan/wirespan/internal/testreq"
)

// benchLine matches a result line of BenchmarkTunnelThroughput.
var benchLine = regexp.MustCompile(`BenchmarkTunnelThroughput/(kernel|userspace)\S*\s+\d+\s+\S+ ns/op\s+(\S+) Mbit/s`)

// BenchmarkKernelVsUserspace runs dataplane/linux's BenchmarkTunnelThroughput
// in one guest: TCP through kernel WireGuard and through the embedded
// userspace device, between the same kind of namespaces on the same
// (emulated) CPUs. Under software emulation the absolute figures are far
// below real hardware's; the ratio is the figure to read.
func BenchmarkKernelVsUserspace(b *testing.B) {
	if skipReason != "" {
		testreq.CannotRun(b, testreq.Privileged, skipReason)
	}
	script := `set -e
export WIRESPAN_REQUIRE_KERNEL_WIREGUARD=1 WIRESPAN_REQUIRE_PRIVILEGED=1
/work/linux.test -test.run '^$' -test.bench 'BenchmarkTunnelThroughput' -test.benchtime 5x -test.timeout=8m
`
	var kernel, userspace float64
	for range b.N {
		var console strings.Builder
		status := runGuest(teeTB{b, &console}, script, 10*time.Minute)
		if status != 0 {
			b.Fatalf("the benchmark failed in the guest (exit status %d)", status)
		}
		got := map[string]float64{}
		for _, m := range benchLine.FindAllStringSubmatch(console.String(), -1) {
			got[m[1]], _ = strconv.ParseFloat(m[2], 64)
		}
		if got["kernel"] == 0 || got["userspace"] == 0 {
			b.Fatalf("no throughput figures in the guest's output: %v", got)
		}
		kernel += got["kernel"]
		userspace += got["userspace"]
	}
	b.ReportMetric(kernel/float64(b.N), "kernel-Mbit/s")
	b.ReportMetric(userspace/float64(b.N), "userspace-Mbit/s")
	b.ReportMetric(kernel/userspace, "kernel/userspace")
}

// teeTB is a testing.TB whose Log also writes to w, so the guest's output
// can be read back.
type teeTB struct {
	testing.TB
	w *strings.Builder
}

func (t teeTB) Log(args ...any) {
	t.Helper()
	t.TB.Log(args...)
	for _, a := range args {
		if s, ok := a.(string); ok {
			t.w.WriteString(s + "\n")
		}
	}
}
