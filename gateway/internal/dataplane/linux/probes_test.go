package linux

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/wirespan/wirespan/gateway/internal/probe"
)

// routedPath makes a — r — b: namespace a (10.61.0.1) reaches b
// (10.62.0.2) through router r, whose link to b has an MTU of narrow,
// while a's and b's own links keep 1500. Only r knows the narrow hop, as
// when a path's bottleneck is a router's.
func routedPath(t *testing.T, narrow int) (a, b string, bAddr netip.Addr) {
	t.Helper()
	a, r, b := newNS(t), newNS(t), newNS(t)
	inNS(t, a, "ip", "link", "add", "ar", "type", "veth", "peer", "name", "ra", "netns", r)
	inNS(t, r, "ip", "link", "add", "rb", "type", "veth", "peer", "name", "bv", "netns", b)
	inNS(t, a, "ip", "addr", "add", "10.61.0.1/24", "dev", "ar")
	inNS(t, r, "ip", "addr", "add", "10.61.0.254/24", "dev", "ra")
	inNS(t, r, "ip", "addr", "add", "10.62.0.254/24", "dev", "rb")
	inNS(t, b, "ip", "addr", "add", "10.62.0.2/24", "dev", "bv")
	for ns, links := range map[string][]string{a: {"ar"}, r: {"ra", "rb"}, b: {"bv"}} {
		for _, l := range links {
			inNS(t, ns, "ip", "link", "set", l, "up")
		}
	}
	inNS(t, r, "ip", "link", "set", "rb", "mtu", strconv.Itoa(narrow))
	inNS(t, r, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	inNS(t, a, "ip", "route", "add", "default", "via", "10.61.0.254")
	inNS(t, b, "ip", "route", "add", "default", "via", "10.62.0.254")
	return a, b, netip.MustParseAddr("10.62.0.2")
}

// TestEchoFindsThePathMTU: don't-fragment echoes larger than a router's
// narrow link are lost, smaller ones come back, and the search of
// package probe finds the router's MTU exactly.
func TestEchoFindsThePathMTU(t *testing.T) {
	requireRoot(t)
	a, _, dst := routedPath(t, 1300)
	k := newKernel(t, a)
	ctx := context.Background()
	for size, want := range map[int]bool{1300: true, 1301: false, 1500: false, 576: true} {
		got, err := k.Echo(ctx, dst, 0, size, 300*time.Millisecond)
		if err != nil || got != want {
			t.Errorf("Echo(%d bytes) = %v, %v; want %v", size, got, err, want)
		}
	}
	// Larger than a's own link: refused locally, not sent.
	if got, err := k.Echo(ctx, dst, 0x5a, 1501, 300*time.Millisecond); err != nil || got {
		t.Errorf("Echo(1501 bytes over a 1500 link) = %v, %v; want false, nil", got, err)
	}
	largest, err := probe.Largest(probe.MinMTU, 1500, func(size int) (bool, error) {
		return k.Echo(ctx, dst, 0, size, 300*time.Millisecond)
	})
	if err != nil || largest != 1300 {
		t.Errorf("the path MTU search found %d, %v; want 1300", largest, err)
	}
}

// TestUnderlayMTUHearsTheRouter: after a don't-fragment datagram too large
// for a router's link, the kernel knows the router's MTU for that
// destination; a path without a narrow hop reports the link's own.
func TestUnderlayMTUHearsTheRouter(t *testing.T) {
	requireRoot(t)
	a, _, dst := routedPath(t, 1300)
	k := newKernel(t, a)
	got, err := k.UnderlayMTU(context.Background(), netip.AddrPortFrom(dst, 51820), 0x5a, 1480)
	if err != nil || got != 1300 {
		t.Errorf("UnderlayMTU through a 1300-byte hop = %d, %v; want 1300", got, err)
	}
	a2, _, dst2 := routedPath(t, 1500)
	k2 := newKernel(t, a2)
	got, err = k2.UnderlayMTU(context.Background(), netip.AddrPortFrom(dst2, 51820), 0x5a, 1480)
	if err != nil || got != 1500 {
		t.Errorf("UnderlayMTU with no narrow hop = %d, %v; want 1500", got, err)
	}
}

// TestUDPRefusedTellsAClosedPortFromASilentOne: a port nobody listens on
// is refused; a port with a listener that does not answer (as WireGuard
// does not answer junk) and a port a firewall drops are silent alike.
func TestUDPRefusedTellsAClosedPortFromASilentOne(t *testing.T) {
	requireRoot(t)
	a, b, dst := routedPath(t, 1500)
	k := newKernel(t, a)
	ctx := context.Background()
	ep := netip.AddrPortFrom(dst, 51999)
	if refused, err := k.UDPRefused(ctx, ep, 0, 500*time.Millisecond); err != nil || !refused {
		t.Errorf("UDPRefused(closed port) = %v, %v; want true", refused, err)
	}
	// A listener in b that reads and never answers.
	kb := newKernel(t, b)
	var conn net.PacketConn
	if err := kb.ns.do(func() error {
		var err error
		conn, err = net.ListenPacket("udp", ep.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	if refused, err := k.UDPRefused(ctx, ep, 0, 500*time.Millisecond); err != nil || refused {
		t.Errorf("UDPRefused(a silent listener) = %v, %v; want false", refused, err)
	}
	_ = conn.Close()
	inNS(t, b, "nft", "add table inet wstdrop; add chain inet wstdrop in { type filter hook input priority 0; udp dport 51999 drop; }")
	if refused, err := k.UDPRefused(ctx, ep, 0, 500*time.Millisecond); err != nil || refused {
		t.Errorf("UDPRefused(dropped by a firewall) = %v, %v; want false", refused, err)
	}
}

// TestReversePathSeesTheStrictFilter: packets whose way back leaves by
// another link are refused under strict rp_filter and accepted under
// loose, and the effective value is the higher of the link's and all's.
func TestReversePathSeesTheStrictFilter(t *testing.T) {
	requireRoot(t)
	ns := newNS(t)
	k := newKernel(t, ns)
	// in0 receives; the way back to 10.70.0.0/16 leaves by out0.
	for _, l := range []string{"in0", "out0"} {
		inNS(t, ns, "ip", "link", "add", l, "type", "veth", "peer", "name", l+"p")
		inNS(t, ns, "ip", "link", "set", l, "up")
		inNS(t, ns, "ip", "link", "set", l+"p", "up")
	}
	inNS(t, ns, "ip", "addr", "add", "10.71.0.1/24", "dev", "in0")
	inNS(t, ns, "ip", "addr", "add", "10.72.0.1/24", "dev", "out0")
	inNS(t, ns, "ip", "route", "add", "10.70.0.0/16", "via", "10.72.0.2", "dev", "out0")
	inNS(t, ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	src, dst := netip.MustParseAddr("10.70.0.5"), netip.MustParseAddr("10.72.0.9")
	for _, c := range []struct {
		all, link    string
		wantRP       int
		wantAccepted bool
	}{
		{"0", "1", 1, false},
		{"0", "2", 2, true},
		{"1", "0", 1, false},
		{"1", "2", 2, true},
		{"0", "0", 0, true},
	} {
		inNS(t, ns, "sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter="+c.all, "net.ipv4.conf.in0.rp_filter="+c.link)
		rp, accepted, msg, err := k.ReversePath("in0", src, dst)
		if err != nil || rp != c.wantRP || accepted != c.wantAccepted || accepted != (msg == "") {
			t.Errorf("all=%s in0=%s: ReversePath = %d, %v, %q, %v; want %d, %v", c.all, c.link, rp, accepted, msg, err, c.wantRP, c.wantAccepted)
		}
	}
	if _, _, _, err := k.ReversePath("nosuch0", src, dst); err == nil {
		t.Error("ReversePath on a missing link: no error")
	}
}

// TestLookupAsksLikeAPod: A and AAAA answers are both returned, and a
// name the server does not know comes back NXDOMAIN with no address.
func TestLookupAsksLikeAPod(t *testing.T) {
	requireRoot(t)
	ns := newNS(t)
	k := newKernel(t, ns)
	var pc net.PacketConn
	if err := k.ns.do(func() error {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		r := new(dns.Msg)
		r.SetReply(q)
		name := q.Question[0].Name
		switch {
		case name != "echo.demo.svc.clusterset.local.":
			r.Rcode = dns.RcodeNameError
		case q.Question[0].Qtype == dns.TypeA:
			r.Answer = append(r.Answer, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.ParseIP("10.96.5.5")})
		case q.Question[0].Qtype == dns.TypeAAAA:
			r.Answer = append(r.Answer, &dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 5}, AAAA: net.ParseIP("fd00:96::5")})
		}
		_ = w.WriteMsg(r)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	defer func() { _ = srv.Shutdown() }()
	server := netip.MustParseAddrPort(pc.LocalAddr().String())
	rcode, addrs, err := k.Lookup(context.Background(), server, "echo.demo.svc.clusterset.local")
	if err != nil || rcode != "NOERROR" || len(addrs) != 2 || addrs[0].String() != "10.96.5.5" || addrs[1].String() != "fd00:96::5" {
		t.Errorf("Lookup(echo) = %q, %v, %v; want NOERROR, [10.96.5.5 fd00:96::5]", rcode, addrs, err)
	}
	rcode, addrs, err = k.Lookup(context.Background(), server, "nosuch.demo.svc.clusterset.local")
	if err != nil || rcode != "NXDOMAIN" || len(addrs) != 0 {
		t.Errorf("Lookup(nosuch) = %q, %v, %v; want NXDOMAIN and no address", rcode, addrs, err)
	}
}
