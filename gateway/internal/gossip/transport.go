package gossip

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// memberlist's message types (the first byte of a packet or a stream, as
// memberlist writes them; see its net.go). Only these reach memberlist:
// Wirespan's own messages (user), and the ping and ack it measures round
// trips with. Every membership message (alive, suspect, dead, push/pull,
// compound) is refused: Wirespan decides membership from authenticated
// messages, and memberlist's membership is never used.
const (
	mlPing     = 0
	mlAck      = 2
	mlCompound = 7
	mlUser     = 8
	mlNackRsp  = 11
)

// Limits of the stream listener. A stream is one message (memberlist dials
// once per reliable send), so a stream never needs more than the largest
// message: a snapshot of exports, with memberlist's framing.
const (
	// maxStreamBytes bounds what is read from one stream.
	maxStreamBytes = MaxExportSnapshotSize + 2*envelopeOverhead + 1024
	// streamFirstByteTimeout bounds the wait for a stream's first byte.
	streamFirstByteTimeout = 2 * time.Second
)

// guard is the memberlist transport: memberlist's own NetTransport behind
// a filter. Only packets and streams from the current peers' tunnel
// addresses pass (the addresses derived from their keys in Git, which
// WireGuard ties to those keys); only the message types above pass;
// streams are limited in number and in bytes. What it refuses it counts
// (refused) and closes before memberlist reads a byte of it.
//
// memberlist's CIDRsAllowed does the first of these, but it is fixed when
// memberlist is created and the peers change at run time; and it does not
// bound streams.
type guard struct {
	inner   *memberlist.NetTransport
	bind    netip.Addr
	allowed atomic.Pointer[map[netip.Addr]bool]
	refused func(reason string)
	slots   chan struct{} // one per stream memberlist may hold

	packets chan *memberlist.Packet
	streams chan net.Conn
	stop    chan struct{} // Shutdown started: drop everything
	drained chan struct{} // the inner transport is shut down
	wg      sync.WaitGroup
	// dials is canceled by abortDials: a connection still being dialed
	// (a peer that is cut off takes TCPTimeout to fail) must not hold up
	// a gateway that is stopping gossip, and with it the sync that
	// stops it.
	dials      context.Context
	abortDials context.CancelFunc
}

var _ memberlist.Transport = (*guard)(nil)

func newGuard(bind netip.Addr, port, maxStreams int, logger *log.Logger, refused func(string)) (*guard, error) {
	inner, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{bind.String()},
		BindPort:  port,
		Logger:    logger,
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s port %d: %w", bind, port, err)
	}
	g := &guard{
		inner:   inner,
		bind:    bind,
		refused: refused,
		slots:   make(chan struct{}, maxStreams),
		packets: make(chan *memberlist.Packet),
		streams: make(chan net.Conn),
		stop:    make(chan struct{}),
		drained: make(chan struct{}),
	}
	g.dials, g.abortDials = context.WithCancel(context.Background())
	g.allowed.Store(&map[netip.Addr]bool{})
	g.wg.Add(2)
	go g.filterPackets()
	go g.filterStreams()
	return g, nil
}

// allow replaces the set of source addresses that may reach memberlist.
func (g *guard) allow(addrs map[netip.Addr]bool) { g.allowed.Store(&addrs) }

func (g *guard) permits(a netip.Addr) bool { return (*g.allowed.Load())[a.Unmap()] }

func (g *guard) filterPackets() {
	defer g.wg.Done()
	for {
		select {
		case p := <-g.inner.PacketCh():
			for _, part := range g.judgePacket(p) {
				select {
				case g.packets <- part:
				case <-g.stop:
				}
			}
		case <-g.drained:
			return
		}
	}
}

// judgePacket returns what of a packet may reach memberlist, counting
// what may not. A compound packet (memberlist bundles an ack with the
// alive broadcast it queues about itself at start) is split, and only its
// allowed parts pass.
func (g *guard) judgePacket(p *memberlist.Packet) []*memberlist.Packet {
	src, ok := p.From.(*net.UDPAddr)
	if !ok || !g.permits(src.AddrPort().Addr()) {
		g.refused(refusedSource)
		return nil
	}
	parts := [][]byte{p.Buf}
	if len(p.Buf) > 0 && p.Buf[0] == mlCompound {
		if parts = splitCompound(p.Buf[1:]); parts == nil {
			g.refused(refusedMembership)
			return nil
		}
	}
	var out []*memberlist.Packet
	for _, b := range parts {
		if len(b) == 0 || (b[0] != mlUser && b[0] != mlPing && b[0] != mlAck && b[0] != mlNackRsp) {
			g.refused(refusedMembership)
			continue
		}
		out = append(out, &memberlist.Packet{Buf: b, From: p.From, Timestamp: p.Timestamp})
	}
	return out
}

