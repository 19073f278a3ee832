package vm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// RunOptions say what the guest runs and with what.
type RunOptions struct {
	// Work is the host folder the guest sees as /work. It must exist; Run
	// writes the script there as `run`, and the guest writes
	// `exit-status`.
	Work string
	// Script is the shell script the guest runs (under the host's /bin/sh,
	// with PATH the host's /usr/sbin and /usr/bin, from /work).
	Script string
	// Console receives everything the guest prints, line by line, without
	// carriage returns.
	Console io.Writer
	// Accel is "kvm" or "tcg"; see ProbeAccel.
	Accel string
	// MemoryMiB and CPUs size the guest; zero means 1024 and 2.
	MemoryMiB, CPUs int
}

// Run boots the guest, runs opts.Script in it and returns the script's exit
// status. It returns an error, and kills qemu, when ctx ends first (a guest
// timeout), when qemu fails, or when the guest powered off without an exit
// status (its /init failed: the console says why).
func (img *Image) Run(ctx context.Context, opts RunOptions) (int, error) {
	if err := os.WriteFile(filepath.Join(opts.Work, "run"), []byte(opts.Script), 0o755); err != nil {
		return 0, fmt.Errorf("write the guest's script: %w", err)
	}
	statusFile := filepath.Join(opts.Work, "exit-status")
	_ = os.Remove(statusFile)

	// Pdeathsig fires when the thread that started qemu ends, not the
	// process: keep this goroutine on its thread until qemu is gone.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", img.qemuArgs(opts)...)
	// qemu dies with the test process, even one killed outright, and
	// Cancel kills it (its own process group) when ctx ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start qemu: %w", err)
	}
	copyLines(opts.Console, stdout)
	waitErr := cmd.Wait()
	if ctx.Err() != nil {
		return 0, fmt.Errorf("guest still running when the context ended (qemu killed): %w", context.Cause(ctx))
	}
	if waitErr != nil {
		return 0, fmt.Errorf("qemu: %w", waitErr)
	}
	raw, err := os.ReadFile(statusFile)
	if err != nil {
		return 0, errors.New("the guest powered off without an exit status: its /init failed (see its console)")
	}
	status, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return 0, fmt.Errorf("guest exit status %q: %w", raw, err)
	}
	return status, nil
}

func (img *Image) qemuArgs(opts RunOptions) []string {
	mem, cpus := opts.MemoryMiB, opts.CPUs
	if mem == 0 {
		mem = 1024
	}
	if cpus == 0 {
		cpus = 2
	}
	share := func(path, tag string, readonly bool) []string {
		s := "local,path=" + path + ",mount_tag=" + tag + ",security_model=none"
		if readonly {
			s += ",readonly=on"
		}
		return []string{"-virtfs", s}
	}
	args := []string{
		"-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
		// A kernel panic (such as /init exiting) ends qemu instead of
		// rebooting the guest.
		"-no-reboot",
		"-accel", opts.Accel, "-m", strconv.Itoa(mem), "-smp", strconv.Itoa(cpus),
		"-kernel", img.kernelPath(), "-initrd", img.initramfsPath(),
		"-append", "console=ttyS0 quiet panic=-1",
	}
	args = append(args, share("/usr", "hostusr", true)...)
	args = append(args, share(img.modulesPath(), "guestmods", true)...)
	return append(args, share(opts.Work, "work", false)...)
}

// copyLines copies r to w line by line, dropping the serial console's
// carriage returns, until r ends.
func copyLines(w io.Writer, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fmt.Fprintln(w, strings.TrimRight(sc.Text(), "\r"))
	}
	// A read error means qemu's end of the pipe closed: Wait reports why.
	_, _ = io.Copy(io.Discard, r)
}
