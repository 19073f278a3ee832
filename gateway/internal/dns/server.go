package dns

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Config.
const (
	DefaultZone = "clusterset.local."
	DefaultTTL  = 5
)

const (
	// readBufferSize is the largest UDP query read whole; a bigger one is
	// cut short and answered FORMERR.
	readBufferSize = 4096
	// shutdownTimeout bounds how long Run waits for queries in flight.
	shutdownTimeout = 5 * time.Second
	// freePortTries is how many UDP ports ":0" tries before giving up on
	// finding one whose TCP twin is free too.
	freePortTries = 10
)

// Config configures a Server.
type Config struct {
	// Zone is the zone served; empty means DefaultZone. KEP-1645 fixes
	// clusterset.local, but a clusterset may need another domain. Letters,
	// digits and dashes only; case does not matter.
	Zone string
	// TTL is the TTL of every record and of negative answers, in seconds;
	// zero means DefaultTTL. Short, because records follow endpoints.
	TTL uint32
	// Addr is the address both the UDP and the TCP listener bind, such as
	// "127.0.0.1:5353". With port 0 a free port is picked, the same one
	// for both.
	Addr string
	// Store holds the services answered; required.
	Store *Store
	// Logger receives start, stop and failures, never one line per query.
	Logger logr.Logger
	// Registerer, when set, receives the server's metrics: queries by
	// response code, truncated responses, ignored messages, latency and
	// services held. They are unregistered when Run returns.
	Registerer prometheus.Registerer
}

// Server answers DNS queries for the zone from a Store, over UDP and TCP.
type Server struct {
	ans     *answerer
	log     logr.Logger
	udp     net.PacketConn
	tcp     net.Listener
	addr    netip.AddrPort
	metrics *metrics
	reg     prometheus.Registerer
	ran     atomic.Bool
	bufs    sync.Pool // *[]byte, for packing responses
}

// NewServer checks cfg and binds the UDP and TCP listeners; Run serves on
// them. A Server that will never Run should still get Run with a canceled
// context, which releases the sockets at once.
func NewServer(cfg Config) (*Server, error) {
	zone, err := checkZone(cfg.Zone)
	if err != nil {
		return nil, err
	}
	ttl := cfg.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if ttl > math.MaxInt32 {
		return nil, fmt.Errorf("dns: TTL %d is above 2^31-1 (RFC 2181)", ttl)
	}
	if cfg.Store == nil {
		return nil, errors.New("dns: Store is required")
	}
	if cfg.Addr == "" {
		return nil, errors.New("dns: Addr is required (host:port; port 0 picks a free one)")
	}
	udp, tcp, err := listen(cfg.Addr)
	if err != nil {
		return nil, err
	}
	addr := udp.LocalAddr().(*net.UDPAddr).AddrPort()
	s := &Server{
		ans:     newAnswerer(zone, ttl, cfg.Store),
		log:     cfg.Logger,
		udp:     udp,
		tcp:     tcp,
		addr:    netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port()),
		metrics: newMetrics(cfg.Store),
		reg:     cfg.Registerer,
	}
	s.bufs.New = func() any { b := make([]byte, 1024); return &b }
	if err := s.metrics.register(cfg.Registerer); err != nil {
		_ = udp.Close()
		_ = tcp.Close()
		return nil, err
	}
	return s, nil
}

// checkZone returns the zone as a lower-case FQDN.
func checkZone(zone string) (string, error) {
	if zone == "" {
		return DefaultZone, nil
	}
	z := strings.ToLower(dns.Fqdn(zone))
	if z == "." {
		return "", errors.New("dns: zone must not be the root")
	}
	if len(z) > 200 {
		// Leave room for <host>.<cluster>.<svc>.<ns>.svc under it.
		return "", fmt.Errorf("dns: zone %q is longer than 200 characters", zone)
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(z, "."), ".") {
		if !isLabel(label) {
			return "", fmt.Errorf("dns: zone %q: label %q is not letters, digits and dashes", zone, label)
		}
	}
	return z, nil
}

// listen binds UDP and TCP on addr. With port 0 the kernel picks the UDP
// port and TCP takes the same one; if another program holds that TCP port,
// it tries again with a new UDP port.
func listen(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dns: listen address %q: %w", addr, err)
	}
	tries := 1
	if port == "0" {
		tries = freePortTries
	}
	for i := 1; ; i++ {
		udp, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns: %w", err) // names udp and the address
		}
		tcpAddr := net.JoinHostPort(host, strconv.Itoa(udp.LocalAddr().(*net.UDPAddr).Port))
		tcp, err := net.Listen("tcp", tcpAddr)
		if err == nil {
			return udp, tcp, nil
		}
		_ = udp.Close()
		if i >= tries || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("dns: %w", err) // names tcp and the address
		}
	}
}

