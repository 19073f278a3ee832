// Package proc starts the lab's long-running processes detached from the
// command that started them, and finds and stops them again, also when the
// record of them is lost.
package proc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// Process is what the lab records about a process it started.
type Process struct {
	Name  string   `json:"name"`
	Netns string   `json:"netns,omitempty"`
	Args  []string `json:"args"`
	Log   string   `json:"log"`
	PID   int      `json:"pid"`
	// StartTicks is the kernel's start time of PID (field 22 of
	// /proc/PID/stat), so a recycled PID is never mistaken for ours.
	StartTicks uint64 `json:"startTicks"`
}

// Start runs args (in network namespace netns when set, through
// `ip netns exec`, which also applies /etc/netns/NETNS/) in a new session,
// with output appended to log. It returns once the process has started.
func Start(name, netns, log string, args ...string) (*Process, error) {
	argv := args
	if netns != "" {
		argv = append([]string{"ip", "netns", "exec", netns}, args...)
	}
	out, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	// Its own session: a Ctrl-C at the lab's terminal must not reach the
	// clusters, which live on until `down`.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, Netns: netns, Args: args, Log: log, PID: cmd.Process.Pid}
	p.StartTicks, _ = startTicks(p.PID)
	// Nobody waits for it later; reap it when it exits so it is not left a
	// zombie while the starting command still runs.
	go func() { _ = cmd.Wait() }()
	return p, nil
}

// Alive says whether the recorded process still runs: a thread of it has
// not exited yet.
func (p *Process) Alive() bool { return running(p.PID, p.StartTicks) }

// Stop sends SIGTERM, waits up to grace, then SIGKILLs, and returns once
// the process is gone (see Kill). It is a no-op for a process that is
// gone.
func (p *Process) Stop(grace time.Duration) error {
	if !p.Alive() {
		return nil
	}
	if err := Kill(p.PID, grace); err != nil {
		return fmt.Errorf("stop %s: %w", p.Name, err)
	}
	return nil
}

// killWait bounds the wait for a process to go after SIGKILL. It is long:
// a large process on a busy machine takes seconds to release its memory,
// and returning earlier lets a caller reuse its ports too soon.
const killWait = 30 * time.Second

// Kill stops pid: SIGTERM, then SIGKILL after grace. It returns once
// every thread of the process has exited, or an error if that takes
// longer than killWait after SIGKILL. The process may still be listed, as
// a zombie, until its parent reaps it (see WaitReaped).
func Kill(pid int, grace time.Duration) error {
	return stop(pid, &grace)
}

// Crash stops pid with SIGKILL alone, as a crash or the OOM killer would:
// the process gets no chance to clean up. It returns once every thread
// has exited.
func Crash(pid int) error { return stop(pid, nil) }

