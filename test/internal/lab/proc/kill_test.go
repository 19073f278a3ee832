package proc

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// helperEnv makes the test binary run as lingerMain instead of the tests.
const helperEnv = "WIRESPAN_PROC_TEST_LINGER"

// lingerFor is how long the helper's second thread outlives its main one.
const lingerFor = time.Second

func init() {
	// The helper's main goroutine must run on the process's main thread,
	// whose exit turns the process's leader into a zombie. (LockOSThread
	// in init keeps main, and so TestMain, on the main thread.)
	if os.Getenv(helperEnv) != "" {
		runtime.LockOSThread()
	}
}

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		lingerMain()
	}
	os.Exit(m.Run())
}

// lingerMain is a process whose main thread exits on SIGTERM while another
// thread lives on for lingerFor, as the threads of a large process do
// while they finish exiting; then the whole process exits. After SIGTERM
// it uses raw system calls only: the Go scheduler cannot be relied on
// once the main thread, and the P it holds, are gone.
func lingerMain() {
	debug.SetGCPercent(-1)
	runtime.GOMAXPROCS(4)
	var fds [2]int
	if err := syscall.Pipe(fds[:]); err != nil {
		os.Exit(2)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	started := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		close(started)
		var b [1]byte
		_, _, _ = syscall.RawSyscall(syscall.SYS_READ, uintptr(fds[0]), uintptr(unsafe.Pointer(&b[0])), 1)
		// The runtime's preemption signals interrupt the sleep: go on
		// with what is left.
		ts := syscall.NsecToTimespec(int64(lingerFor))
		for {
			_, _, errno := syscall.RawSyscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), uintptr(unsafe.Pointer(&ts)), 0)
			if errno != syscall.EINTR {
				break
			}
		}
		_, _, _ = syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	}()
	<-started
	fmt.Println("ready")
	<-sigs
	b := []byte{1}
	_, _, _ = syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fds[1]), uintptr(unsafe.Pointer(&b[0])), 1)
	_, _, _ = syscall.RawSyscall(syscall.SYS_EXIT, 0, 0, 0) // this thread only
}

// Kill returns only when every thread of the process is gone, not when
// its main thread is a zombie. `wirespan-lab down` said "Stopped 21
// processes" while etcd and two API servers ran for two more seconds.
func TestKillWaitsForEveryThread(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || strings.TrimSpace(line) != "ready" {
		_ = cmd.Process.Kill()
		t.Fatalf("helper said %q, %v", line, err)
	}
	// Reap it once it has exited (Kill does not wait for that).
	waited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(waited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-waited })
	pid := cmd.Process.Pid

	// Watch for the state that fooled the old check: the main thread a
	// zombie, another thread still running.
	sawZombieLeader := make(chan bool, 1)
	stop := make(chan struct{})
	go func() {
		seen := false
		for {
			select {
			case <-stop:
				sawZombieLeader <- seen
				return
			default:
			}
			tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
			if f, err := stat(pid); err == nil && f[0] == "Z" && len(tasks) > 1 {
				seen = true
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	start := time.Now()
	if err := Kill(pid, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	close(stop)
	if !<-sawZombieLeader {
		t.Fatal("the helper's main thread was never seen a zombie while another thread ran: the test did not exercise the case")
	}
	if took < lingerFor-100*time.Millisecond {
		t.Errorf("Kill returned after %s, while the process ran %s", took, lingerFor)
	}
	if took > 5*time.Second {
		t.Errorf("Kill took %s: it sent SIGKILL, but the process exits on SIGTERM within %s", took, lingerFor)
	}
	t.Logf("Kill returned after %s", took.Round(time.Millisecond))
}

// WaitReaped returns only once the stopped process's parent has reaped
// it. The lab's processes are init's children once `up` has exited, and
// the init of this project's microVMs reaps about once a second: `down`
// returned while `ps` still listed etcd and the API servers, for a second
// or two.
func TestWaitReapedWaitsForTheReaper(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	p := ByPID(cmd.Process.Pid)
	if p == nil {
		t.Fatal("ByPID found no process")
	}
	const reapAfter = 500 * time.Millisecond
	reaping := make(chan time.Time, 1)
	go func() {
		// A slow init: reap only reapAfter after the process exited.
		for p.Alive() {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(reapAfter)
		reaping <- time.Now()
		_ = cmd.Wait()
	}()
	start := time.Now()
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if left := WaitReaped([]*Process{p}, 5*time.Second); len(left) != 0 {
		t.Fatalf("still listed after 5 s: %v", left)
	}
	returned := time.Now()
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", p.PID)); err == nil {
		t.Errorf("/proc/%d is still there", p.PID)
	}
	select {
	case at := <-reaping:
		if returned.Before(at) {
			t.Errorf("WaitReaped returned %s before the reaper started", at.Sub(returned))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the reaper never ran")
	}
	t.Logf("stopped and reaped after %s", returned.Sub(start).Round(time.Millisecond))
}
