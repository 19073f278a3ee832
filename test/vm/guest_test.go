package vm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGuestTimeoutKillsQemu checks the guard every guest run relies on: a
// guest still running at its deadline is killed, with an error that says
// so, and leaves no qemu process behind.
func TestGuestTimeoutKillsQemu(t *testing.T) {
	needGuest(t)
	work, err := os.MkdirTemp(scratch, "work-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(work) })
	_, err = bootGuest(t, work, "sleep 600\n", 20*time.Second)
	if err == nil || !strings.Contains(err.Error(), "guest timeout") {
		t.Fatalf("a guest past its deadline: %v, want a guest timeout error", err)
	}
	if pids := qemuUsing(t, work); len(pids) > 0 {
		t.Errorf("qemu still running for %s after the timeout: pids %v", work, pids)
	}
}

// qemuUsing lists the processes whose command line names dir.
func qemuUsing(t *testing.T, dir string) []string {
	t.Helper()
	cmdlines, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, f := range cmdlines {
		b, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(b), dir) && strings.Contains(string(b), "qemu") {
			pids = append(pids, filepath.Base(filepath.Dir(f)))
		}
	}
	return pids
}
