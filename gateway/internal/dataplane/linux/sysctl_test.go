package linux

import (
	"os"
	"strings"
	"testing"
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
