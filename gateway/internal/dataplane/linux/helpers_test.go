package linux

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	"github.com/wirespan/wirespan/internal/testreq"
)

// These tests need root: they create network namespaces (named wstest-*),
// links, WireGuard devices (named wst*; userspace ones have sockets in
// /var/run/wireguard) and nftables tables, all inside namespaces they make
// and remove. TestMain checks that none is left behind.
//
// Environment (the VM tier, test/vm, sets all three in its guest):
//   - WIRESPAN_WIREGUARD_MODE=kernel runs the tunnel tests with kernel
//     WireGuard instead of the embedded userspace device (the default: the
//     project's machines have no WireGuard module).
//   - WIRESPAN_REQUIRE_KERNEL_WIREGUARD=1 makes the tests that need kernel
//     WireGuard fail instead of skipping where the kernel has none.
//   - WIRESPAN_REQUIRE_PRIVILEGED=1 (the Makefile sets it for `make test`)
//     makes the tests fail instead of skipping without root or ip.

const (
	nsPrefix  = "wstest-"
	devPrefix = "wst"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperMain(mode))
	}
	_, dirErr := os.Stat(socketDir)
	code := m.Run()
	if os.Geteuid() == 0 {
		if left := leftovers(); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "left behind by the tests: %s\n", strings.Join(left, ", "))
			code = 1
		}
		if dirErr != nil {
			// The tests made the socket directory; remove it if empty.
			_ = os.Remove(socketDir)
		}
	}
	os.Exit(code)
}

// leftovers lists test namespaces and sockets that still exist.
func leftovers() []string {
	var left []string
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], nsPrefix) {
				left = append(left, "netns "+f[0])
			}
		}
	}
	socks, _ := filepath.Glob(filepath.Join(socketDir, devPrefix+"*.sock"))
	left = append(left, socks...)
	return left
}

const modeEnv = "WIRESPAN_WIREGUARD_MODE"

// testMode is the WireGuard implementation the tunnel tests use: userspace
// unless WIRESPAN_WIREGUARD_MODE says otherwise.
func testMode() WireGuardMode {
	if m := WireGuardMode(os.Getenv(modeEnv)); m != "" {
		return m
	}
	return WireGuardUserspace
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		testreq.CannotRun(t, testreq.Privileged, "needs root: creates network namespaces, links, TUN devices and nftables tables")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		testreq.CannotRun(t, testreq.Privileged, "needs the ip tool (iproute2)")
	}
}

var kernelWG struct {
	once sync.Once
	err  error
}

// requireKernelWireGuard skips the test (or fails it, under
// WIRESPAN_REQUIRE_KERNEL_WIREGUARD=1) when this kernel cannot create a
// wireguard link.
func requireKernelWireGuard(t testing.TB) {
	t.Helper()
	if err := kernelWireGuard(t); err != nil {
		testreq.CannotRun(t, testreq.KernelWireGuard, fmt.Sprintf("needs kernel WireGuard, which this kernel lacks: %v", err))
	}
}

// kernelWireGuard tries, once, to create a wireguard link in a throwaway
// namespace.
func kernelWireGuard(t testing.TB) error {
	kernelWG.once.Do(func() {
		ns := nsPrefix + randomHex(4)
		if _, err := runErr("ip", "netns", "add", ns); err != nil {
			kernelWG.err = err
			return
		}
		defer func() { _, _ = runErr("ip", "netns", "del", ns) }()
		_, kernelWG.err = runErr("ip", "netns", "exec", ns, "ip", "link", "add", "wgprobe", "type", "wireguard")
	})
	return kernelWG.err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// devName returns a WireGuard device name unique on the machine: UAPI
// sockets are not per namespace.
func devName() string { return devPrefix + randomHex(4) }

// newNS creates a throwaway network namespace, with lo up, that is deleted
// (with everything in it) when the test ends.
func newNS(t testing.TB) string {
	t.Helper()
	name := nsPrefix + randomHex(4)
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("delete netns %s: %v: %s", name, err, out)
		}
	})
	inNS(t, name, "ip", "link", "set", "lo", "up")
	return name
}

// newKernel returns a Kernel in the tests' mode (testMode) for ns, closed
// when the test ends (before ns is deleted).
func newKernel(t testing.TB, ns string) *Kernel {
	t.Helper()
	return newKernelMode(t, ns, testMode())
}

// newKernelMode is newKernel with the given WireGuard mode.
func newKernelMode(t testing.TB, ns string, mode WireGuardMode) *Kernel {
	t.Helper()
	k, err := New(Options{NetNS: ns, WireGuardMode: mode, Log: testLogger(t)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := k.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return k
}

// testLogger logs to t until the test's cleanups have run; wireguard-go's
// goroutines may log a little after their device closed.
func testLogger(t testing.TB) logr.Logger {
	var done atomic.Bool
	t.Cleanup(func() { done.Store(true) })
	return funcr.New(func(prefix, args string) {
		if !done.Load() {
			t.Log(prefix, args)
		}
	}, funcr.Options{})
}

// run runs a command and fails the test if it fails; it returns stdout.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// runErr runs a command and returns its combined output and error.
func runErr(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// inNS runs a command in namespace ns.
func inNS(t testing.TB, ns string, args ...string) string {
	t.Helper()
	return run(t, "ip", append([]string{"netns", "exec", ns}, args...)...)
}
