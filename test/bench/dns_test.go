package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	labpkg "github.com/wirespan/wirespan/test/internal/lab"
)

// dnsperfSeconds is the length of each measured dnsperf run.
const dnsperfSeconds = 10

// BenchmarkDNS measures the clusterset DNS server (gateway/internal/dns)
// next to CoreDNS, the pinned build of `make bins`, serving the same
// records with its file plugin: 1,000 ClusterSetIP services with two named
// ports and 20 headless services of 6 endpoints, written once as the
// Wirespan store and once as a zone file by the same program
// (gateway/internal/dns/benchserver). dnsperf sends both the same query
// file (A of services, SRV, A of headless services and their endpoints,
// 15 % NXDOMAIN) for the same time, with 4 clients and up to 100 queries
// in flight. Both servers run with GOMAXPROCS=1 pinned to one CPU, dnsperf
// to another. Before measuring, the two servers' answers to the query
// file's first queries are compared.
func BenchmarkDNS(b *testing.B) {
	coredns := labpkg.DefaultBins(repo).CoreDNS
	if _, err := os.Stat(coredns); err != nil {
		b.Fatalf("CoreDNS missing (%v): run `make bins`", err)
	}
	for _, tool := range []string{"dnsperf", "taskset"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("%s missing: run `make deps`", tool)
		}
	}
	server := filepath.Join(binDir, "wirespan-dns-bench")
	build := exec.Command("go", "build", "-o", server, "./gateway/internal/dns/benchserver")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build the DNS bench server: %v\n%s", err, out)
	}
	dir := b.TempDir()
	zoneFile, queryFile, corefile := filepath.Join(dir, "db.clusterset.local"), filepath.Join(dir, "queries.txt"), filepath.Join(dir, "Corefile")
	if out, err := exec.Command(server, "-zone-file", zoneFile, "-query-file", queryFile).CombinedOutput(); err != nil {
		b.Fatalf("write the zone and query files: %v\n%s", err, out)
	}

	// Same CPU for both servers, another for dnsperf.
	serverCPU, clientCPU := "0", "1"
	if runtime.NumCPU() < 2 {
		clientCPU = "0"
	}
	port := freeDNSPort(b)
	corednsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conf := fmt.Sprintf("clusterset.local.:%d {\n\tbind 127.0.0.1\n\tfile %s\n}\n", port, zoneFile)
	if err := os.WriteFile(corefile, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	wirespanAddr := startDNSServer(b, serverCPU, server, "-addr", "127.0.0.1:0")
	if _, err := netip.ParseAddrPort(wirespanAddr); err != nil {
		b.Fatalf("the Wirespan DNS server did not say where it listens: %v", err)
	}
	startDNSServer(b, serverCPU, coredns, "-conf", corefile)
	waitDNS(b, corednsAddr)
	sameAnswers(b, queryFile, wirespanAddr, corednsAddr)
	for _, addr := range []string{wirespanAddr, corednsAddr} {
		dnsperf(b, clientCPU, addr, queryFile, 1) // warm up
	}

	b.ResetTimer()
	var ws, cd dnsperfResult
	for range b.N {
		ws.add(dnsperf(b, clientCPU, wirespanAddr, queryFile, dnsperfSeconds))
		cd.add(dnsperf(b, clientCPU, corednsAddr, queryFile, dnsperfSeconds))
	}
	n := float64(b.N)
	b.ReportMetric(ws.qps/n, "qps-wirespan")
	b.ReportMetric(cd.qps/n, "qps-ref-coredns")
	b.ReportMetric(ws.qps/cd.qps, "ratio-to-coredns")
	b.ReportMetric(ws.latency/n*1e6, "us-latency-wirespan")
	b.ReportMetric(cd.latency/n*1e6, "us-latency-ref-coredns")
	b.ReportMetric(0, "ns/op")
	if ws.lost > 0 || cd.lost > 0 {
		b.Logf("queries lost: wirespan %d, coredns %d", ws.lost, cd.lost)
	}
}

// freeDNSPort is a port of 127.0.0.1 free for both UDP and TCP just now.
func freeDNSPort(b *testing.B) int {
	b.Helper()
	for range 10 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		_ = pc.Close()
		if err == nil {
			_ = ln.Close()
			return port
		}
	}
	b.Fatal("no port free for both UDP and TCP")
	return 0
}

