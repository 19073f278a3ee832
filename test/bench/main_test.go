// Package bench measures Wirespan's data plane on the lab: cross-cluster
// throughput next to a standalone wireguard-go tunnel and plain veth, the
// time from applying the ClusterPeer folder to the first cross-cluster ping,
// and the time from a new node's podCIDR to traffic flowing to it. Run with
// `make bench`; it needs root, like the lab.
package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wirespan/wirespan/internal/testenv"
)

const clusters = "2"

// instance is the benchmarks' lab: 4, or $WIRESPAN_BENCH_INSTANCE, so that
// two runs on one machine (two worktrees sharing .cache) do not take down
// each other's lab.
var instance = cmp.Or(os.Getenv("WIRESPAN_BENCH_INSTANCE"), "4")

var (
	repo, binDir, labDir string
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		// `make test` runs this package too; without -bench there is
		// nothing to build a lab for.
		return m.Run()
	}
	if os.Geteuid() != 0 {
		fmt.Println("bench: skipped: the lab needs root")
		return 0
	}
	var err error
	if repo, err = testenv.RepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "wirespan-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	binDir = tmp
	for pkg, name := range map[string]string{"./test/lab": "wirespan-lab", "./operator": "wirespan-operator",
		"./gateway": "wirespan-gateway", "golang.zx2c4.com/wireguard": "wireguard-go"} {
		build := exec.Command("go", "build", "-o", filepath.Join(tmp, name), pkg)
		build.Dir, build.Stderr = repo, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: build %s: %v\n", pkg, err)
			return 1
		}
	}
	labDir = filepath.Join(repo, ".cache", "bench-lab")
	if instance != "4" {
		labDir += "-" + instance
	}
	cleanup := func() {
		_, _ = lab("down")
		removeStandalone()
	}
	cleanup()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		cleanup()
		_ = os.RemoveAll(tmp)
		os.Exit(1)
	}()
	defer cleanup()
	return m.Run()
}

// lab runs wirespan-lab on the benchmark's own lab instance.
func lab(args ...string) (string, error) {
	argv := append([]string{args[0], "--state-dir", labDir, "--instance", instance, "--bin-dir", binDir}, args[1:]...)
	out, err := exec.Command(filepath.Join(binDir, "wirespan-lab"), argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("wirespan-lab %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// labStatus is the part of `status --json` the benchmarks read.
type labStatus struct {
	ClusterPeersDir string `json:"clusterPeersDir"`
	Clusters        []struct {
		Name       string   `json:"name"`
		Kubeconfig string   `json:"kubeconfig"`
		ClusterDNS string   `json:"clusterDNS"`
		PodCIDRs   []string `json:"podCIDRs"`
		Nodes      []struct {
			Name  string `json:"name"`
			Netns string `json:"netns"`
			// WireGuard is the device's name while the node is active.
			WireGuard string `json:"wireGuard"`
		} `json:"nodes"`
		Pods []struct {
			Name string `json:"name"`
			IP   string `json:"ip"`
			// IPs are of each family of the cluster, primary first.
			IPs   []string `json:"ips"`
			Netns string   `json:"netns"`
		} `json:"pods"`
	} `json:"clusters"`
	Processes []labProcess `json:"processes"`
}

// labProcess is a process the lab started.
type labProcess struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
}

// freshLab brings up a new lab, not yet peered: two clusters, or as the
// `wirespan-lab up` flags upArgs say.
func freshLab(b *testing.B, upArgs ...string) *labStatus {
	b.Helper()
	_, _ = lab("down")
	if len(upArgs) == 0 {
		upArgs = []string{"--clusters", clusters}
	}
	if out, err := lab(append([]string{"up"}, upArgs...)...); err != nil {
		b.Fatal(err, out)
	}
	b.Cleanup(func() { _, _ = lab("down") })
	out, err := lab("status", "--json")
	if err != nil {
		b.Fatal(err)
	}
	var st labStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		b.Fatal(err)
	}
	return &st
}

// firstReply starts a fast ping from a namespace and returns a function
// that waits for its first answer and says when it came.
func firstReply(netns, target string, limit time.Duration) (func() (time.Time, error), error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", netns, "ping", "-D", "-n", "-i", "0.01", "-W", "0.2", target)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, err
	}
	return func() (time.Time, error) {
		defer cancel()
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		buf := make([]byte, 0, 4096)
		chunk := make([]byte, 1024)
		for {
			n, err := stdout.Read(chunk)
			buf = append(buf, chunk[:n]...)
			for _, line := range strings.Split(string(buf), "\n") {
				// [1763706000.123456] 64 bytes from 10.2.0.10: ...
				if strings.Contains(line, "bytes from") && strings.HasPrefix(line, "[") {
					var sec, usec int64
					if _, err := fmt.Sscanf(line, "[%d.%d]", &sec, &usec); err == nil {
						return time.Unix(sec, usec*1000), nil
					}
				}
			}
			if err != nil {
				return time.Time{}, errors.Join(fmt.Errorf("no answer from %s within %s", target, limit), err)
			}
		}
	}, nil
}
