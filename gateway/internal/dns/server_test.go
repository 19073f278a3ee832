package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// startServer runs a Server on a free port of 127.0.0.1 until the test
// ends, and checks that Run then returns nil.
func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	cfg.Logger = testr.New(t)
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context was canceled")
		}
	})
	return s
}

// rawQuery writes a DNS header and a question whose name is given in wire
// form, so that it can be anything, valid or not.
func rawQuery(id uint16, flags uint16, qdcount uint16, name []byte) []byte {
	b := make([]byte, 12, 12+len(name)+4)
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[2:], flags)
	binary.BigEndian.PutUint16(b[4:], qdcount)
	b = append(b, name...)
	return append(b, 0, 1, 0, 1) // A, IN
}

// wireName is a name in wire form from its labels, which may be longer
// than DNS allows.
func wireName(labels ...string) []byte {
	var b []byte
	for _, l := range labels {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

// exchangeRaw sends bytes over UDP or TCP and returns the response, or nil
// if none came within wait.
func exchangeRaw(t *testing.T, s *Server, network string, msg []byte, wait time.Duration) *dns.Msg {
	t.Helper()
	conn, err := net.Dial(network, s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if network == "tcp" {
		msg = append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)
	}
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65536)
	n, err := conn.Read(buf)
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if network == "tcp" {
		buf, n = buf[2:], n-2
	}
	resp := new(dns.Msg)
	if err := resp.Unpack(buf[:n]); err != nil {
		t.Fatalf("response does not parse: %v", err)
	}
	return resp
}

func TestServerMalformed(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := startServer(t, Config{Store: fixtureStore(), Registerer: reg})
	long63 := strings.Repeat("a", 63)
	valid := wireName("web", "prod", "svc", "clusterset", "local")
	tests := []struct {
		name  string
		msg   []byte
		rcode int // -1: no answer at all
	}{
		{"label of 64 bytes", rawQuery(1, 0, 1, wireName(strings.Repeat("a", 64), "clusterset", "local")), dns.RcodeFormatError},
		{"name over 255 bytes", rawQuery(2, 0, 1, wireName(long63, long63, long63, long63, "clusterset", "local")), dns.RcodeFormatError},
		{"compression loop", rawQuery(3, 0, 1, []byte{0xc0, 12}), dns.RcodeFormatError},
		{"question cut short", rawQuery(4, 0, 1, valid)[:20], dns.RcodeFormatError},
		{"no question", rawQuery(5, 0, 0, nil)[:12], dns.RcodeFormatError},
		{"two questions", append(rawQuery(6, 0, 2, valid), rawQuery(0, 0, 0, valid)[12:]...), dns.RcodeFormatError},
		{"NOTIFY", rawQuery(7, 4<<11, 1, valid), dns.RcodeNotImplemented},
		{"UPDATE", rawQuery(8, 5<<11, 1, valid), dns.RcodeNotImplemented},
		{"a response is not answered", rawQuery(9, 1<<15, 1, valid), -1},
		{"shorter than a header", []byte{1, 2, 3, 4, 5}, -1},
		{"valid, for comparison", rawQuery(10, 0, 1, valid), dns.RcodeSuccess},
	}
	for _, tt := range tests {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(tt.name+"/"+network, func(t *testing.T) {
				wait := 2 * time.Second
				if tt.rcode < 0 {
					wait = 300 * time.Millisecond
				}
				resp := exchangeRaw(t, s, network, tt.msg, wait)
				switch {
				case tt.rcode < 0 && resp != nil:
					t.Fatalf("answered: %v", resp)
				case tt.rcode < 0:
					return
				case resp == nil:
					t.Fatalf("no answer, want %s", rcode(tt.rcode))
				case resp.Rcode != tt.rcode || !resp.Response:
					t.Fatalf("rcode %s, want %s", rcode(resp.Rcode), rcode(tt.rcode))
				case resp.Id != binary.BigEndian.Uint16(tt.msg):
					t.Errorf("id %d, want the query's", resp.Id)
				}
			})
		}
	}
	// Every message was sent twice (UDP and TCP): FORMERR 6, NOTIMP 2,
	// NOERROR 1, ignored 2 (the response and the 5-byte message).
	for code, want := range map[int]float64{dns.RcodeFormatError: 12, dns.RcodeNotImplemented: 4, dns.RcodeSuccess: 2} {
		if got := value(t, s.metrics.byRcode[code]); got != want {
			t.Errorf("wirespan_dns_queries_total{rcode=%q} = %v, want %v", rcode(code), got, want)
		}
	}
	if got := value(t, s.metrics.ignored); got != 4 {
		t.Errorf("wirespan_dns_messages_ignored_total = %v, want 4", got)
	}
}

func TestServerMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	store := fixtureStore()
	store.Set(bigHeadless(200))
	s := startServer(t, Config{Store: store, Registerer: reg})
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	for _, q := range []*dns.Msg{
		query("web.prod.svc."+zone, dns.TypeA, 0),
		query("nope."+zone, dns.TypeA, 0),
		query("example.com.", dns.TypeA, 0),
		query("big.prod.svc."+zone, dns.TypeA, 0),
	} {
		if _, _, err := c.Exchange(q, s.Addr().String()); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]float64{
		`wirespan_dns_queries_total{rcode="BADVERS"}`:  0,
		`wirespan_dns_queries_total{rcode="FORMERR"}`:  0,
		`wirespan_dns_queries_total{rcode="NOERROR"}`:  2,
		`wirespan_dns_queries_total{rcode="NOTIMP"}`:   0,
		`wirespan_dns_queries_total{rcode="NXDOMAIN"}`: 1,
		`wirespan_dns_queries_total{rcode="REFUSED"}`:  1,
		`wirespan_dns_queries_total{rcode="SERVFAIL"}`: 0,
		`wirespan_dns_truncated_responses_total`:       1,
		`wirespan_dns_messages_ignored_total`:          0,
		`wirespan_dns_services`:                        6,
		`wirespan_dns_query_duration_seconds_count`:    4,
	}
	// The latency is observed once the response is sent, which can be
	// just after the client has it.
	got := gather(t, reg)
	for deadline := time.Now().Add(2 * time.Second); got[`wirespan_dns_query_duration_seconds_count`] < 4 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		got = gather(t, reg)
	}
	if len(got) != len(want) {
		t.Errorf("series: %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}

	// A second server cannot register the same metrics while the first
	// runs, and fails without disturbing the first one's.
	if _, err := NewServer(Config{Store: store, Addr: "127.0.0.1:0", Registerer: reg}); err == nil {
		t.Error("second server registered the same metrics")
	}
	if after := gather(t, reg); len(after) != len(want) {
		t.Errorf("after the failed registration: %v", after)
	}
}

// Run unregisters the metrics, so a new Server can use the registry.
func TestServerRestartOnSameRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	for range 2 {
		s, err := NewServer(Config{Store: NewStore(), Addr: "127.0.0.1:0", Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := s.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Run(ctx); err == nil {
			t.Error("second Run did not fail")
		}
		// The sockets are released: the port can be bound again.
		ln, err := net.ListenPacket("udp", s.Addr().String())
		if err != nil {
			t.Fatalf("UDP port still bound after Run: %v", err)
		}
		_ = ln.Close()
		tl, err := net.Listen("tcp", s.Addr().String())
		if err != nil {
			t.Fatalf("TCP port still bound after Run: %v", err)
		}
		_ = tl.Close()
	}
}

func TestNewServerErrors(t *testing.T) {
	busyUDP, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busyUDP.Close()
	busyTCP, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busyTCP.Close()
	store := NewStore()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no store", Config{Addr: "127.0.0.1:0"}, "Store is required"},
		{"no address", Config{Store: store}, "Addr is required"},
		{"bad address", Config{Store: store, Addr: "127.0.0.1"}, "listen address"},
		{"root zone", Config{Store: store, Addr: "127.0.0.1:0", Zone: "."}, "root"},
		{"zone with an underscore", Config{Store: store, Addr: "127.0.0.1:0", Zone: "cluster_set.local"}, "cluster_set"},
		{"zone with an empty label", Config{Store: store, Addr: "127.0.0.1:0", Zone: "a..local"}, `label ""`},
		{"long zone", Config{Store: store, Addr: "127.0.0.1:0", Zone: strings.Repeat("abcdefghij.", 21)}, "longer than 200"},
		{"TTL too big", Config{Store: store, Addr: "127.0.0.1:0", TTL: 1 << 31}, "TTL"},
		{"UDP port taken", Config{Store: store, Addr: busyUDP.LocalAddr().String()}, "listen udp " + busyUDP.LocalAddr().String()},
		{"TCP port taken", Config{Store: store, Addr: busyTCP.Addr().String()}, "listen tcp " + busyTCP.Addr().String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewServer(tt.cfg)
			if err == nil {
				canceled, cancel := context.WithCancel(context.Background())
				cancel()
				_ = s.Run(canceled)
				t.Fatalf("no error, want one with %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to say %q", err, tt.want)
			}
		})
	}
	// The UDP socket of a failed TCP bind is released: binding it works.
	if pc, err := net.ListenPacket("udp", busyTCP.Addr().String()); err != nil {
		t.Errorf("UDP socket left bound after the TCP bind failed: %v", err)
	} else {
		_ = pc.Close()
	}
}

func TestServerAddr(t *testing.T) {
	s := startServer(t, Config{Store: NewStore()})
	if !s.Addr().Addr().Is4() || !s.Addr().Addr().IsLoopback() || s.Addr().Port() == 0 {
		t.Errorf("Addr %v", s.Addr())
	}
	// UDP and TCP share the port.
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network, Timeout: 2 * time.Second}
		resp, _, err := c.Exchange(query(zone, dns.TypeSOA, 0), s.Addr().String())
		if err != nil || resp.Rcode != noerror || len(resp.Answer) != 1 {
			t.Errorf("%s: %v %v", network, resp, err)
		}
	}
}

// gather reads a registry as "name{label="value"}" → value; a histogram
// gives its count as name_count.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+strconv.Quote(l.GetValue()))
			}
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[name] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[name] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[name+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// value reads one counter.
func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