// splitCompound splits the body of memberlist's compound message: u8 n,
// n × u16 length, the parts. nil if it is malformed; a compound inside a
// compound is left as a part, which the caller refuses.
func splitCompound(b []byte) [][]byte {
	if len(b) < 1 {
		return nil
	}
	n := int(b[0])
	b = b[1:]
	if len(b) < 2*n {
		return nil
	}
	lengths, rest := b[:2*n], b[2*n:]
	parts := make([][]byte, 0, n)
	for i := range n {
		l := int(binary.BigEndian.Uint16(lengths[2*i:]))
		if l > len(rest) {
			return nil
		}
		parts = append(parts, rest[:l])
		rest = rest[l:]
	}
	return parts
}

func (g *guard) filterStreams() {
	defer g.wg.Done()
	for {
		select {
		case c := <-g.inner.StreamCh():
			g.admitStream(c)
		case <-g.drained:
			return
		}
	}
}

// admitStream checks the source and takes a slot at once, then reads the
// first byte on a goroutine of its own (a slow sender must not hold up
// the listener) and hands the stream to memberlist if it is a user message
// or a ping.
func (g *guard) admitStream(c net.Conn) {
	src, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok || !g.permits(src.AddrPort().Addr()) {
		g.refused(refusedSource)
		_ = c.Close()
		return
	}
	select {
	case g.slots <- struct{}{}:
	default:
		g.refused(refusedBusy)
		_ = c.Close()
		return
	}
	lc := &limitedConn{Conn: c, left: int64(maxStreamBytes), release: func() { <-g.slots }, refused: g.refused}
	g.wg.Go(func() {
		_ = c.SetReadDeadline(time.Now().Add(streamFirstByteTimeout))
		first, err := lc.r().Peek(1)
		if err != nil || (first[0] != mlUser && first[0] != mlPing) {
			g.refused(refusedMembership)
			_ = lc.Close()
			return
		}
		_ = c.SetReadDeadline(time.Time{})
		select {
		case g.streams <- lc:
		case <-g.stop:
			_ = lc.Close()
		}
	})
}

// FinalAdvertiseAddr implements memberlist.Transport.
func (g *guard) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return g.inner.FinalAdvertiseAddr(ip, port)
}

// WriteTo implements memberlist.Transport.
func (g *guard) WriteTo(b []byte, addr string) (time.Time, error) { return g.inner.WriteTo(b, addr) }

// PacketCh implements memberlist.Transport.
func (g *guard) PacketCh() <-chan *memberlist.Packet { return g.packets }

// StreamCh implements memberlist.Transport.
func (g *guard) StreamCh() <-chan net.Conn { return g.streams }

// DialTimeout implements memberlist.Transport. It dials from the bind
// address, the tunnel address, which is the only source peers accept;
// left to the kernel, the source would be whatever the route prefers.
func (g *guard) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(g.bind, 0))}
	return d.DialContext(g.dials, "tcp", addr)
}

// Shutdown implements memberlist.Transport. The forwarders keep draining
// the inner transport until it is shut down, because its listeners block
// on handing over what they received.
func (g *guard) Shutdown() error {
	g.abortDials()
	close(g.stop)
	err := g.inner.Shutdown()
	close(g.drained)
	g.wg.Wait()
	return err
}

// limitedConn is an accepted stream that fails once it has delivered
// left bytes, and gives its slot back when closed.
type limitedConn struct {
	net.Conn
	left    int64
	buf     *bufio.Reader
	once    sync.Once
	release func()
	refused func(string)
}

func (c *limitedConn) r() *bufio.Reader {
	if c.buf == nil {
		c.buf = bufio.NewReaderSize(readerFunc(c.readRaw), 4096)
	}
	return c.buf
}

func (c *limitedConn) readRaw(p []byte) (int, error) {
	if c.left <= 0 {
		c.refused(refusedStreamSize)
		return 0, errStreamTooLong
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *limitedConn) Read(p []byte) (int, error) { return c.r().Read(p) }

func (c *limitedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

var errStreamTooLong = errors.New("gossip stream longer than the largest message")

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
