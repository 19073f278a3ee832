package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A test binary killed outright (SIGKILL, a `go test -timeout` panic) cannot
// stop its etcd and kube-apiserver. So each test binary records the control
// plane processes it started in a file named after its own PID, and every
// Start first stops the processes recorded by owners that are gone, and
// removes their data folders. Owners still alive (other test packages running
// in parallel) are left alone.

// ledgerDir holds one file per live owner: <owner pid>.pids.
func ledgerDir(root string) string { return filepath.Join(root, ".cache", "testenv") }

// record writes down the control-plane processes this test binary started:
// its children running one of the binaries in assets.
func record(root, assets string) error {
	dir := ledgerDir(root)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var lines []string
	for _, pid := range childrenRunning(os.Getpid(), assets) {
		lines = append(lines, strconv.Itoa(pid))
	}
	return os.WriteFile(filepath.Join(dir, strconv.Itoa(os.Getpid())+".pids"), []byte(strings.Join(lines, "\n")), 0o644)
}

// forget removes this test binary's record after a clean stop.
func forget(root string) {
	_ = os.Remove(filepath.Join(ledgerDir(root), strconv.Itoa(os.Getpid())+".pids"))
}

// reap stops what dead owners left behind and says what it did.
func reap(root, assets string) {
	files, _ := filepath.Glob(filepath.Join(ledgerDir(root), "*.pids"))
	var killed []int
	var dirs []string
	for _, f := range files {
		owner, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(f), ".pids"))
		if err != nil || alive(owner) {
			continue
		}
		raw, _ := os.ReadFile(f)
		for _, field := range strings.Fields(string(raw)) {
			pid, err := strconv.Atoi(field)
			// Only a process still running one of our binaries: the PID may
			// have been reused by something else since.
			if err != nil || !runs(pid, assets) {
				continue
			}
			dirs = append(dirs, dataDirs(pid)...)
			fmt.Fprintf(os.Stderr, "testenv: stopping control-plane process %d left by dead test binary %d\n", pid, owner)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			killed = append(killed, pid)
		}
		_ = os.Remove(f)
		owned, _ := filepath.Glob(filepath.Join(ledgerDir(root), strconv.Itoa(owner)+"-*"))
		dirs = append(dirs, owned...)
	}
	// The folders go once their processes have stopped writing to them.
	for _, pid := range killed {
		for i := 0; i < 100 && runs(pid, assets); i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// runs reports whether pid's executable lies in dir.
func runs(pid int, dir string) bool {
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	exe, _, _ := strings.Cut(string(cmd), "\x00")
	return filepath.Dir(exe) == filepath.Clean(dir)
}

// childrenRunning lists the children of parent that run a binary from dir.
func childrenRunning(parent int, dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || ppid(pid) != parent || !runs(pid, dir) {
			continue
		}
		out = append(out, pid)
	}
	return out
}

func ppid(pid int) int {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state, ppid, ...
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 2 {
		return -1
	}
	n, _ := strconv.Atoi(fields[1])
	return n
}

// dataDirs finds the temporary folders envtest gave a process, from its
// flags: etcd's --data-dir, kube-apiserver's --cert-dir.
func dataDirs(pid int) []string {
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil
	}
	var out []string
	for _, arg := range strings.Split(string(cmd), "\x00") {
		for _, flag := range []string{"--data-dir=", "--cert-dir="} {
			if dir, ok := strings.CutPrefix(arg, flag); ok && strings.HasPrefix(dir, os.TempDir()) {
				out = append(out, dir)
			}
		}
	}
	return out
}
