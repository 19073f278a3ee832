package linux

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSysctl(t *testing.T) {
	requireRoot(t)
	ns := newNS(t)
	k := newKernel(t, ns)
	host, err := os.ReadFile("/proc/sys/net/ipv4/conf/all/rp_filter")
	if err != nil {
		t.Fatal(err)
	}
	want := "2"
	if strings.TrimSpace(string(host)) == "2" {
		want = "1"
	}
	if err := k.SetSysctl("net/ipv4/conf/all/rp_filter", want); err != nil {
		t.Fatal(err)
	}
	if got, err := k.Sysctl("net/ipv4/conf/all/rp_filter"); err != nil || got != want {
		t.Errorf("Sysctl = %q, %v; want %q", got, err, want)
	}
	if got := strings.TrimSpace(inNS(t, ns, "cat", "/proc/sys/net/ipv4/conf/all/rp_filter")); got != want {
		t.Errorf("in the namespace rp_filter = %q, want %q", got, want)
	}
	if after, _ := os.ReadFile("/proc/sys/net/ipv4/conf/all/rp_filter"); string(after) != string(host) {
		t.Errorf("host rp_filter changed from %q to %q", host, after)
	}
	for _, bad := range []string{"", "../../etc/passwd", "/net/ipv4/ip_forward", "net/../../x"} {
		if _, err := k.Sysctl(bad); err == nil {
			t.Errorf("Sysctl(%q) did not fail", bad)
		}
	}
	if _, err := k.Sysctl("net/ipv4/no_such_knob"); err == nil || !strings.Contains(err.Error(), "read sysctl net/ipv4/no_such_knob") {
		t.Errorf("missing sysctl: %v", err)
	}
}

// A gateway in a Pod has a read-only /proc/sys; the chart mounts the host's
// /proc/sys/net writable elsewhere and passes that folder as SysctlDir. A
// bind mount of /proc/sys/net still shows the network namespace of the
// thread that opens a file, so the Kernel's namespace is the one changed.
func TestSysctlDirIsABindMountOfProcSysNet(t *testing.T) {
	requireRoot(t)
	ns := newNS(t)
	dir := t.TempDir()
	mnt := filepath.Join(dir, "net")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("/proc/sys/net", mnt, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount /proc/sys/net: %v", err)
	}
	mounted := true
	unmount := func() {
		if mounted {
			if err := unix.Unmount(mnt, 0); err != nil {
				t.Errorf("unmount %s: %v", mnt, err)
			}
			mounted = false
		}
	}
	t.Cleanup(unmount)
	k, err := New(Options{NetNS: ns, WireGuardMode: WireGuardUserspace, Log: testLogger(t), SysctlDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	const knob = "net/ipv4/ip_forward"
	before := strings.TrimSpace(inNS(t, ns, "cat", "/proc/sys/"+knob))
	want := "1"
	if before == "1" {
		want = "0"
	}
	host, err := os.ReadFile("/proc/sys/" + knob)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.SetSysctl(knob, want); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(inNS(t, ns, "cat", "/proc/sys/"+knob)); got != want {
		t.Errorf("in the namespace %s = %q after SetSysctl(%q) through %s", knob, got, want, dir)
	}
	if after, _ := os.ReadFile("/proc/sys/" + knob); string(after) != string(host) {
		t.Errorf("host %s changed from %q to %q", knob, host, after)
	}
	// Not a path of its own: without the mount the same folder has no knob.
	unmount()
	if _, err := k.Sysctl(knob); err == nil {
		t.Errorf("Sysctl(%s) read a file under %s with nothing mounted there", knob, dir)
	}
}