// Addr is the address the listeners are bound to.
func (s *Server) Addr() netip.AddrPort { return s.addr }

// Run serves until ctx is done, then stops both listeners, waits (a few
// seconds at most) for the queries in flight, and returns nil. It returns
// an error if a listener fails. Run may be called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("dns: Server.Run called twice")
	}
	defer s.metrics.unregister(s.reg)
	defer func() {
		// Already closed by the shutdown unless a listener never started.
		_ = s.udp.Close()
		_ = s.tcp.Close()
	}()

	servers := []*dns.Server{
		{PacketConn: s.udp, UDPSize: readBufferSize},
		{Listener: s.tcp},
	}
	started := make([]chan struct{}, len(servers))
	stopped := make([]chan struct{}, len(servers))
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		started[i], stopped[i] = make(chan struct{}), make(chan struct{})
		srv.Handler = s
		srv.MsgAcceptFunc = s.accept
		srv.MsgInvalidFunc = s.invalid
		srv.NotifyStartedFunc = func() { close(started[i]) }
		go func() {
			defer close(stopped[i])
			if err := srv.ActivateAndServe(); err != nil {
				errc <- err
			}
		}()
	}
	s.log.Info("serving DNS", "zone", s.ans.zone, "address", s.addr.String(), "ttl", s.ans.ttl)

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("dns: serve on %s: %w", s.addr, err)
		s.log.Error(err, "DNS listener failed; stopping the other")
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	for i, srv := range servers {
		select {
		case <-started[i]:
			_ = srv.ShutdownContext(shutdown) // a timeout leaves only slow TCP clients behind
		case <-stopped[i]:
		}
		<-stopped[i]
	}
	s.log.Info("stopped serving DNS", "address", s.addr.String())
	return err
}

// accept screens a message by its header before it is parsed: responses
// are dropped unanswered (answering them could loop between two servers),
// opcodes other than QUERY get NOTIMP, and a query must have exactly one
// question and nothing in the answer and authority sections.
func (s *Server) accept(h dns.Header) dns.MsgAcceptAction {
	action := acceptHeader(h)
	switch action {
	case dns.MsgIgnore:
		s.metrics.ignored.Inc()
	case dns.MsgReject:
		s.metrics.byRcode[dns.RcodeFormatError].Inc()
	case dns.MsgRejectNotImplemented:
		s.metrics.byRcode[dns.RcodeNotImplemented].Inc()
	}
	return action
}

func acceptHeader(h dns.Header) dns.MsgAcceptAction {
	const qr = 1 << 15
	switch opcode := int(h.Bits>>11) & 0xF; {
	case h.Bits&qr != 0:
		return dns.MsgIgnore
	case opcode != dns.OpcodeQuery:
		return dns.MsgRejectNotImplemented
	case h.Qdcount != 1, h.Ancount != 0, h.Nscount != 0, h.Arcount > 2:
		return dns.MsgReject
	}
	return dns.MsgAccept
}

// invalid counts a message that could not be parsed. miekg/dns answers
// FORMERR when the header could be read (a name over 255 bytes, a label
// over 63, a truncated record) and drops the message otherwise.
func (s *Server) invalid(m []byte, err error) {
	if len(m) < 12 {
		s.metrics.ignored.Inc()
		return
	}
	s.metrics.byRcode[dns.RcodeFormatError].Inc()
	s.log.V(2).Info("malformed DNS query", "error", err.Error())
}

// ServeDNS answers one parsed query; the listeners call it. It always
// writes a response: if the answer cannot be packed (a bug), SERVFAIL.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	start := time.Now()
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	resp := s.ans.answer(req, udp)
	// PackBuffer uses the buffer only if its length (not capacity) is
	// enough, and allocates a bigger one otherwise, which is kept.
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	b, err := resp.PackBuffer(*bp)
	if err != nil {
		s.log.Error(err, "cannot pack DNS response", "question", questionString(req))
		resp = new(dns.Msg).SetRcode(req, dns.RcodeServerFailure)
		if b, err = resp.PackBuffer(*bp); err != nil {
			return
		}
	}
	*bp = b[:cap(b)]
	// Counted before it is sent: whoever has the response sees it counted.
	s.metrics.answered(resp.Rcode, resp.Truncated)
	if _, err := w.Write(b); err != nil {
		s.log.V(1).Info("cannot write DNS response", "error", err.Error())
	}
	s.metrics.duration.Observe(time.Since(start).Seconds())
}

func questionString(m *dns.Msg) string {
	if len(m.Question) == 0 {
		return ""
	}
	return m.Question[0].String()
}
