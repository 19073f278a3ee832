package linux

import (
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

// TestGossipInput: the rule lets only the peers' addresses reach the gossip
// port, in the real kernel; it lives next to the MSS clamp in Wirespan's
// table without either removing the other.
func TestGossipInput(t *testing.T) {
	requireRoot(t)
	ns := newNS(t)
	k := newKernel(t, ns)
	for _, a := range []string{"10.99.0.1/32", "10.99.0.2/32", "10.99.0.9/32"} {
		inNS(t, ns, "ip", "addr", "add", a, "dev", "lo")
	}
	want := &dataplane.GossipInput{
		Addr:  netip.MustParseAddr("10.99.0.1"),
		Port:  7946,
		Peers: []netip.Addr{netip.MustParseAddr("10.99.0.2"), netip.MustParseAddr("10.99.0.3")},
	}
	if got, err := k.GossipInput(); err != nil || got != nil {
		t.Fatalf("GossipInput with no table: %v, %v", got, err)
	}
	if err := k.SetMSSClamp([]string{"wg0"}); err != nil {
		t.Fatal(err)
	}
	if err := k.SetGossipInput(want); err != nil {
		t.Fatal(err)
	}
	if got, err := k.GossipInput(); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("GossipInput = %v, %v; want %v", got, err, want)
	}
	out := inNS(t, ns, "nft", "list", "table", "inet", "wirespan")
	t.Logf("nft list table inet wirespan:\n%s", out)
	for _, line := range []string{
		"type filter hook input priority filter; policy accept;",
		`ip daddr 10.99.0.1 udp dport 7946 ip saddr 10.99.0.2 accept comment "gossip-input accept 10.99.0.2 udp"`,
		`ip daddr 10.99.0.1 tcp dport 7946 counter packets 0 bytes 0 drop comment "gossip-input drop 10.99.0.1 7946 tcp"`,
		`comment "mss-clamp oifname wg0"`,
	} {
		if !strings.Contains(out, line) {
			t.Errorf("nft output lacks %q", line)
		}
	}

	// A peer's datagram arrives; one from another address does not.
	var listener, fromPeer, fromOther *net.UDPConn
	if err := k.ns.do(func() (err error) {
		if listener, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("10.99.0.1:7946"))); err != nil {
			return err
		}
		if fromPeer, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("10.99.0.2:0"))); err != nil {
			return err
		}
		fromOther, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("10.99.0.9:0")))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*net.UDPConn{listener, fromPeer, fromOther} {
		t.Cleanup(func() { _ = c.Close() })
	}
	to := netip.MustParseAddrPort("10.99.0.1:7946")
	for _, c := range []*net.UDPConn{fromOther, fromPeer} {
		if _, err := c.WriteToUDPAddrPort([]byte("hello"), to); err != nil {
			t.Fatal(err)
		}
	}
	_ = listener.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 16)
	_, from, err := listener.ReadFromUDPAddrPort(buf)
	if err != nil || from.Addr() != netip.MustParseAddr("10.99.0.2") {
		t.Fatalf("first datagram from %v (%v), want the peer's", from, err)
	}
	_ = listener.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, from, err := listener.ReadFromUDPAddrPort(buf); err == nil {
		t.Fatalf("a datagram from %v got through", from)
	}
	if out := inNS(t, ns, "nft", "list", "chain", "inet", "wirespan", "gossip-input"); !strings.Contains(out, "udp dport 7946 counter packets 1") {
		t.Errorf("the drop is not counted:\n%s", out)
	}

	// Removing one leaves the other; removing both removes the table.
	if err := k.SetMSSClamp(nil); err != nil {
		t.Fatal(err)
	}
	if got, err := k.GossipInput(); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("GossipInput after the clamp went = %v, %v", got, err)
	}
	for range 2 {
		if err := k.SetGossipInput(nil); err != nil {
			t.Fatal(err)
		}
	}
	if tables := inNS(t, ns, "nft", "list", "tables"); strings.Contains(tables, "wirespan") {
		t.Errorf("table left after both chains were removed:\n%s", tables)
	}
	if err := k.SetGossipInput(&dataplane.GossipInput{Addr: netip.MustParseAddr("fd00::1"), Port: 1}); err == nil {
		t.Error("SetGossipInput took an IPv6 address")
	}
}
