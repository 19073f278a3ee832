package linux

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// This file is the network side of a ProbeRequest (package probe): a few
// packets and kernel questions in the Kernel's namespace. None of it
// changes the kernel's state, and none of it holds the Kernel's lock while
// it waits for packets, so a probe never delays an apply.

// Echo sends one ICMP echo request of size bytes (the IPv4 header
// included) to dst with don't-fragment set, and reports whether the reply
// came within wait. The path MTU the kernel has cached is ignored
// (IP_PMTUDISC_PROBE), so the packet really tries the path; a packet
// larger than the outgoing link's MTU does not pass. mark is the fwmark
// of the request (0: none), which decides its route.
func (k *Kernel) Echo(ctx context.Context, dst netip.Addr, mark, size int, wait time.Duration) (bool, error) {
	if !dst.Is4() {
		return false, fmt.Errorf("echo to %s: only IPv4 is probed", dst)
	}
	if size < 28 || size > 65535 {
		return false, fmt.Errorf("echo of %d bytes: out of range", size)
	}
	var passed bool
	err := k.ns.do(func() error {
		var err error
		passed, err = echo4(ctx, dst, mark, size, wait)
		return err
	})
	return passed, err
}

func echo4(ctx context.Context, dst netip.Addr, mark, size int, wait time.Duration) (bool, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
	if err != nil {
		return false, fmt.Errorf("open ICMP socket: %w", err)
	}
	defer func() { _ = unix.Close(fd) }()
	if mark != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, mark); err != nil {
			return false, fmt.Errorf("set fwmark: %w", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_PROBE); err != nil {
		return false, fmt.Errorf("set don't-fragment: %w", err)
	}
	var idSeq [4]byte
	_, _ = rand.Read(idSeq[:])
	msg := make([]byte, size-20) // ICMP header and payload; the kernel adds the IP header
	msg[0] = 8                   // echo request
	copy(msg[4:8], idSeq[:])
	binary.BigEndian.PutUint16(msg[2:], checksum(msg))
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrInet4{Addr: dst.As4()}); err != nil {
		if errors.Is(err, unix.EMSGSIZE) {
			return false, nil // larger than the link towards dst
		}
		return false, fmt.Errorf("send echo to %s: %w", dst, err)
	}
	deadline := time.Now().Add(wait)
	buf := make([]byte, 65536)
	for {
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			return false, nil
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if errors.Is(err, unix.EINTR) || (err == nil && n == 0) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("wait for the echo reply: %w", err)
		}
		n, from, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) {
				continue
			}
			return false, fmt.Errorf("read the echo reply: %w", err)
		}
		// A raw IPv4 socket reads whole packets, every ICMP packet of the
		// namespace: keep only our reply.
		sa, ok := from.(*unix.SockaddrInet4)
		if !ok || netip.AddrFrom4(sa.Addr) != dst || n < 20 {
			continue
		}
		ihl := int(buf[0]&0x0f) * 4
		if n < ihl+8 {
			continue
		}
		icmp := buf[ihl:n]
		if icmp[0] == 0 && [4]byte(icmp[4:8]) == idSeq {
			return true, nil
		}
	}
}

// checksum is the Internet checksum (RFC 1071) of b.
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// udpDialer dials from the Kernel's namespace with the given fwmark (the
// WireGuard device's, so the datagrams take the device's own route to
// ep, not Wirespan's table) and, when df, don't-fragment set.
func udpDialer(mark int, df bool) *net.Dialer {
	return &net.Dialer{Control: func(network, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if mark != 0 {
				if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, mark); serr != nil {
					serr = fmt.Errorf("set fwmark: %w", serr)
					return
				}
			}
			if !df {
				return
			}
			if network == "udp6" {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DO)
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO)
			}
			if serr != nil {
				serr = fmt.Errorf("set don't-fragment: %w", serr)
			}
		})
		return errors.Join(err, serr)
	}}
}

