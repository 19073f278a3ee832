package dns

import (
	"fmt"
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkServeDNS measures one query through ServeDNS (answer, pack,
// metrics) without sockets, with 1,000 ClusterSetIP services in the store.
// test/bench's BenchmarkDNS measures the server over the network, next to
// CoreDNS.
func BenchmarkServeDNS(b *testing.B) {
	store := NewStore()
	var all []Service
	for i := range 1000 {
		all = append(all, Service{Namespace: fmt.Sprintf("ns-%d", i%20), Name: fmt.Sprintf("svc-%d", i),
			IPs: ips(fmt.Sprintf("10.96.%d.%d", i/250, i%250+1)), Ports: []Port{{Name: "http", Port: 80}}})
	}
	all = append(all, bigHeadless(200))
	store.Replace(all)
	s := offlineServer(store)
	for _, bc := range []struct {
		name string
		q    *dns.Msg
		udp  bool
	}{
		{"A", query("svc-42.ns-2.svc."+zone, dns.TypeA, 1232), true},
		{"SRV", query("_http._tcp.svc-42.ns-2.svc."+zone, dns.TypeSRV, 1232), true},
		{"NXDOMAIN", query("nosuch.ns-2.svc."+zone, dns.TypeA, 1232), true},
		{"headless-200-UDP-truncated", query("big.prod.svc."+zone, dns.TypeA, 1232), true},
		{"headless-200-TCP", query("big.prod.svc."+zone, dns.TypeA, 0), false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w := &recorder{udp: bc.udp}
			b.ReportAllocs()
			for b.Loop() {
				w.writes = w.writes[:0]
				s.ServeDNS(w, bc.q)
			}
		})
	}
}
