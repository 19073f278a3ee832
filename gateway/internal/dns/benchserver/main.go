// Command benchserver serves a synthetic clusterset with the clusterset
// DNS server, for BenchmarkDNS in test/bench, which cannot import this
// internal package and so runs it as a program. It can also write the
// same records as a zone file (for CoreDNS's file plugin) and a dnsperf
// query file, so that both servers answer one set of records from one
// description.
//
//	benchserver -zone-file db.clusterset.local -query-file queries.txt
//	benchserver -addr 127.0.0.1:0     # prints "listening on <addr>", serves until SIGTERM
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/go-logr/logr/funcr"

	wsdns "github.com/wirespan/wirespan/gateway/internal/dns"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "benchserver:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "", "serve on this address (host:port, UDP and TCP)")
	zoneFile := flag.String("zone-file", "", "write the records as a zone file here and exit")
	queryFile := flag.String("query-file", "", "write a dnsperf query file here and exit")
	queries := flag.Int("queries", 10000, "lines in the query file")
	c := clusterset{}
	flag.IntVar(&c.services, "services", 1000, "ClusterSetIP services")
	flag.IntVar(&c.headless, "headless", 20, "headless services")
	flag.IntVar(&c.endpoints, "endpoints", 6, "ready endpoints of each headless service, over two clusters")
	flag.Parse()

	if *zoneFile != "" || *queryFile != "" {
		if *zoneFile != "" {
			if err := os.WriteFile(*zoneFile, []byte(c.zoneFile()), 0o644); err != nil {
				return err
			}
		}
		if *queryFile != "" {
			if err := os.WriteFile(*queryFile, []byte(c.queryFile(*queries)), 0o644); err != nil {
				return err
			}
		}
		return nil
	}
	if *addr == "" {
		return fmt.Errorf("need -addr, or -zone-file / -query-file")
	}
	store := wsdns.NewStore()
	store.Replace(c.list())
	log := funcr.New(func(prefix, args string) { fmt.Fprintln(os.Stderr, prefix, args) }, funcr.Options{})
	srv, err := wsdns.NewServer(wsdns.Config{Addr: *addr, Store: store, Logger: log})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Printf("listening on %s\n", srv.Addr())
	return srv.Run(ctx)
}

// clusterset describes the synthetic services: ClusterSetIP services
// svc-<i> spread over 20 namespaces, each with ports http (80) and grpc
// (9090); headless services hl-<i> in ns-0 whose endpoints pod-<j> live in
// clusters c1 and c2.
type clusterset struct {
	services, headless, endpoints int
}

const namespaces = 20

func (c clusterset) svcName(i int) string { return fmt.Sprintf("svc-%d.ns-%d", i, i%namespaces) }
func (c clusterset) vip(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 96, byte(i / 250), byte(i%250 + 1)})
}
func (c clusterset) podAddr(h, j int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(100 + j%2), byte(h), byte(j + 1)})
}
func cluster(j int) string { return fmt.Sprintf("c%d", 1+j%2) }

func (c clusterset) list() []wsdns.Service {
	var out []wsdns.Service
	ports := []wsdns.Port{{Name: "http", Protocol: "TCP", Port: 80}, {Name: "grpc", Protocol: "TCP", Port: 9090}}
	for i := range c.services {
		name, ns, _ := strings.Cut(c.svcName(i), ".")
		out = append(out, wsdns.Service{Namespace: ns, Name: name, IPs: []netip.Addr{c.vip(i)}, Ports: ports})
	}
	for h := range c.headless {
		svc := wsdns.Service{Namespace: "ns-0", Name: fmt.Sprintf("hl-%d", h), Headless: true, Ports: ports[:1]}
		for j := range c.endpoints {
			svc.Endpoints = append(svc.Endpoints, wsdns.Endpoint{
				Cluster: cluster(j), Hostname: fmt.Sprintf("pod-%d", j), Addrs: []netip.Addr{c.podAddr(h, j)}, Ready: true,
			})
		}
		out = append(out, svc)
	}
	return out
}

// zoneFile is the records the Wirespan server answers, in zone-file form.
// CoreDNS needs an NS record at the apex (and its address); the Wirespan
// server has none, and no benchmark query asks for them.
func (c clusterset) zoneFile() string {
	var b strings.Builder
	b.WriteString("$ORIGIN clusterset.local.\n$TTL 5\n")
	b.WriteString("@ IN SOA ns.dns.clusterset.local. hostmaster.clusterset.local. 1 7200 1800 86400 5\n")
	b.WriteString("@ IN NS ns.dns.clusterset.local.\nns.dns IN A 127.0.0.1\n")
	fmt.Fprintf(&b, "dns-version IN TXT %q\n", wsdns.SchemaVersion)
	for i := range c.services {
		n := c.svcName(i) + ".svc"
		fmt.Fprintf(&b, "%s IN A %s\n", n, c.vip(i))
		fmt.Fprintf(&b, "_http._tcp.%s IN SRV 0 100 80 %s.clusterset.local.\n", n, n)
		fmt.Fprintf(&b, "_grpc._tcp.%s IN SRV 0 100 9090 %s.clusterset.local.\n", n, n)
	}
	for h := range c.headless {
		n := fmt.Sprintf("hl-%d.ns-0.svc", h)
		for j := range c.endpoints {
			host := fmt.Sprintf("pod-%d.%s.%s", j, cluster(j), n)
			fmt.Fprintf(&b, "%s IN A %s\n", n, c.podAddr(h, j))
			fmt.Fprintf(&b, "%s IN A %s\n", host, c.podAddr(h, j))
			fmt.Fprintf(&b, "_http._tcp.%s IN SRV 0 100 80 %s.clusterset.local.\n", n, host)
		}
	}
	return b.String()
}

// queryFile is dnsperf's input: 60 % A of a ClusterSetIP service, 15 % SRV
// of one of its ports, 5 % A of a headless service, 5 % A of a headless
// endpoint, 15 % names that do not exist. The order is random but fixed.
func (c clusterset) queryFile(lines int) string {
	r := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	for range lines {
		i := r.IntN(max(c.services, 1))
		switch p := r.IntN(100); {
		case p < 60 || c.headless == 0 && p < 70:
			fmt.Fprintf(&b, "%s.svc.clusterset.local. A\n", c.svcName(i))
		case p < 75:
			fmt.Fprintf(&b, "_http._tcp.%s.svc.clusterset.local. SRV\n", c.svcName(i))
		case p < 80 && c.headless > 0:
			fmt.Fprintf(&b, "hl-%d.ns-0.svc.clusterset.local. A\n", r.IntN(c.headless))
		case p < 85 && c.headless > 0:
			j := r.IntN(max(c.endpoints, 1))
			fmt.Fprintf(&b, "pod-%d.%s.hl-%d.ns-0.svc.clusterset.local. A\n", j, cluster(j), r.IntN(c.headless))
		default:
			fmt.Fprintf(&b, "nosuch-%d.ns-%d.svc.clusterset.local. A\n", i, i%namespaces)
		}
	}
	return b.String()
}