// startDNSServer runs a server with GOMAXPROCS=1 on one CPU until the
// benchmark ends. If it prints "listening on <addr>" first, the address
// is returned.
func startDNSServer(b *testing.B, cpu, bin string, args ...string) string {
	b.Helper()
	cmd := exec.Command("taskset", append([]string{"-c", cpu, bin}, args...)...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	var stderr bytes.Buffer // shown if the benchmark fails
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if b.Failed() {
			b.Logf("%s stderr:\n%s", bin, stderr.String())
		}
	})
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			first <- sc.Text()
		}
		close(first)
		for sc.Scan() { // CoreDNS prints its banner; keep the pipe drained
		}
	}()
	select {
	case line := <-first:
		addr, _ := strings.CutPrefix(line, "listening on ")
		return addr
	case <-time.After(10 * time.Second):
		b.Fatalf("%s printed nothing in 10s", bin)
	}
	return ""
}

// waitDNS waits until addr answers the zone's SOA.
func waitDNS(b *testing.B, addr string) {
	b.Helper()
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	m := new(dns.Msg).SetQuestion("clusterset.local.", dns.TypeSOA)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, _, err := c.Exchange(m, addr); err == nil && resp.Rcode == dns.RcodeSuccess {
			return
		}
	}
	b.Fatalf("no DNS server answering on %s", addr)
}

// sameAnswers checks that both servers give the same response code and
// answer records to the query file's first 300 queries, so that the two
// measure the same work.
func sameAnswers(b *testing.B, queryFile, addrA, addrB string) {
	b.Helper()
	data, err := os.ReadFile(queryFile)
	if err != nil {
		b.Fatal(err)
	}
	c := &dns.Client{Timeout: 2 * time.Second, UDPSize: 4096}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	for _, line := range lines[:min(300, len(lines))] {
		name, qtype, _ := strings.Cut(line, " ")
		m := new(dns.Msg).SetQuestion(name, dns.StringToType[qtype])
		m.SetEdns0(4096, false)
		var got [2]string
		for i, addr := range []string{addrA, addrB} {
			resp, _, err := c.Exchange(m, addr)
			if err != nil {
				b.Fatalf("%s to %s: %v", line, addr, err)
			}
			var rrs []string
			for _, rr := range resp.Answer {
				rrs = append(rrs, rr.String())
			}
			slices.Sort(rrs)
			got[i] = dns.RcodeToString[resp.Rcode] + "\n" + strings.Join(rrs, "\n")
		}
		if got[0] != got[1] {
			b.Fatalf("%s: the servers differ:\nwirespan:\n%s\ncoredns:\n%s", line, got[0], got[1])
		}
	}
}

type dnsperfResult struct {
	qps, latency float64 // queries per second, mean latency in seconds
	lost         int
}

func (r *dnsperfResult) add(o dnsperfResult) {
	r.qps += o.qps
	r.latency += o.latency
	r.lost += o.lost
}

var (
	dnsperfQPS     = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	dnsperfLatency = regexp.MustCompile(`Average Latency \(s\):\s+([0-9.]+)`)
	dnsperfLost    = regexp.MustCompile(`Queries lost:\s+([0-9]+)`)
)

// dnsperf runs dnsperf on one CPU against addr for the given seconds.
func dnsperf(b *testing.B, cpu, addr, queryFile string, seconds int) dnsperfResult {
	b.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		b.Fatal(err)
	}
	out, err := exec.Command("taskset", "-c", cpu, "dnsperf", "-s", host, "-p", port, "-d", queryFile,
		"-l", strconv.Itoa(seconds), "-c", "4", "-T", "1", "-q", "100", "-t", "2").CombinedOutput()
	if err != nil {
		b.Fatalf("dnsperf: %v\n%s", err, out)
	}
	var r dnsperfResult
	for _, f := range []struct {
		re  *regexp.Regexp
		set func(string) error
	}{
		{dnsperfQPS, func(s string) (err error) { r.qps, err = strconv.ParseFloat(s, 64); return }},
		{dnsperfLatency, func(s string) (err error) { r.latency, err = strconv.ParseFloat(s, 64); return }},
		{dnsperfLost, func(s string) (err error) { r.lost, err = strconv.Atoi(s); return }},
	} {
		m := f.re.FindSubmatch(out)
		if m == nil {
			b.Fatalf("dnsperf output without %s:\n%s", f.re, out)
		}
		if err := f.set(string(m[1])); err != nil {
			b.Fatal(errors.Join(fmt.Errorf("dnsperf output %q", m[1]), err))
		}
	}
	return r
}
