package images

import (
	"archive/tar"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wirespan/wirespan/internal/poll"
	"github.com/wirespan/wirespan/internal/syncbuf"
	"github.com/wirespan/wirespan/internal/testenv"
	"github.com/wirespan/wirespan/internal/testreq"
)

// TestDevDockerfile checks the image of Tilt's loop: a prebuilt binary on a
// pinned busybox (live update needs sh and tar in the container), run by
// start.sh as the release image's user.
func TestDevDockerfile(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	st := stages(t, filepath.Join(root, "build", "tilt", "Dockerfile"))
	if len(st) != 1 {
		t.Fatalf("%d stages, want 1: the binary is built outside, by make build-static", len(st))
	}
	s := st[0]
	if !strings.HasPrefix(s.from, "busybox:") || !pinned(s.from) {
		t.Errorf("FROM %s, want a pinned busybox: live update runs sh and tar in the container", s.from)
	}
	want := map[string][]string{
		"ARG":        {"BINARY", "USER=65532"},
		"COPY":       {"start.sh restart.sh /tilt/", "bin/${BINARY} /tilt/${BINARY}"},
		"ENV":        {"WIRESPAN_BINARY=/tilt/${BINARY}"},
		"USER":       {"${USER}:${USER}"},
		"ENTRYPOINT": {`["/tilt/start.sh"]`},
	}
	for cmd, args := range want {
		if got := s.only(cmd); fmt.Sprint(got) != fmt.Sprint(args) {
			t.Errorf("%s %q, want %q", cmd, got, args)
		}
	}
	for _, script := range []string{"start.sh", "restart.sh"} {
		info, err := os.Stat(filepath.Join(root, "build", "tilt", script))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable; COPY keeps the mode", script)
		}
	}
}

// shells are the shells the scripts must work in: the image's (busybox)
// and the machine's /bin/sh.
func shells(t *testing.T) map[string][]string {
	out := map[string][]string{"sh": {"/bin/sh"}}
	if bb, err := exec.LookPath("busybox"); err == nil {
		out["busybox"] = []string{bb, "sh"}
	} else {
		t.Log("no busybox on this machine: the scripts are tested with /bin/sh only")
	}
	return out
}

// program writes a stand-in for wirespan-operator: it prints its version
// and arguments, and on SIGTERM says so and exits 0; with exit, it exits at
// once with that status.
func program(t *testing.T, path, version string, exit int) {
	t.Helper()
	body := fmt.Sprintf("#!/bin/sh\necho \"%s started: $*\"\n", version)
	if exit >= 0 {
		body += fmt.Sprintf("exit %d\n", exit)
	} else {
		body += fmt.Sprintf("trap 'echo \"%s stopped\"; exit 0' TERM\nwhile :; do sleep 0.05; done\n", version)
	}
	// Replace, never rewrite in place, as kubectl cp's tar does: the old
	// program may still be running.
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// output collects a process's output for polling.
type output struct{ syncbuf.Buffer }

func (o *output) has(line string) error {
	if strings.Contains(o.String(), line) {
		return nil
	}
	return fmt.Errorf("no %q in output:\n%s", line, o.String())
}

// wrapper is start.sh running a stand-in program in a folder like the
// image's /tilt.
type wrapper struct {
	dir   string
	shell []string
	cmd   *exec.Cmd
	out   *output
	done  chan error
}

// startWrapper copies the scripts and a v1 program into a new folder, gives
// the folder to owner (-1: leave it root's), and starts start.sh with
// shell, which may begin with a command that drops privileges.
//
// The program is a shell script, or with elf the given executable.
func startWrapper(t *testing.T, shell []string, exit, owner int, elf ...[]byte) *wrapper {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, s := range []string{"start.sh", "restart.sh"} {
		raw, err := os.ReadFile(filepath.Join(root, "build", "tilt", s))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, s), raw, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	program(t, filepath.Join(dir, "wirespan-operator"), "v1", exit)
	if len(elf) > 0 {
		if err := os.WriteFile(filepath.Join(dir, "wirespan-operator"), elf[0], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if owner >= 0 {
		// As in the image, the folder is the container user's
		// (build/tilt/Dockerfile), and the way to it open to them.
		if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Chown(p, owner, owner)
		}); err != nil {
			t.Fatal(err)
		}
	}
	w := &wrapper{dir: dir, shell: shell, out: &output{}, done: make(chan error, 1)}
	args := append(append([]string{}, shell[1:]...), filepath.Join(dir, "start.sh"), "--cluster-id", "c1")
	w.cmd = exec.Command(shell[0], args...)
	w.cmd.Env = append(os.Environ(), "WIRESPAN_BINARY="+filepath.Join(dir, "wirespan-operator"))
	w.cmd.Stdout, w.cmd.Stderr = w.out, w.out
	// Its own process group, so that cleanup reaches the program too.
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.done <- w.cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case err := <-w.done:
			t.Logf("start.sh ended: %v", err)
		case <-time.After(10 * time.Second):
			t.Errorf("start.sh (pid %d) did not exit after SIGKILL", w.cmd.Process.Pid)
		}
	})
	return w
}

