package linux

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
)

// These tests need root: they create network namespaces (named wstest-*),
// links, userspace WireGuard devices (named wst*, with sockets in
// /var/run/wireguard) and nftables tables, all inside namespaces they make
// and remove. TestMain checks that none is left behind.

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

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, links, TUN devices and nftables tables")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip tool (iproute2)")
	}
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
func newNS(t *testing.T) string {
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

// newKernel returns a userspace-mode Kernel for ns, closed when the test
// ends (before ns is deleted).
func newKernel(t *testing.T, ns string) *Kernel {
	t.Helper()
	k, err := New(Options{NetNS: ns, WireGuardMode: WireGuardUserspace, Log: testLogger(t)})
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
func testLogger(t *testing.T) logr.Logger {
	var done atomic.Bool
	t.Cleanup(func() { done.Store(true) })
	return funcr.New(func(prefix, args string) {
		if !done.Load() {
			t.Log(prefix, args)
		}
	}, funcr.Options{})
}

// run runs a command and fails the test if it fails; it returns stdout.
func run(t *testing.T, name string, args ...string) string {
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
func inNS(t *testing.T, ns string, args ...string) string {
	t.Helper()
	return run(t, "ip", append([]string{"netns", "exec", ns}, args...)...)
}
