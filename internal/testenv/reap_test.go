package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// standInEnv makes this test binary sleep instead of testing: it then stands
// in for a control-plane process.
const standInEnv = "WIRESPAN_TESTENV_STAND_IN"

func TestMain(m *testing.M) {
	if os.Getenv(standInEnv) != "" {
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestReapStopsWhatDeadOwnersLeft starts stand-ins for etcd (this binary,
// linked into an assets folder, with a --data-dir) owned by a test binary
// that has died, and by one that lives, and checks that reap stops and
// cleans up the first only.
func TestReapStopsWhatDeadOwnersLeft(t *testing.T) {
	root, assets := t.TempDir(), t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	etcd := filepath.Join(assets, "etcd")
	if err := os.Symlink(self, etcd); err != nil {
		t.Fatal(err)
	}
	start := func(dataDir string) *exec.Cmd {
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(etcd, "--data-dir="+dataDir)
		cmd.Env = append(os.Environ(), standInEnv+"=1")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	orphanDir, _ := os.MkdirTemp("", "wirespan-reap-test-")
	orphan := start(orphanDir)
	kept := start(filepath.Join(t.TempDir(), "kept"))

	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	ledger := ledgerDir(root)
	_ = os.MkdirAll(ledger, 0o755)
	write := func(owner int, pid int) {
		if err := os.WriteFile(filepath.Join(ledger, strconv.Itoa(owner)+".pids"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(dead.Process.Pid, orphan.Process.Pid)
	ownedDir := filepath.Join(ledger, strconv.Itoa(dead.Process.Pid)+"-123")
	if err := os.MkdirAll(ownedDir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(os.Getpid(), kept.Process.Pid)

	reap(root, assets)

	exited := make(chan error, 1)
	go func() { exited <- orphan.Wait() }()
	select {
	case err := <-exited:
		t.Logf("stand-in ended: %v", err) // killed, as it should be
	case <-time.After(5 * time.Second):
		t.Fatal("the dead owner's process is still running")
	}
	if _, err := os.Stat(orphanDir); !os.IsNotExist(err) {
		t.Errorf("the dead owner's data folder is still there: %v", err)
	}
	if _, err := os.Stat(ownedDir); !os.IsNotExist(err) {
		t.Errorf("the dead owner's kubeconfig folder is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(ledger, strconv.Itoa(dead.Process.Pid)+".pids")); !os.IsNotExist(err) {
		t.Error("the dead owner's record is still there")
	}
	if !runs(kept.Process.Pid, assets) {
		t.Error("reap stopped a process whose owner is alive")
	}
}
