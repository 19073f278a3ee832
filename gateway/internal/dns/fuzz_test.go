package dns

import (
	"encoding/binary"
	"net"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/miekg/dns"
)

// recorder is a dns.ResponseWriter that keeps what is written.
type recorder struct {
	udp    bool
	writes [][]byte
}

func (r *recorder) LocalAddr() net.Addr { return r.RemoteAddr() }
func (r *recorder) RemoteAddr() net.Addr {
	if r.udp {
		return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
	}
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
}
func (r *recorder) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = r.Write(b)
	return err
}
func (r *recorder) Write(b []byte) (int, error) {
	r.writes = append(r.writes, append([]byte(nil), b...))
	return len(b), nil
}
func (r *recorder) Close() error        { return nil }
func (r *recorder) TsigStatus() error   { return nil }
func (r *recorder) TsigTimersOnly(bool) {}
func (r *recorder) Hijack()             {}

// offlineServer is a Server without sockets, for calling ServeDNS.
func offlineServer(store *Store) *Server {
	s := &Server{ans: newAnswerer(zone, 5, store), log: logr.Discard(), metrics: newMetrics(store)}
	s.bufs.New = func() any { b := make([]byte, 1024); return &b }
	return s
}

// FuzzQuery feeds raw bytes through the path a UDP or TCP message takes:
// the header screen (acceptHeader), miekg/dns's parser, then ServeDNS. It
// checks that nothing panics and that every message the server answers
// itself gets exactly one response that parses, matches the query's ID,
// is not SERVFAIL (which only a response that fails to pack produces), and
// over UDP fits the size the query allows. Messages screened out or that
// do not parse are answered by miekg/dns (FORMERR, NOTIMP) or dropped;
// TestServerMalformed covers those through real sockets.
func FuzzQuery(f *testing.F) {
	store := fixtureStore()
	store.Set(bigHeadless(60))
	s := offlineServer(store)

	seeds := []*dns.Msg{
		query("web.prod.svc."+zone, dns.TypeA, 0),
		query("web.prod.svc."+zone, dns.TypeAAAA, 1232),
		query("WEB.prod.svc."+zone, dns.TypeANY, 0),
		query("_http._tcp.web.prod.svc."+zone, dns.TypeSRV, 0),
		query("_pg._tcp.db.prod.svc."+zone, dns.TypeSRV, 4096),
		query("_http._tcp.big.prod.svc."+zone, dns.TypeSRV, 0),
		query("big.prod.svc."+zone, dns.TypeA, 512),
		query("db-0.east.reg.db.prod.svc."+zone, dns.TypeA, 0),
		query("dns-version."+zone, dns.TypeTXT, 0),
		query(zone, dns.TypeSOA, 0),
		query("prod.svc."+zone, dns.TypeA, 0),
		query("nope.prod.svc."+zone, dns.TypeA, 0),
		query("example.com.", dns.TypeA, 0),
		query(`a\.b.svc.`+zone, dns.TypeA, 0),
	}
	for _, m := range seeds {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	long := strings.Repeat("a", 63)
	f.Add(rawQuery(1, 0, 1, wireName(long, long, long, long, "clusterset", "local")))
	f.Add(rawQuery(2, 0, 1, wireName(strings.Repeat("b", 64), "clusterset", "local")))
	f.Add(rawQuery(3, 0, 1, []byte{0xc0, 12}))
	f.Add(rawQuery(4, 0, 2, wireName("svc", "clusterset", "local")))
	f.Add([]byte{0, 1, 2})

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 12 {
			return // the listeners drop these unread
		}
		h := dns.Header{
			Id: binary.BigEndian.Uint16(data), Bits: binary.BigEndian.Uint16(data[2:]),
			Qdcount: binary.BigEndian.Uint16(data[4:]), Ancount: binary.BigEndian.Uint16(data[6:]),
			Nscount: binary.BigEndian.Uint16(data[8:]), Arcount: binary.BigEndian.Uint16(data[10:]),
		}
		if acceptHeader(h) != dns.MsgAccept {
			return
		}
		for _, udp := range []bool{true, false} {
			req := new(dns.Msg)
			if err := req.Unpack(data); err != nil {
				return
			}
			w := &recorder{udp: udp}
			s.ServeDNS(w, req)
			if len(w.writes) != 1 {
				t.Fatalf("%d responses to %v", len(w.writes), req)
			}
			resp := new(dns.Msg)
			if err := resp.Unpack(w.writes[0]); err != nil {
				t.Fatalf("response does not parse: %v\nquery %v", err, req)
			}
			if !resp.Response || resp.Id != req.Id {
				t.Fatalf("response header %v for query %v", resp.MsgHdr, req.MsgHdr)
			}
			if resp.Rcode == dns.RcodeServerFailure {
				t.Fatalf("SERVFAIL (a response that did not pack) for %v", req)
			}
			if udp {
				limit := dns.MinMsgSize
				if opt := req.IsEdns0(); opt != nil {
					limit = min(max(int(opt.UDPSize()), dns.MinMsgSize), maxUDPSize)
				}
				if len(w.writes[0]) > limit {
					t.Fatalf("UDP response of %d bytes, limit %d, for %v", len(w.writes[0]), limit, req)
				}
			}
			if resp.Rcode != dns.RcodeFormatError && resp.Rcode != dns.RcodeNotImplemented &&
				(len(resp.Question) != 1 || resp.Question[0] != req.Question[0]) {
				t.Fatalf("question %v, want the query's %v", resp.Question, req.Question)
			}
		}
	})
}
