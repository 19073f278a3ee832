package linux

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wirespan/wirespan/gateway/internal/agent"
)

// TestGatewaysDualStack runs a dual-stack gateway pair whose tunnel
// crosses an IPv6 node network (endpoints "[addr]:port") and checks, in
// each family and each direction, that a pod reaches the other pod with
// its own source address, that the MSS of a connection through the tunnel
// is clamped by the header size of its own family, and that a restarted
// gateway changes nothing but the userspace device; then that teardown
// leaves nothing behind, in either family.
func TestGatewaysDualStack(t *testing.T) {
	requireRoot(t)
	a, b := dualStackPair(t, true)
	a.start(t, testMode())
	b.start(t, testMode())
	tunnelMTU := 1500 - agent.WireGuardOverhead
	for _, pair := range [][2]*cluster{{a, b}, {b, a}} {
		from, to := pair[0], pair[1]
		for _, fam := range []struct {
			src, dst netip.Addr
			header   int // IP + TCP, which the clamp takes off the route's MTU
		}{{from.podIP, to.podIP, 20 + 20}, {from.podIP6, to.podIP6, 40 + 20}} {
			mss := connectFrom(t, from.pod, to.pod, fam.src, fam.dst)
			t.Logf("%s to %s: MSS %d", fam.src, fam.dst, mss)
			// The server's MSS is the client's, clamped, less the 12 bytes
			// of TCP timestamps; unclamped it would be 1500 - header.
			if want := tunnelMTU - fam.header; mss > want || mss < want-12 {
				t.Errorf("%s to %s: MSS %d, want the clamp's %d (less options)", fam.src, fam.dst, mss, want)
			}
		}
	}
	a.gw.kill()
	restarted := a.start(t, testMode())
	for _, c := range restarted.report.Changes {
		if !strings.Contains(c, "wireguard") {
			t.Errorf("restarted gateway changed %q (all it should do is attach and configure the device)", c)
		}
	}
	connectFrom(t, a.pod, b.pod, a.podIP6, b.podIP6)
	a.teardown(t)
	b.teardown(t)
}

// TestGatewaysDualStackWithIPv4Only peers a dual-stack cluster with an
// IPv4-only one over an IPv4 node network: IPv4 works both ways, and the
// dual-stack side attempts nothing of IPv6 towards its peer (no IPv6
// route, no IPv6 AllowedIP): its apply succeeds with nothing refused.
func TestGatewaysDualStackWithIPv4Only(t *testing.T) {
	requireRoot(t)
	a, b := dualStackPair(t, false)
	b.cfg.PodCIDR6 = netip.Prefix{}
	a.cfg.Peer.PodCIDR6 = netip.Prefix{}
	a.start(t, testMode())
	b.start(t, testMode())
	connectFrom(t, a.pod, b.pod, a.podIP, b.podIP)
	connectFrom(t, b.pod, a.pod, b.podIP, a.podIP)
	out := inNS(t, a.node, "ip", "-6", "route", "show", "table", strconv.Itoa(gatewayTable))
	if strings.TrimSpace(out) != "" {
		t.Errorf("IPv6 routes towards an IPv4-only peer:\n%s", out)
	}
	a.teardown(t)
	b.teardown(t)
}

// dualStackPair is gatewayPair with IPv6 pod ranges on both sides, and an
// IPv6 node network between the gateways when underlay6 is set.
func dualStackPair(t *testing.T, underlay6 bool) (a, b *cluster) {
	t.Helper()
	a, b = gatewayPair(t)
	a.cfg.PodCIDR6 = netip.MustParsePrefix("fd00:201::/64")
	b.cfg.PodCIDR6 = netip.MustParsePrefix("fd00:202::/64")
	if underlay6 {
		a.cfg.NodeIP, b.cfg.NodeIP = netip.MustParseAddr("fd00:77::1"), netip.MustParseAddr("fd00:77::2")
		inNS(t, a.node, "ip", "addr", "add", "fd00:77::1/64", "dev", "va", "nodad")
		inNS(t, b.node, "ip", "addr", "add", "fd00:77::2/64", "dev", "vb", "nodad")
	}
	for _, pair := range [][2]*cluster{{a, b}, {b, a}} {
		self, peer := pair[0], pair[1]
		self.cfg.Peer.PodCIDR6 = peer.cfg.PodCIDR6
		self.cfg.Peer.Endpoint = netip.AddrPortFrom(peer.cfg.NodeIP, tunnelPort)
		self.podIP6 = addPod6(t, self.node, self.pod, self.cfg.PodCIDR6)
	}
	return a, b
}