// stop sends SIGTERM and waits grace, unless grace is nil, then SIGKILL,
// and waits for the process to be gone.
func stop(pid int, grace *time.Duration) error {
	ticks, err := startTicks(pid)
	if err != nil {
		return nil // gone already
	}
	if grace != nil {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		if waitUntil(*grace, func() bool { return !running(pid, ticks) }) {
			return nil
		}
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if waitUntil(killWait, func() bool { return !running(pid, ticks) }) {
		return nil
	}
	return fmt.Errorf("pid %d still runs %s after SIGKILL", pid, killWait)
}

// ByPID is the running process pid, for Stop, or nil if there is none.
func ByPID(pid int) *Process {
	ticks, err := startTicks(pid)
	if err != nil {
		return nil
	}
	return &Process{Name: fmt.Sprintf("pid %d", pid), PID: pid, StartTicks: ticks}
}

// WaitReaped waits, up to d, until no process of ps is listed in /proc any
// more, running or as a zombie, and returns those still listed. The lab's
// long-running processes outlive the `up` that started them, so their
// parent is init, which reaps them; the init of this project's microVMs
// does so about once a second, and `down` returned while `ps` still
// listed etcd and the API servers, for a second or two.
func WaitReaped(ps []*Process, d time.Duration) []*Process {
	var left []*Process
	waitUntil(d, func() bool {
		left = slices.DeleteFunc(slices.Clone(ps), func(p *Process) bool { return !listed(p.PID, p.StartTicks) })
		return len(left) == 0
	})
	return left
}

// waitUntil polls done until it is true or d has passed; it says which.
func waitUntil(d time.Duration, done func() bool) bool {
	deadline := time.Now().Add(d)
	for !done() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// listed is true while /proc still lists the process that started at
// ticks, running or a zombie; a PID used again since is another process.
func listed(pid int, ticks uint64) bool {
	t, err := startTicks(pid)
	return err == nil && t == ticks
}

// running is true while the process that started at ticks has a thread
// that has not exited. The main thread alone is not enough: it turns
// zombie ("Z" in /proc/PID/stat) as soon as it exits, while the process's
// other threads may still be finishing (returning from a system call,
// releasing a large process's memory) and the process still holds its
// ports and files.
func running(pid int, ticks uint64) bool {
	if !listed(pid, ticks) {
		return false
	}
	tasks, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
	if err != nil {
		return false
	}
	for _, t := range tasks {
		state, err := taskState(pid, t.Name())
		if err == nil && state != "Z" && state != "X" {
			return true
		}
	}
	return false
}

// Referring lists the processes running one of programs (by executable
// name) whose command line mentions dir: every process the lab starts is
// given a path inside its state folder, so this finds them even when the
// lab's record of them is lost. This process and its ancestors are never
// listed.
func Referring(dir string, programs []string) []int {
	var pids []int
	skip := ancestors()
	for _, pid := range all() {
		if skip[pid] {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		if err != nil {
			continue
		}
		argv := strings.Split(string(raw), "\x00")
		if slices.Contains(programs, filepath.Base(argv[0])) && strings.Contains(string(raw), dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ancestors are this process and its parents up to init.
func ancestors() map[int]bool {
	seen := map[int]bool{}
	for pid := os.Getpid(); pid > 1 && !seen[pid]; {
		seen[pid] = true
		f, err := stat(pid)
		if err != nil || len(f) < 2 {
			break
		}
		// Field 4 of stat is the parent; f starts at field 3.
		if pid, err = strconv.Atoi(f[1]); err != nil {
			break
		}
	}
	return seen
}

// InNetns lists the processes whose network namespace is the named one.
func InNetns(name string) []int {
	var ns syscall.Stat_t
	if err := syscall.Stat(filepath.Join("/var/run/netns", name), &ns); err != nil {
		return nil
	}
	var pids []int
	for _, pid := range all() {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join("/proc", strconv.Itoa(pid), "ns", "net"), &st); err == nil &&
			st.Ino == ns.Ino && st.Dev == ns.Dev {
			pids = append(pids, pid)
		}
	}
	return pids
}

func all() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// stat returns the fields of /proc/PID/stat after the command name, which
// may itself hold spaces and parentheses.
func stat(pid int) ([]string, error) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil, err
	}
	return statFields(raw)
}

// statFields splits a stat file after the command name.
func statFields(raw []byte) ([]string, error) {
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, errors.New("malformed stat")
	}
	return strings.Fields(s[i+1:]), nil
}

// taskState is the state letter of one thread of pid.
func taskState(pid int, tid string) (string, error) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", tid, "stat"))
	if err != nil {
		return "", err
	}
	f, err := statFields(raw)
	if err != nil || len(f) < 1 {
		return "", errors.Join(errors.New("short stat"), err)
	}
	return f[0], nil
}

func startTicks(pid int) (uint64, error) {
	f, err := stat(pid)
	if err != nil {
		return 0, err
	}
	// Field 22 of stat is starttime; f starts at field 3.
	if len(f) < 20 {
		return 0, errors.New("short stat")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// InNamespace runs f on an OS thread switched into the named network
// namespace (made by `ip netns add`). Sockets f opens stay in that
// namespace. The thread is switched back afterwards, or thrown away if it
// cannot be.
func InNamespace(name string, f func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("current network namespace: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(name)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("network namespace %s: %w", name, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace %s: %w", name, err)
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: Go ends it when this goroutine exits,
		// so no other goroutine runs in the wrong namespace.
		return errors.Join(ferr, fmt.Errorf("return from network namespace %s: %w", name, err))
	}
	runtime.UnlockOSThread()
	return ferr
}
