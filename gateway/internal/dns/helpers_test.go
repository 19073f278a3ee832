package dns

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

const zone = "clusterset.local."

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func ips(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = ip(s)
	}
	return out
}

// fixture is a clusterset with every kind of record:
//
//   - prod/web: ClusterSetIP, dual stack, ports of every protocol and one
//     unnamed port;
//   - prod/v4only: ClusterSetIP, IPv4 only;
//   - prod/db: headless, endpoints in c1, c2 and the two-label cluster
//     east.reg, one not ready, one without hostname, one dual stack;
//   - other/empty: headless without a ready endpoint (no records, so the
//     namespace "other" has none either);
//   - other2/novip: ClusterSetIP without an IP (no records).
func fixture() []Service {
	return []Service{
		{
			Namespace: "prod", Name: "web", IPs: ips("10.42.0.1", "fd00::1"),
			Ports: []Port{
				{Name: "http", Protocol: "TCP", Port: 80},
				{Name: "dns", Protocol: "UDP", Port: 53},
				{Name: "sig", Protocol: "SCTP", Port: 9000},
				{Protocol: "TCP", Port: 8080},
			},
		},
		{Namespace: "prod", Name: "v4only", IPs: ips("10.42.0.2"), Ports: []Port{{Name: "https", Port: 443}}},
		{
			Namespace: "prod", Name: "db", Headless: true,
			Ports: []Port{{Name: "pg", Protocol: "TCP", Port: 5432}},
			Endpoints: []Endpoint{
				{Cluster: "c1", Hostname: "db-0", Addrs: ips("10.1.0.10"), Ready: true},
				{Cluster: "c1", Hostname: "db-1", Addrs: ips("10.1.0.11"), Ready: false},
				{Cluster: "c2", Hostname: "db-0", Addrs: ips("10.2.0.10"), Ready: true},
				{Cluster: "c2", Hostname: "db-0", Addrs: ips("fd00:2::10"), Ready: true},
				{Cluster: "c2", Addrs: ips("10.2.0.11"), Ready: true},
				{Cluster: "east.reg", Hostname: "db-0", Addrs: ips("10.3.0.10"), Ready: true},
			},
		},
		{
			Namespace: "other", Name: "empty", Headless: true, Ports: []Port{{Name: "x", Port: 1}},
			Endpoints: []Endpoint{{Cluster: "c1", Hostname: "a", Addrs: ips("10.9.0.1"), Ready: false}},
		},
		{Namespace: "other2", Name: "novip", Ports: []Port{{Name: "x", Port: 1}}},
	}
}

func fixtureStore() *Store {
	s := NewStore()
	s.Replace(fixture())
	return s
}

// query builds a query as a stub resolver would, with EDNS when bufsize is
// not zero.
func query(name string, qtype uint16, bufsize uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 4242
	if bufsize != 0 {
		m.SetEdns0(bufsize, false)
	}
	return m
}

// rrStrings writes records one per line in zone-file form, with single
// spaces, in a stable order.
func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, strings.Join(strings.Fields(rr.String()), " "))
	}
	slices.Sort(out)
	return out
}

// checkNegative checks the authority section of a negative answer: the
// zone's SOA alone, with the negative TTL as TTL and minimum.
func checkNegative(t *testing.T, resp *dns.Msg, ttl uint32) {
	t.Helper()
	if len(resp.Ns) != 1 {
		t.Fatalf("authority: %v, want one SOA", resp.Ns)
	}
	soa, ok := resp.Ns[0].(*dns.SOA)
	if !ok || soa.Hdr.Name != zone || soa.Hdr.Ttl != ttl || soa.Minttl != ttl {
		t.Fatalf("authority: %v, want the SOA of %s with TTL and minimum %d", resp.Ns[0], zone, ttl)
	}
}

func rcode(code int) string {
	if s, ok := rcodeNames[code]; ok {
		return s
	}
	return fmt.Sprint(code)
}
