package coredns

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/wirespan/wirespan/internal/testenv"
)

// TestCoreDNSRunsTheBlock feeds Ensure's output to the pinned CoreDNS
// build: the block must parse, listen with the root zone's server, and
// forward the zone, skipping an upstream that is down (policy sequential).
func TestCoreDNSRunsTheBlock(t *testing.T) {
	bin := coreDNSBinary(t)
	upstream, asked := fakeUpstream(t)
	dead := netip.MustParseAddrPort("127.0.0.1:" + strconv.Itoa(freePort(t)))
	port := freePort(t)
	base := ".:" + strconv.Itoa(port) + " {\n    whoami\n}\n"
	corefile, _, err := Ensure(base, DefaultZone, []netip.AddrPort{dead, upstream})
	if err != nil {
		t.Fatal(err)
	}
	startCoreDNS(t, bin, corefile)
	addr := "127.0.0.1:" + strconv.Itoa(port)

	var resp *dns.Msg
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err = exchange(addr, "web.prod.svc.clusterset.local.")
		if err == nil && resp.Rcode == dns.RcodeSuccess && len(resp.Answer) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer for the clusterset zone through CoreDNS: %v %v", resp, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	a, ok := resp.Answer[0].(*dns.A)
	if !ok || a.A.String() != "10.1.2.3" {
		t.Fatalf("answer %v; want the upstream's 10.1.2.3", resp.Answer[0])
	}
	if a.Hdr.Ttl > CacheTTL {
		t.Errorf("TTL %d; want at most the cache's %d", a.Hdr.Ttl, CacheTTL)
	}

	before := asked.Load()
	if resp, err := exchange(addr, "kubernetes.default.svc.cluster.local."); err != nil || resp.Rcode != dns.RcodeSuccess {
		t.Fatalf("other name: %v %v", resp, err)
	}
	if asked.Load() != before {
		t.Error("a name outside the zone was forwarded to the clusterset upstream")
	}
}

// TestCoreDNSRefusesTheZoneTwice shows why Ensure will not add a block for
// a zone the Corefile already serves.
func TestCoreDNSRefusesTheZoneTwice(t *testing.T) {
	bin := coreDNSBinary(t)
	p := strconv.Itoa(freePort(t))
	conf := filepath.Join(t.TempDir(), "Corefile")
	if err := os.WriteFile(conf, []byte(".:"+p+" {\n    whoami\n}\nclusterset.local:"+p+" {\n    whoami\n}\nclusterset.local:"+p+" {\n    whoami\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-conf", conf).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already defined") {
		t.Fatalf("CoreDNS: %v\n%s", err, out)
	}
}

func coreDNSBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the CoreDNS binary (not with -short)")
	}
	bin, err := testenv.Binary("coredns")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// startCoreDNS runs CoreDNS on corefile until the test ends.
func startCoreDNS(t *testing.T, bin, corefile string) {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "Corefile")
	if err := os.WriteFile(conf, []byte(corefile), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "-conf", conf)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("Corefile:\n%s\nCoreDNS output:\n%s", corefile, out.String())
		}
	})
}

// fakeUpstream answers every A query with 10.1.2.3, TTL 60, over UDP, and
// counts the queries.
func fakeUpstream(t *testing.T) (netip.AddrPort, *atomic.Int64) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var asked atomic.Int64
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		asked.Add(1)
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(10, 1, 2, 3)}}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return netip.MustParseAddrPort(pc.LocalAddr().String()), &asked
}

func exchange(addr, name string) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeA)
	c := &dns.Client{Timeout: 2 * time.Second}
	resp, _, err := c.Exchange(q, addr)
	return resp, err
}

// freePort returns a port that was free for both UDP and TCP a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		_ = pc.Close()
		if err == nil {
			_ = l.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}