// exitCode waits for start.sh to exit and returns its status.
func (w *wrapper) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case err := <-w.done:
		w.done <- err // for the cleanup
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(20 * time.Second):
		t.Fatalf("start.sh still running; output:\n%s", w.out)
		return -1
	}
}

func (w *wrapper) restart(t *testing.T) (string, error) {
	t.Helper()
	args := append(append([]string{}, w.shell[1:]...), filepath.Join(w.dir, "restart.sh"))
	out, err := exec.Command(w.shell[0], args...).CombinedOutput()
	return string(out), err
}

func TestStartRestartsInPlace(t *testing.T) {
	for name, shell := range shells(t) {
		t.Run(name, func(t *testing.T) {
			w := startWrapper(t, shell, -1, -1)
			poll.Until(t, 10*time.Second, "v1 running", func() error { return w.out.has("v1 started: --cluster-id c1") })

			// What live update does: a new binary, then restart.sh, which
			// returns once the new program runs.
			program(t, filepath.Join(w.dir, "wirespan-operator"), "v2", -1)
			if out, err := w.restart(t); err != nil {
				t.Fatalf("restart.sh: %v\n%s", err, out)
			}
			poll.Until(t, 10*time.Second, "v2 running", func() error { return w.out.has("v2 started: --cluster-id c1") })
			if err := w.out.has("v1 stopped"); err != nil {
				t.Errorf("the old program was not stopped with SIGTERM: %v", err)
			}
			select {
			case err := <-w.done:
				t.Fatalf("start.sh exited on a restart (%v); output:\n%s", err, w.out)
			default:
			}

			// The container stopping: SIGTERM reaches the program, and the
			// wrapper ends with its status.
			if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := w.exitCode(t); code != 0 {
				t.Errorf("start.sh exited %d after SIGTERM, want the program's 0; output:\n%s", code, w.out)
			}
			if err := w.out.has("v2 stopped"); err != nil {
				t.Error(err)
			}
			for _, f := range []string{"pid", "restart-requested"} {
				if _, err := os.Stat(filepath.Join(w.dir, f)); err == nil {
					t.Errorf("%s left behind", f)
				}
			}
		})
	}
}

func TestStartEndsWithTheProgramsStatus(t *testing.T) {
	for name, shell := range shells(t) {
		t.Run(name, func(t *testing.T) {
			// A crash is not restarted by the wrapper: Kubernetes must see
			// it, and restart the container as it would without Tilt.
			w := startWrapper(t, shell, 3, -1)
			if code := w.exitCode(t); code != 3 {
				t.Errorf("start.sh exited %d, want the program's 3; output:\n%s", code, w.out)
			}
			if n := strings.Count(w.out.String(), "v1 started"); n != 1 {
				t.Errorf("the program ran %d times, want once; output:\n%s", n, w.out)
			}
		})
	}
}

func TestRestartWithoutStartSays(t *testing.T) {
	for name, shell := range shells(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			root, err := testenv.RepoRoot()
			if err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(filepath.Join(root, "build", "tilt", "restart.sh"))
			if err != nil {
				t.Fatal(err)
			}
			script := filepath.Join(dir, "restart.sh")
			if err := os.WriteFile(script, raw, 0o755); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(shell[0], append(append([]string{}, shell[1:]...), script)...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), "entrypoint") {
				t.Errorf("restart.sh with no program: err %v, output %q; want a failure naming the entrypoint", err, out)
			}
		})
	}
}

