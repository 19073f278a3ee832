package proc

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestStartFindStop(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	// A process that ignores SIGTERM, so Stop must escalate to SIGKILL.
	p, err := Start("sleeper", "", filepath.Join(dir, "sleeper.log"), "bash", "-c", "trap '' TERM; sleep 30; : "+marker)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(0) })
	if !p.Alive() {
		t.Fatal("not alive after Start")
	}
	if found := Referring(dir, []string{"bash"}); !slices.Contains(found, p.PID) {
		t.Errorf("Referring(%s, bash) = %v, lacks %d", dir, found, p.PID)
	}
	// Not a program of the lab's, or not naming the folder: left alone.
	if found := Referring(dir, []string{"etcd"}); slices.Contains(found, p.PID) {
		t.Errorf("Referring(%s, etcd) lists the bash process %d", dir, p.PID)
	}
	if found := Referring(t.TempDir(), []string{"bash"}); slices.Contains(found, p.PID) {
		t.Errorf("Referring of another folder lists %d", p.PID)
	}
	start := time.Now()
	if err := p.Stop(200 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if p.Alive() {
		t.Fatal("alive after Stop")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Stop took %s", took)
	}
	// A recycled PID is not ours: a record with another start time is dead.
	self := &Process{PID: os.Getpid(), StartTicks: 1}
	if self.Alive() {
		t.Error("a PID with a different start time counts as alive")
	}
}