// addPod6 gives the pod made by addPod an IPv6 address: the node side of
// its veth gets the first address of cidr, the pod the tenth, with a
// default route through the node.
func addPod6(t *testing.T, node, pod string, cidr netip.Prefix) netip.Addr {
	t.Helper()
	gw := cidr.Addr().Next()
	ip := cidr.Addr()
	for range 10 {
		ip = ip.Next()
	}
	bits := fmt.Sprintf("/%d", cidr.Bits())
	inNS(t, node, "ip", "addr", "add", gw.String()+bits, "dev", "host0", "nodad")
	inNS(t, pod, "ip", "addr", "add", ip.String()+bits, "dev", "eth0", "nodad")
	inNS(t, pod, "ip", "-6", "route", "add", "default", "via", gw.String())
	return ip
}

// connectFrom connects from src in pod namespace from to dst in pod
// namespace to, whose server answers with the source address it saw and
// the MSS of its side of the connection. The source must be src (no NAT
// anywhere on the path); it returns the MSS.
func connectFrom(t *testing.T, from, to string, src, dst netip.Addr) int {
	t.Helper()
	ln := listenIn(t, to, net.JoinHostPort(dst.String(), "7000"))
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			_, _ = fmt.Fprintln(c, host, maxSeg(c))
			_ = c.Close()
		}
	}()
	n, err := openNamespace(from)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = n.close() }()
	target := netip.AddrPortFrom(dst, 7000).String()
	deadline := time.Now().Add(30 * time.Second) // the first packets wait for the handshake
	for {
		var seen string
		err := n.do(func() error {
			c, err := net.DialTimeout("tcp", target, 2*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			seen, err = bufio.NewReader(c).ReadString('\n')
			return err
		})
		if err == nil {
			f := strings.Fields(seen)
			if len(f) != 2 || f[0] != src.String() {
				t.Errorf("%s saw a connection from %s as %q, want its own address (no NAT)", dst, src, seen)
				return 0
			}
			mss, _ := strconv.Atoi(f[1])
			return mss
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s to %s through the gateways: %v", src, target, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// maxSeg is a TCP connection's TCP_MAXSEG, or -1.
func maxSeg(c net.Conn) int {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return -1
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return -1
	}
	mss := -1
	_ = raw.Control(func(fd uintptr) {
		if v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG); err == nil {
			mss = v
		}
	})
	return mss
}

// TestVXLANLinkLocalIsTheKernels checks that the link-local next hop node
// agents derive for the gateway (agent.VXLANLinkLocal) is the address the
// kernel gives a VXLAN link with the gateway's MAC, so `ping6` to it from a
// node works as one would expect.
func TestVXLANLinkLocalIsTheKernels(t *testing.T) {
	requireRoot(t)
	ns := newNS(t)
	inNS(t, ns, "ip", "link", "add", "under0", "type", "veth", "peer", "name", "under1")
	gw := netip.MustParseAddr("172.28.1.10")
	inNS(t, ns, "ip", "link", "add", "vx0", "address", agent.MAC(gw).String(), "type", "vxlan", "id", "5182", "dstport", "4790", "dev", "under0")
	inNS(t, ns, "ip", "link", "set", "vx0", "up")
	out := inNS(t, ns, "ip", "-6", "addr", "show", "dev", "vx0")
	if want := agent.VXLANLinkLocal(gw).String() + "/64"; !strings.Contains(out, want) {
		t.Errorf("vx0 has\n%s\nwant %s", out, want)
	}
}