// TestLiveUpdateCopiesOverTheRunningBinary does what live update does to a
// container of the dev image, with the image's tar (busybox) and the
// privileges the chart leaves the container: it extracts a new binary over
// the one that is running, as Tilt does (`tar -C / -x -f -`) and as
// `kubectl cp` does (`tar -xmf - -C DIR`), then restarts it. The operator
// runs as 65532 with no capabilities; the gateway as root with only
// NET_ADMIN, so tar cannot chown what it extracts, and neither may gain
// privileges (allowPrivilegeEscalation: false).
func TestLiveUpdateCopiesOverTheRunningBinary(t *testing.T) {
	if os.Geteuid() != 0 {
		testreq.CannotRun(t, testreq.Privileged, "needs root to run as the containers' users")
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		testreq.CannotRun(t, testreq.Privileged, "no busybox, the image's tar, on this machine")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		testreq.CannotRun(t, testreq.Privileged, "no setpriv (util-linux) to drop privileges")
	}
	for _, tc := range []struct {
		name, caps string
		uid        int
	}{
		{"operator", "-all", 65532},
		{"gateway", "-all,+net_admin", 0},
	} {
		for _, tarCmd := range []string{"tilt", "kubectl"} {
			t.Run(tc.name+"/"+tarCmd, func(t *testing.T) {
				as := []string{setpriv, "--reuid", fmt.Sprint(tc.uid), "--regid", fmt.Sprint(tc.uid), "--clear-groups",
					"--inh-caps=-all", "--bounding-set=" + tc.caps, "--no-new-privs"}
				// A real executable is running, so writing into its file
				// would fail (ETXTBSY): tar must replace it.
				w := startWrapper(t, append(as, busybox, "sh"), -1, tc.uid, elfProgram(t, "v1"))
				poll.Until(t, 10*time.Second, "v1 running", func() error { return w.out.has("v1 started") })

				// The new binary, as the developer's machine archives it:
				// owned by the developer (uid 1000), which tar cannot
				// give it here.
				body := elfProgram(t, "v2")
				var argv []string
				var entry string
				switch tarCmd {
				case "tilt":
					argv = []string{busybox, "tar", "-C", filepath.Dir(w.dir), "-x", "-f", "-"}
					entry = filepath.Base(w.dir) + "/wirespan-operator"
				case "kubectl":
					argv = []string{busybox, "tar", "-xmf", "-", "-C", w.dir}
					entry = "wirespan-operator"
				}
				archive := tarball(t, entry, body, 1000)
				extract := exec.Command(as[0], append(as[1:], argv...)...)
				extract.Stdin = strings.NewReader(archive)
				if out, err := extract.CombinedOutput(); err != nil {
					t.Fatalf("%v: %v\n%s", argv, err, out)
				}
				if out, err := w.restart(t); err != nil {
					t.Fatalf("restart.sh: %v\n%s", err, out)
				}
				poll.Until(t, 10*time.Second, "v2 running", func() error { return w.out.has("v2 started") })
			})
		}
	}
}

// tarball is a tar archive of one executable file, owned by uid.
func tarball(t *testing.T, name string, body []byte, uid int) string {
	t.Helper()
	var b strings.Builder
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body)), Uid: uid, Gid: uid, ModTime: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

var (
	elfMu       sync.Mutex
	elfPrograms = map[string][]byte{}
)

// elfProgram is a compiled stand-in for wirespan-operator that behaves as
// program's scripts do: it prints "VERSION started: ARGS", and on SIGTERM
// "VERSION stopped" before it exits 0.
func elfProgram(t *testing.T, version string) []byte {
	t.Helper()
	elfMu.Lock()
	defer elfMu.Unlock()
	if b, ok := elfPrograms[version]; ok {
		return b
	}
	dir := t.TempDir()
	src := `package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

var version string

func main() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM)
	fmt.Printf("%s started: %s\n", version, strings.Join(os.Args[1:], " "))
	<-ch
	fmt.Printf("%s stopped\n", version)
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "prog")
	build := exec.Command("go", "build", "-o", out, "-ldflags", "-X main.version="+version, "main.go")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GO111MODULE=off")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the stand-in program: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	elfPrograms[version] = b
	return b
}
