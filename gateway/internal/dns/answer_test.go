package dns

import (
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

const (
	noerror  = dns.RcodeSuccess
	nxdomain = dns.RcodeNameError
	refused  = dns.RcodeRefused
)

func TestAnswerRecords(t *testing.T) {
	a := newAnswerer(zone, 5, fixtureStore())
	const (
		web = "web.prod.svc.clusterset.local."
		db  = "db.prod.svc.clusterset.local."
	)
	// owner prefixes the record lines of an answer.
	rr := func(owner, rest string) string { return owner + " 5 IN " + rest }
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		answer []string // empty: NODATA or NXDOMAIN, checked for an SOA
		extra  []string
	}{
		// ClusterSetIP service.
		{"A", web, dns.TypeA, noerror, []string{rr(web, "A 10.42.0.1")}, nil},
		{"AAAA", web, dns.TypeAAAA, noerror, []string{rr(web, "AAAA fd00::1")}, nil},
		// RFC 8482: one synthesized HINFO, not every RRset.
		{"ANY", web, dns.TypeANY, noerror, []string{rr(web, `HINFO "RFC8482" ""`)}, nil},
		{"AAAA of an IPv4-only service is NODATA", "v4only.prod.svc.clusterset.local.", dns.TypeAAAA, noerror, nil, nil},
		{"TXT of a service is NODATA", web, dns.TypeTXT, noerror, nil, nil},
		{"SRV at the service name is not in the spec: NODATA", web, dns.TypeSRV, noerror, nil, nil},
		{"SRV tcp", "_http._tcp." + web, dns.TypeSRV, noerror,
			[]string{rr("_http._tcp."+web, "SRV 0 100 80 "+web)},
			[]string{rr(web, "A 10.42.0.1"), rr(web, "AAAA fd00::1")}},
		{"SRV udp", "_dns._udp." + web, dns.TypeSRV, noerror, []string{rr("_dns._udp."+web, "SRV 0 100 53 "+web)},
			[]string{rr(web, "A 10.42.0.1"), rr(web, "AAAA fd00::1")}},
		{"SRV sctp", "_sig._sctp." + web, dns.TypeSRV, noerror, []string{rr("_sig._sctp."+web, "SRV 0 100 9000 "+web)},
			[]string{rr(web, "A 10.42.0.1"), rr(web, "AAAA fd00::1")}},
		{"SRV name asked for A is NODATA", "_http._tcp." + web, dns.TypeA, noerror, nil, nil},
		{"port under the wrong protocol", "_http._udp." + web, dns.TypeSRV, nxdomain, nil, nil},
		{"unknown port", "_grpc._tcp." + web, dns.TypeSRV, nxdomain, nil, nil},
		{"protocol label is an empty non-terminal", "_tcp." + web, dns.TypeSRV, noerror, nil, nil},
		{"protocol label without a named port", "_tcp.v4only.prod.svc.clusterset.local.", dns.TypeA, noerror, nil, nil},
		{"no per-cluster name for a ClusterSetIP service", "c1." + web, dns.TypeA, nxdomain, nil, nil},
		{"below a service", "x." + web, dns.TypeA, nxdomain, nil, nil},

		// Headless service.
		{"headless A: ready endpoints of every cluster", db, dns.TypeA, noerror, []string{
			rr(db, "A 10.1.0.10"), rr(db, "A 10.2.0.10"), rr(db, "A 10.2.0.11"), rr(db, "A 10.3.0.10"),
		}, nil},
		{"headless AAAA", db, dns.TypeAAAA, noerror, []string{rr(db, "AAAA fd00:2::10")}, nil},
		{"endpoint A", "db-0.c1." + db, dns.TypeA, noerror, []string{rr("db-0.c1."+db, "A 10.1.0.10")}, nil},
		{"dual-stack endpoint A", "db-0.c2." + db, dns.TypeA, noerror, []string{rr("db-0.c2."+db, "A 10.2.0.10")}, nil},
		{"dual-stack endpoint AAAA", "db-0.c2." + db, dns.TypeAAAA, noerror, []string{rr("db-0.c2."+db, "AAAA fd00:2::10")}, nil},
		{"endpoint without hostname is named by its address", "10-2-0-11.c2." + db, dns.TypeA, noerror,
			[]string{rr("10-2-0-11.c2."+db, "A 10.2.0.11")}, nil},
		{"endpoint of a two-label cluster ID", "db-0.east.reg." + db, dns.TypeA, noerror,
			[]string{rr("db-0.east.reg."+db, "A 10.3.0.10")}, nil},
		{"endpoint with no AAAA", "db-0.c1." + db, dns.TypeAAAA, noerror, nil, nil},
		{"endpoint not ready", "db-1.c1." + db, dns.TypeA, nxdomain, nil, nil},
		{"cluster label is an empty non-terminal", "c1." + db, dns.TypeA, noerror, nil, nil},
		{"two-label cluster ID is an empty non-terminal", "east.reg." + db, dns.TypeA, noerror, nil, nil},
		{"last label of a two-label cluster ID too", "reg." + db, dns.TypeA, noerror, nil, nil},
		{"unknown cluster", "c9." + db, dns.TypeA, nxdomain, nil, nil},
		{"headless SRV: one per named endpoint", "_pg._tcp." + db, dns.TypeSRV, noerror, []string{
			rr("_pg._tcp."+db, "SRV 0 100 5432 10-2-0-11.c2."+db),
			rr("_pg._tcp."+db, "SRV 0 100 5432 db-0.c1."+db),
			rr("_pg._tcp."+db, "SRV 0 100 5432 db-0.c2."+db),
			rr("_pg._tcp."+db, "SRV 0 100 5432 db-0.east.reg."+db),
		}, []string{
			rr("10-2-0-11.c2."+db, "A 10.2.0.11"),
			rr("db-0.c1."+db, "A 10.1.0.10"),
			rr("db-0.c2."+db, "A 10.2.0.10"),
			rr("db-0.c2."+db, "AAAA fd00:2::10"),
			rr("db-0.east.reg."+db, "A 10.3.0.10"),
		}},
		{"headless without ready endpoints is NXDOMAIN (spec 2.4.1)", "empty.other.svc.clusterset.local.", dns.TypeA, nxdomain, nil, nil},
		{"nor its SRV", "_x._tcp.empty.other.svc.clusterset.local.", dns.TypeSRV, nxdomain, nil, nil},
		{"ClusterSetIP service without an IP", "novip.other2.svc.clusterset.local.", dns.TypeA, nxdomain, nil, nil},

		// Structure of the zone.
		{"dns-version", "dns-version.clusterset.local.", dns.TypeTXT, noerror,
			[]string{`dns-version.clusterset.local. 5 IN TXT "1.0.0"`}, nil},
		{"dns-version A is NODATA", "dns-version.clusterset.local.", dns.TypeA, noerror, nil, nil},
		{"apex SOA", zone, dns.TypeSOA, noerror,
			[]string{"clusterset.local. 5 IN SOA ns.dns.clusterset.local. hostmaster.clusterset.local. 2 7200 1800 86400 5"}, nil},
		{"apex NS is NODATA", zone, dns.TypeNS, noerror, nil, nil},
		{"apex A is NODATA", zone, dns.TypeA, noerror, nil, nil},
		{"svc is an empty non-terminal", "svc.clusterset.local.", dns.TypeA, noerror, nil, nil},
		{"namespace is an empty non-terminal", "prod.svc.clusterset.local.", dns.TypeA, noerror, nil, nil},
		{"namespace whose only service has no records", "other.svc.clusterset.local.", dns.TypeA, nxdomain, nil, nil},
		{"unknown namespace", "nope.svc.clusterset.local.", dns.TypeA, nxdomain, nil, nil},
		{"unknown service", "nope.prod.svc.clusterset.local.", dns.TypeA, nxdomain, nil, nil},
		{"name beside svc", "pod.clusterset.local.", dns.TypeA, nxdomain, nil, nil},
		{"escaped dot inside the zone", `a\.b.prod.svc.clusterset.local.`, dns.TypeA, nxdomain, nil, nil},
		{"escaped byte inside the zone", `web\000.prod.svc.clusterset.local.`, dns.TypeA, nxdomain, nil, nil},

		// Outside the zone.
		{"other zone", "example.com.", dns.TypeA, refused, nil, nil},
		{"parent of the zone", "local.", dns.TypeSOA, refused, nil, nil},
		{"root", ".", dns.TypeNS, refused, nil, nil},
		{"suffix but not a label boundary", "xclusterset.local.", dns.TypeA, refused, nil, nil},
		{"escaped dot before the zone", `web\.clusterset.local.`, dns.TypeA, refused, nil, nil},
		{"reverse name: PTR is left to cluster DNS", "1.0.42.10.in-addr.arpa.", dns.TypePTR, refused, nil, nil},
		{"zone transfer", zone, dns.TypeAXFR, refused, nil, nil},
		{"incremental zone transfer", zone, dns.TypeIXFR, refused, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := a.answer(query(tt.qname, tt.qtype, 0), true)
			if resp.Rcode != tt.rcode {
				t.Fatalf("rcode %s, want %s\n%v", rcode(resp.Rcode), rcode(tt.rcode), resp)
			}
			if !resp.Response || resp.Id != 4242 || resp.Truncated {
				t.Errorf("header: response %v id %d tc %v", resp.Response, resp.Id, resp.Truncated)
			}
			if len(resp.Question) != 1 || resp.Question[0].Name != tt.qname || resp.Question[0].Qtype != tt.qtype {
				t.Errorf("question %v, want the query's", resp.Question)
			}
			if got := rrStrings(resp.Answer); !slices.Equal(got, tt.answer) {
				t.Errorf("answer:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.answer, "\n"))
			}
			if got := rrStrings(resp.Extra); !slices.Equal(got, tt.extra) {
				t.Errorf("additional:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.extra, "\n"))
			}
			if tt.rcode == refused {
				if resp.Authoritative || len(resp.Ns) != 0 {
					t.Errorf("REFUSED with AA %v, authority %v", resp.Authoritative, resp.Ns)
				}
				return
			}
			if !resp.Authoritative {
				t.Error("AA not set")
			}
			if len(tt.answer) == 0 {
				checkNegative(t, resp, 5)
			} else if len(resp.Ns) != 0 {
				t.Errorf("authority %v in a positive answer", resp.Ns)
			}
			if _, err := resp.Pack(); err != nil {
				t.Errorf("pack: %v", err)
			}
		})
	}
}

// A query's spelling is kept in the question and in the answer's owner
// names (0x20 resolvers compare them); lookups ignore case.
func TestAnswerIgnoresCaseAndKeepsIt(t *testing.T) {
	a := newAnswerer(zone, 5, fixtureStore())
	for _, qname := range []string{"WEB.Prod.SVC.ClusterSet.LOCAL.", "_HTTP._Tcp.web.prod.svc.clusterset.local.", "DB-0.C1.db.prod.svc.clusterset.local."} {
		qtype := dns.TypeA
		if strings.HasPrefix(qname, "_") {
			qtype = dns.TypeSRV
		}
		resp := a.answer(query(qname, qtype, 0), false)
		if resp.Rcode != noerror || len(resp.Answer) == 0 {
			t.Fatalf("%s: %v", qname, resp)
		}
		if resp.Question[0].Name != qname {
			t.Errorf("question %q, want %q", resp.Question[0].Name, qname)
		}
		for _, rr := range resp.Answer {
			if rr.Header().Name != qname {
				t.Errorf("answer owner %q, want %q", rr.Header().Name, qname)
			}
		}
	}
	// The zone itself may be configured in any case.
	b := newAnswerer(mustZone(t, "ClusterSet.Local"), 5, fixtureStore())
	if resp := b.answer(query("web.prod.svc.clusterset.local.", dns.TypeA, 0), false); resp.Rcode != noerror || len(resp.Answer) != 1 {
		t.Errorf("zone configured in upper case: %v", resp)
	}
}

func mustZone(t *testing.T, z string) string {
	t.Helper()
	got, err := checkZone(z)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestAnswerOtherZoneAndTTL(t *testing.T) {
	a := newAnswerer(mustZone(t, "mesh.example"), 30, fixtureStore())
	resp := a.answer(query("web.prod.svc.mesh.example.", dns.TypeA, 0), true)
	if got := rrStrings(resp.Answer); !slices.Equal(got, []string{"web.prod.svc.mesh.example. 30 IN A 10.42.0.1"}) {
		t.Errorf("answer %v", got)
	}
	resp = a.answer(query("nope.mesh.example.", dns.TypeA, 0), true)
	if resp.Rcode != nxdomain || len(resp.Ns) != 1 || resp.Ns[0].(*dns.SOA).Minttl != 30 || resp.Ns[0].Header().Name != "mesh.example." {
		t.Errorf("negative answer %v", resp)
	}
	if resp := a.answer(query("web.prod.svc.clusterset.local.", dns.TypeA, 0), true); resp.Rcode != refused {
		t.Errorf("default zone answered by a server of another zone: %v", resp)
	}
}

func TestAnswerEmptyStore(t *testing.T) {
	a := newAnswerer(zone, 5, NewStore())
	for name, want := range map[string]int{zone: noerror, "dns-version." + zone: noerror, "svc." + zone: nxdomain, "web.prod.svc." + zone: nxdomain} {
		resp := a.answer(query(name, dns.TypeA, 0), true)
		if resp.Rcode != want {
			t.Errorf("%s: %s, want %s", name, rcode(resp.Rcode), rcode(want))
		}
		checkNegative(t, resp, 5)
	}
	// The zero Store is usable too.
	if resp := newAnswerer(zone, 5, &Store{}).answer(query("svc."+zone, dns.TypeA, 0), true); resp.Rcode != nxdomain {
		t.Errorf("zero Store: %v", resp)
	}
}

func TestAnswerMalformed(t *testing.T) {
	a := newAnswerer(zone, 5, fixtureStore())
	web := "web.prod.svc." + zone
	tests := []struct {
		name  string
		msg   func() *dns.Msg
		rcode int
	}{
		{"no question", func() *dns.Msg { m := query(web, dns.TypeA, 0); m.Question = nil; return m }, dns.RcodeFormatError},
		{"two questions", func() *dns.Msg {
			m := query(web, dns.TypeA, 0)
			m.Question = append(m.Question, m.Question[0])
			return m
		}, dns.RcodeFormatError},
		{"answer section in a query", func() *dns.Msg {
			m := query(web, dns.TypeA, 0)
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: web, Rrtype: dns.TypeA, Class: dns.ClassINET}}}
			return m
		}, dns.RcodeFormatError},
		{"two OPT records", func() *dns.Msg {
			m := query(web, dns.TypeA, 1232)
			m.Extra = append(m.Extra, m.Extra[0])
			return m
		}, dns.RcodeFormatError},
		{"OPT not at the root", func() *dns.Msg {
			m := query(web, dns.TypeA, 1232)
			m.Extra[0].Header().Name = web
			return m
		}, dns.RcodeFormatError},
		{"OPT as question type", func() *dns.Msg { return query(web, dns.TypeOPT, 0) }, dns.RcodeFormatError},
		{"a response", func() *dns.Msg { m := query(web, dns.TypeA, 0); m.Response = true; return m }, dns.RcodeFormatError},
		{"NOTIFY", func() *dns.Msg { m := query(zone, dns.TypeSOA, 0); m.Opcode = dns.OpcodeNotify; return m }, dns.RcodeNotImplemented},
		{"UPDATE", func() *dns.Msg { m := query(zone, dns.TypeSOA, 0); m.Opcode = dns.OpcodeUpdate; return m }, dns.RcodeNotImplemented},
		{"STATUS", func() *dns.Msg { m := query(zone, dns.TypeSOA, 0); m.Opcode = dns.OpcodeStatus; return m }, dns.RcodeNotImplemented},
		{"class CHAOS", func() *dns.Msg {
			m := query("version.bind.", dns.TypeTXT, 0)
			m.Question[0].Qclass = dns.ClassCHAOS
			return m
		}, refused},
		{"class CHAOS in the zone", func() *dns.Msg { m := query(web, dns.TypeA, 0); m.Question[0].Qclass = dns.ClassCHAOS; return m }, refused},
		{"EDNS version 1", func() *dns.Msg { m := query(web, dns.TypeA, 1232); m.Extra[0].(*dns.OPT).SetVersion(1); return m }, dns.RcodeBadVers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := a.answer(tt.msg(), true)
			if resp.Rcode != tt.rcode {
				t.Fatalf("rcode %s, want %s\n%v", rcode(resp.Rcode), rcode(tt.rcode), resp)
			}
			if resp.Authoritative || len(resp.Answer)+len(resp.Ns) != 0 {
				t.Errorf("error response with AA %v or records %v %v", resp.Authoritative, resp.Answer, resp.Ns)
			}
			if tt.rcode == dns.RcodeBadVers && (resp.IsEdns0() == nil || resp.IsEdns0().Version() != 0) {
				t.Errorf("BADVERS without an OPT of version 0: %v", resp)
			}
			if _, err := resp.Pack(); err != nil {
				t.Errorf("pack: %v", err)
			}
		})
	}
	// The class ANY is answered like IN.
	m := query(web, dns.TypeA, 0)
	m.Question[0].Qclass = dns.ClassANY
	if resp := a.answer(m, true); resp.Rcode != noerror || len(resp.Answer) != 1 {
		t.Errorf("class ANY: %v", resp)
	}
}

