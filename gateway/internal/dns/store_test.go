package dns

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

func TestStoreSetDeleteReplace(t *testing.T) {
	s := NewStore()
	a := newAnswerer(zone, 5, s)
	rcodeOf := func(name string) int { return a.answer(query(name, dns.TypeA, 0), true).Rcode }
	web := Service{Namespace: "prod", Name: "web", IPs: ips("10.0.0.1")}

	s.Set(web)
	if s.Len() != 1 || rcodeOf("web.prod.svc."+zone) != noerror || rcodeOf("prod.svc."+zone) != noerror {
		t.Fatal("Set: service or its namespace missing")
	}
	serial := s.load().serial

	// Replacing a service by one without records removes its names,
	// and the namespace's, but it still counts in Len.
	s.Set(Service{Namespace: "prod", Name: "web"})
	if s.Len() != 1 || rcodeOf("web.prod.svc."+zone) != nxdomain || rcodeOf("prod.svc."+zone) != nxdomain || rcodeOf("svc."+zone) != nxdomain {
		t.Error("Set of a service without IPs kept names")
	}
	if s.load().serial <= serial {
		t.Error("serial did not grow")
	}

	s.Set(web)
	s.Set(Service{Namespace: "prod", Name: "api", IPs: ips("10.0.0.2")})
	s.Delete("prod", "web")
	if s.Len() != 1 || rcodeOf("web.prod.svc."+zone) != nxdomain || rcodeOf("prod.svc."+zone) != noerror {
		t.Error("Delete removed too much or too little")
	}
	s.Delete("prod", "web") // absent: no-op
	s.Delete("PROD", "API") // names are not case-sensitive
	if s.Len() != 0 || rcodeOf("svc."+zone) != nxdomain {
		t.Errorf("Delete in upper case: %d services left", s.Len())
	}

	s.Replace(fixture())
	if s.Len() != len(fixture()) {
		t.Errorf("Replace: Len %d, want %d", s.Len(), len(fixture()))
	}
	s.Replace(nil)
	if s.Len() != 0 || rcodeOf("web.prod.svc."+zone) != nxdomain {
		t.Error("Replace(nil) left services")
	}
}

// The Store copies what it needs: changing the caller's slices afterwards
// changes nothing.
func TestStoreKeepsNoReference(t *testing.T) {
	s := NewStore()
	svc := Service{Namespace: "prod", Name: "web", IPs: ips("10.0.0.1")}
	s.Set(svc)
	svc.IPs[0] = ip("10.9.9.9")
	resp := newAnswerer(zone, 5, s).answer(query("web.prod.svc."+zone, dns.TypeA, 0), true)
	if got := rrStrings(resp.Answer); len(got) != 1 || got[0] != "web.prod.svc.clusterset.local. 5 IN A 10.0.0.1" {
		t.Errorf("answer %v", got)
	}
}

func TestStoreInvalidNames(t *testing.T) {
	s := NewStore()
	s.Set(Service{Namespace: "b.c", Name: "a", IPs: ips("10.0.0.1")})
	s.Set(Service{Namespace: "c", Name: "a.b", IPs: ips("10.0.0.2")})
	s.Set(Service{Namespace: "", Name: "x", IPs: ips("10.0.0.3")})
	if s.Len() != 3 {
		t.Errorf("Len %d, want 3 distinct services", s.Len())
	}
	a := newAnswerer(zone, 5, s)
	for _, name := range []string{"a.b.c.svc." + zone, "x..svc." + zone, "svc." + zone} {
		if m := query(name, dns.TypeA, 0); m != nil {
			if resp := a.answer(m, true); resp.Rcode != nxdomain {
				t.Errorf("%s: %s, want NXDOMAIN", name, rcode(resp.Rcode))
			}
		}
	}
}

func TestBuildEntry(t *testing.T) {
	// Addresses: mapped IPv4 is IPv4, zones dropped, duplicates dropped,
	// invalid ignored, sorted.
	e := build(Service{Namespace: "n", Name: "s", IPs: append(ips("::ffff:10.0.0.2", "10.0.0.1", "10.0.0.2", "fe80::1%eth0"), ip("::1").WithZone(""), netip.Addr{})})
	if len(e.a) != 2 || e.a[0].String() != "10.0.0.1" || e.a[1].String() != "10.0.0.2" || len(e.a[0]) != 4 {
		t.Errorf("A %v", e.a)
	}
	if len(e.aaaa) != 2 || e.aaaa[0].String() != "::1" || e.aaaa[1].String() != "fe80::1" {
		t.Errorf("AAAA %v", e.aaaa)
	}

	// Ports: unnamed, unknown protocol, port 0 and a second port of the
	// same name and protocol give no SRV name.
	e = build(Service{Namespace: "n", Name: "s", IPs: ips("10.0.0.1"), Ports: []Port{
		{Name: "a", Port: 1}, {Name: "a", Port: 2}, {Name: "b", Protocol: "QUIC", Port: 3}, {Name: "c", Port: 0},
		{Port: 4}, {Name: "D", Protocol: "UDP", Port: 5}, {Name: "bad_name", Port: 6},
	}})
	want := map[string]uint16{"_a._tcp": 1, "_d._udp": 5, "_tcp": 0, "_udp": 0}
	if len(e.below) != len(want) {
		t.Errorf("names below the service: %v", keys(e.below))
	}
	for rel, port := range want {
		if n := e.below[rel]; n == nil || n.port != port {
			t.Errorf("%s: %+v, want port %d", rel, n, port)
		}
	}

	// Headless: endpoints with an invalid hostname or cluster count for
	// the service's addresses but get no name; IPv6 endpoints without a
	// hostname are named by their expanded address.
	e = build(Service{Namespace: "n", Name: "s", Headless: true, Endpoints: []Endpoint{
		{Cluster: "c1", Hostname: "Bad_Host", Addrs: ips("10.0.0.1"), Ready: true},
		{Cluster: "a.b.c", Hostname: "h", Addrs: ips("10.0.0.2"), Ready: true},
		{Cluster: "c1", Addrs: ips("fd00::1"), Ready: true},
		{Cluster: "c1", Hostname: "h", Ready: true},
	}})
	if len(e.a) != 2 || len(e.aaaa) != 1 || !e.live {
		t.Errorf("addresses %v %v", e.a, e.aaaa)
	}
	if len(e.targets) != 1 || e.targets[0] != "fd00-0000-0000-0000-0000-0000-0000-0001.c1" {
		t.Errorf("targets %v", e.targets)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
