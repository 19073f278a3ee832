// Package vm is the VM test tier: suites that need a kernel with WireGuard,
// which the project's machines (and many CI runners) lack, run in a qemu
// guest booting Debian's kernel (test/internal/vm, hack/vm.sh). Each test
// boots one guest, runs a static test binary built here in it, streams its
// output and fails on a non-zero exit or a guest timeout.
//
// `make test` runs this package; `-short` skips it. Without qemu or
// Debian's apt, the tests skip with the reason, unless
// WIRESPAN_REQUIRE_PRIVILEGED=1 (set by the Makefile) makes that a failure.
package vm

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wirespan/wirespan/internal/testenv"
	"github.com/wirespan/wirespan/internal/testreq"
	"github.com/wirespan/wirespan/test/internal/vm"
)

var (
	// image and accel are the prepared guest and how to run it; nil and
	// empty with skipReason set when the guest cannot run here.
	image      *vm.Image
	accel      string
	skipReason string
	// scratch is this process's folder for the guest: the static test
	// binaries built for it (bins) and each test's work folder.
	scratch, bins string
	// rootCtx ends on SIGINT or SIGTERM, which kills running guests so
	// that the tests' cleanups still run.
	rootCtx context.Context
)

// guestBinaries are the test binaries the guest runs, by package.
var guestBinaries = map[string]string{
	"linux.test": "./gateway/internal/dataplane/linux",
}

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("vm: skipped with -short (boots a kernel under qemu)")
		os.Exit(0)
	}
	var stop context.CancelFunc
	rootCtx, stop = signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(m)
	stop()
	os.Exit(code)
}

func run(m *testing.M) int {
	repo, err := testenv.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vm:", err)
		return 1
	}
	if skipReason = missingTools(); skipReason == "" {
		removeStaleScratch()
		scratch = filepath.Join(os.TempDir(), fmt.Sprintf("wirespan-vm-%d", os.Getpid()))
		defer os.RemoveAll(scratch)
		if err := setup(repo); err != nil {
			fmt.Fprintln(os.Stderr, "vm:", err)
			return 1
		}
	}
	return m.Run()
}

// missingTools says what the guest needs that this machine lacks.
func missingTools() string {
	for _, tool := range []string{"qemu-system-x86_64", "apt-get", "dpkg-deb", "depmod", "cpio", "busybox"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("%s is missing (run `make deps`: qemu-system-x86, kmod, cpio, busybox-static, on Debian)", tool)
		}
	}
	return ""
}

// setup prepares the guest, probes for KVM and builds the test binaries.
func setup(repo string) error {
	start := time.Now()
	var err error
	if image, err = vm.Prepare(repo); err != nil {
		return err
	}
	fmt.Printf("vm: guest kernel %s ready in %v\n", image.Kernel, time.Since(start).Round(time.Millisecond))
	var why string
	if accel, why, err = image.ProbeAccel(rootCtx); err != nil {
		return err
	}
	fmt.Printf("vm: accelerator %s: %s\n", accel, why)
	bins = filepath.Join(scratch, "bins")
	if err := os.MkdirAll(bins, 0o755); err != nil {
		return err
	}
	start = time.Now()
	for name, pkg := range guestBinaries {
		// Static, so the guest needs no libc of a particular version.
		cmd := exec.Command("go", "test", "-c", "-o", filepath.Join(bins, name), pkg)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %w: %s", pkg, err, out)
		}
	}
	fmt.Printf("vm: test binaries built in %v\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// needGuest skips the test, or fails it under WIRESPAN_REQUIRE_PRIVILEGED=1,
// when no guest can run here.
func needGuest(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		testreq.CannotRun(t, testreq.Privileged, skipReason)
	}
}

// runGuest boots a guest that runs script from a folder holding the test
// binaries, logs its console and returns the script's exit status.
func runGuest(t testing.TB, script string, timeout time.Duration) int {
	t.Helper()
	work, err := os.MkdirTemp(scratch, "work-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(work) })
	status, err := bootGuest(t, work, script, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return status
}

// bootGuest is runGuest with the work folder given and the error returned.
func bootGuest(t testing.TB, work, script string, timeout time.Duration) (int, error) {
	t.Helper()
	for name := range guestBinaries {
		if err := os.Link(filepath.Join(bins, name), filepath.Join(work, name)); err != nil {
			return 0, fmt.Errorf("share %s with the guest: %w", name, err)
		}
	}
	ctx, cancel := context.WithTimeoutCause(rootCtx, timeout, fmt.Errorf("guest timeout (%v)", timeout))
	defer cancel()
	start := time.Now()
	status, err := image.Run(ctx, vm.RunOptions{Work: work, Script: script, Console: logWriter{t}, Accel: accel})
	t.Logf("guest ran for %v (%s)", time.Since(start).Round(time.Millisecond), accel)
	return status, err
}

// removeStaleScratch removes the scratch folders of test processes that
// are gone: one killed outright (SIGKILL) cannot remove its own. Its qemu
// died with it (Pdeathsig).
func removeStaleScratch() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "wirespan-vm-[0-9]*"))
	for _, dir := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(dir), "wirespan-vm-"))
		if err != nil || syscall.Kill(pid, 0) == nil {
			continue
		}
		fmt.Printf("vm: removing %s, left by process %d, which is gone\n", dir, pid)
		_ = os.RemoveAll(dir)
	}
}

// logWriter logs each line written to it on t; with -v, as it comes.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