func TestAnswerEDNS(t *testing.T) {
	a := newAnswerer(zone, 5, fixtureStore())
	resp := a.answer(query("web.prod.svc."+zone, dns.TypeA, 4096), true)
	opt := resp.IsEdns0()
	if opt == nil || opt.UDPSize() != advertisedUDPSize || opt.Version() != 0 || opt.Do() {
		t.Errorf("response OPT %v, want version 0, udp %d, no DO", opt, advertisedUDPSize)
	}
	if resp := a.answer(query("web.prod.svc."+zone, dns.TypeA, 0), true); resp.IsEdns0() != nil {
		t.Errorf("OPT in the answer to a query without EDNS: %v", resp)
	}
	// Negative answers carry it too.
	if resp := a.answer(query("nope."+zone, dns.TypeA, 1232), true); resp.IsEdns0() == nil {
		t.Errorf("no OPT in NXDOMAIN: %v", resp)
	}
}

func TestSRVTargetTooLong(t *testing.T) {
	long := strings.Repeat("h", 63)
	store := NewStore()
	store.Set(Service{Namespace: strings.Repeat("n", 63), Name: strings.Repeat("s", 63), Headless: true,
		Ports: []Port{{Name: "p", Port: 1}},
		Endpoints: []Endpoint{
			{Cluster: strings.Repeat("c", 63), Hostname: long, Addrs: ips("10.0.0.1"), Ready: true},
			{Cluster: "c", Hostname: "short", Addrs: ips("10.0.0.2"), Ready: true},
		}})
	a := newAnswerer(zone, 5, store)
	qname := "_p._tcp." + strings.Repeat("s", 63) + "." + strings.Repeat("n", 63) + ".svc." + zone
	resp := a.answer(query(qname, dns.TypeSRV, 0), false)
	if _, err := resp.Pack(); err != nil {
		t.Fatalf("pack: %v", err)
	}
	if len(resp.Answer) != 1 || !strings.HasPrefix(resp.Answer[0].(*dns.SRV).Target, "short.c.") {
		t.Errorf("want only the target that fits in 255 bytes: %v", resp.Answer)
	}
}

func TestLower(t *testing.T) {
	for in, want := range map[string]string{"": "", "abc.": "abc.", "AbC.": "abc.", `A\.B\255.`: `a\.b\255.`, "Z": "z"} {
		if got := lower(in); got != want {
			t.Errorf("lower(%q) = %q, want %q", in, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = lower("web.prod.svc.clusterset.local.") }); n != 0 {
		t.Errorf("lower of a lower-case name allocates %v times", n)
	}
}