// UDPRefused sends one datagram of a single zero byte to ep (a message
// type no WireGuard implementation takes, so it is dropped) and reports
// whether ep's host answered ICMP port unreachable within wait.
func (k *Kernel) UDPRefused(ctx context.Context, ep netip.AddrPort, mark int, wait time.Duration) (bool, error) {
	var refused bool
	err := k.ns.do(func() error {
		conn, err := udpDialer(mark, false).DialContext(ctx, "udp", ep.String())
		if err != nil {
			return fmt.Errorf("dial %s: %w", ep, err)
		}
		defer func() { _ = conn.Close() }()
		if _, err := conn.Write([]byte{0}); err != nil {
			if errors.Is(err, unix.ECONNREFUSED) {
				refused = true
				return nil
			}
			return fmt.Errorf("send to %s: %w", ep, err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		_, err = conn.Read(make([]byte, 1500))
		refused = errors.Is(err, unix.ECONNREFUSED)
		return nil
	})
	return refused, err
}

// UnderlayMTU sends a datagram of size bytes (IP header included) to ep
// with don't-fragment set, twice, 200 ms apart, so that a router's
// "fragmentation needed" for the first reaches the kernel, and returns
// the path MTU the kernel then knows towards ep (the route's, or the
// smaller one a router reported). The datagrams are zeros, which a
// WireGuard endpoint drops.
func (k *Kernel) UnderlayMTU(ctx context.Context, ep netip.AddrPort, mark, size int) (int, error) {
	hdr := 28
	if !ep.Addr().Unmap().Is4() {
		hdr = 48
	}
	if size <= hdr || size > 65535 {
		return 0, fmt.Errorf("datagram of %d bytes: out of range", size)
	}
	var mtu int
	err := k.ns.do(func() error {
		conn, err := udpDialer(mark, true).DialContext(ctx, "udp", ep.String())
		if err != nil {
			return fmt.Errorf("dial %s: %w", ep, err)
		}
		defer func() { _ = conn.Close() }()
		payload := make([]byte, size-hdr)
		for i := range 2 {
			if _, err := conn.Write(payload); err != nil && !errors.Is(err, unix.EMSGSIZE) && !errors.Is(err, unix.ECONNREFUSED) {
				return fmt.Errorf("send to %s: %w", ep, err)
			}
			if i == 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(200 * time.Millisecond):
				}
			}
		}
		raw, err := conn.(*net.UDPConn).SyscallConn()
		if err != nil {
			return err
		}
		var gerr error
		err = raw.Control(func(fd uintptr) {
			if hdr == 28 {
				mtu, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU)
			} else {
				mtu, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU)
			}
		})
		if err = errors.Join(err, gerr); err != nil {
			return fmt.Errorf("read the path MTU to %s: %w", ep, err)
		}
		return nil
	})
	return mtu, err
}

// ReversePath asks the kernel's routing whether it accepts a packet from
// src arriving on link for dst (`ip route get DST from SRC iif LINK`),
// which runs the reverse-path filter, and returns the link's effective
// rp_filter: the higher of its own and net.ipv4.conf.all's.
func (k *Kernel) ReversePath(link string, src, dst netip.Addr) (rpFilter int, accepted bool, message string, err error) {
	for _, name := range []string{"all", link} {
		v, err := k.Sysctl("net/ipv4/conf/" + name + "/rp_filter")
		if err != nil {
			return 0, false, "", err
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, false, "", fmt.Errorf("rp_filter of %s is %q: %w", name, v, err)
		}
		rpFilter = max(rpFilter, n)
	}
	if err := k.lock(); err != nil {
		return 0, false, "", err
	}
	defer k.mu.Unlock()
	_, err = k.nl.RouteGetWithOptions(dst.AsSlice(), &netlink.RouteGetOptions{Iif: link, SrcAddr: src.AsSlice()})
	switch {
	case errors.Is(err, unix.EXDEV), errors.Is(err, unix.EINVAL):
		// The kernel answers a failed source validation with EINVAL (a
		// martian source; older kernels EXDEV). The arguments are ours
		// and valid, and src is a remote unicast address, so the reverse
		// path is what fails.
		return rpFilter, false, fmt.Sprintf("the kernel drops packets from %s arriving on %s: the reverse-path check finds no route back to them through %s (%v)", src, link, link, err), nil
	case err != nil:
		return 0, false, "", fmt.Errorf("ip route get %s from %s iif %s: %w", dst, src, link, err)
	}
	return rpFilter, true, "", nil
}

// Lookup asks server for name's A and AAAA records, as a pod's resolver
// would (UDP, then TCP when the answer is truncated). rcode is the A
// query's response code.
func (k *Kernel) Lookup(ctx context.Context, server netip.AddrPort, name string) (rcode string, addrs []netip.Addr, err error) {
	err = k.ns.do(func() error {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
			r, err := exchange(ctx, server, name, qtype)
			if err != nil {
				return err
			}
			if qtype == dns.TypeA {
				rcode = dns.RcodeToString[r.Rcode]
			}
			for _, rr := range r.Answer {
				switch rr := rr.(type) {
				case *dns.A:
					if a, ok := netip.AddrFromSlice(rr.A.To4()); ok {
						addrs = append(addrs, a)
					}
				case *dns.AAAA:
					if a, ok := netip.AddrFromSlice(rr.AAAA); ok {
						addrs = append(addrs, a)
					}
				}
			}
		}
		return nil
	})
	return rcode, addrs, err
}

func exchange(ctx context.Context, server netip.AddrPort, name string, qtype uint16) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	r, _, err := c.ExchangeContext(ctx, q, server.String())
	if err == nil && r.Truncated {
		c.Net = "tcp"
		r, _, err = c.ExchangeContext(ctx, q, server.String())
	}
	if err != nil {
		return nil, fmt.Errorf("ask %s for %s %s: %w", server, name, dns.TypeToString[qtype], err)
	}
	return r, nil
}
