package gossip

import (
	"encoding/binary"
	"encoding/json"
	"net"
	"net/netip"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// The attacks of issue 13 on membership and gossip, each made with real
// memberlist traffic on loopback against a pool of real gateways, from the
// two kinds of source an attacker can have: a peer's tunnel address (a
// pod or process that holds it, on a peer's gateway node) and any other
// address (a host on a node network). Each must be refused, counted, and
// leave the honest clusters' view unchanged.

// memberlist message types (its net.go) that the attacks forge.
const (
	mlSuspect = 3
	mlAlive   = 4
	mlDead    = 5
)

// msgpack writes the few msgpack forms memberlist's messages use, so that
// the forged messages are exactly what memberlist itself would send.
type msgpack struct{ b []byte }

func (m *msgpack) mapOf(n int) *msgpack { m.b = append(m.b, 0x80|byte(n)); return m }
func (m *msgpack) str(s string) *msgpack {
	m.b = append(m.b, 0xd9, byte(len(s)))
	m.b = append(m.b, s...)
	return m
}
func (m *msgpack) u32(v uint32) *msgpack {
	m.b = binary.BigEndian.AppendUint32(append(m.b, 0xce), v)
	return m
}
func (m *msgpack) u16(v uint16) *msgpack {
	m.b = binary.BigEndian.AppendUint16(append(m.b, 0xcd), v)
	return m
}
func (m *msgpack) bin(v []byte) *msgpack {
	m.b = append(append(m.b, 0xc4, byte(len(v))), v...)
	return m
}
func (m *msgpack) u8s(v ...byte) *msgpack {
	m.b = append(m.b, 0x90|byte(len(v)))
	m.b = append(m.b, v...)
	return m
}

// forgedDeath is memberlist's "dead" (or "suspect") message about node,
// with the incarnation that made the victim's refutation wrap to 0.
func forgedDeath(typ byte, node string) []byte {
	m := &msgpack{b: []byte{typ}}
	m.mapOf(3).str("Incarnation").u32(0xFFFFFFFF).str("Node").str(node).str("From").str("c/gw-c")
	return m.b
}

// compound bundles messages as memberlist's compound message does.
func compound(parts ...[]byte) []byte {
	b := []byte{mlCompound, byte(len(parts))}
	for _, p := range parts {
		b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
	}
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// forgedAlive is memberlist's "alive" message announcing a ghost member.
func forgedAlive(node string, at netip.AddrPort) []byte {
	m := &msgpack{b: []byte{mlAlive}}
	m.mapOf(6).str("Incarnation").u32(1).str("Node").str(node).
		str("Addr").bin(at.Addr().AsSlice()).str("Port").u16(at.Port()).
		str("Meta").bin(nil).str("Vsn").u8s(1, 5, 2, 0, 0, 0)
	return m.b
}

// sendUDP sends packets to dst from src (port chosen by the kernel).
func sendUDP(t *testing.T, src netip.Addr, dst netip.AddrPort, packets ...[]byte) {
	t.Helper()
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	for _, p := range packets {
		if _, err := conn.WriteToUDPAddrPort(p, dst); err != nil {
			t.Fatal(err)
		}
	}
}

// honestView is what b holds of a: what must not change.
type honestView struct {
	Members []Member
	State   ClusterState
	Exports map[string]string
	Silent  bool
}

func viewOf(t *testing.T, b *node) honestView {
	t.Helper()
	ex, _ := exportsOf(b, "a")
	return honestView{Members: b.Members(), State: b.Clusters()["a"], Exports: ex, Silent: b.RemoteExports()["a"].Silent}
}

// exportingPool is a pool of a, b and c in which b knows a's state and
// exports.
func exportingPool(t *testing.T) (a, b, c *node) {
	t.Helper()
	nodes := startPool(t, fastPushPull, "a", "b", "c")
	a, b, c = nodes[0], nodes[1], nodes[2]
	if err := a.SetExports(map[ExportKey]json.RawMessage{key("shop", "web"): rec("1")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b knows a's and c's states, a's exports, and sees 3 members", func() bool {
		got, _ := exportsOf(b, "a")
		return len(got) == 1 && knows(b, "a", "10.97.0.0/16") && knows(b, "c", "10.99.0.0/16") && len(b.Members()) == 3
	})
	return a, b, c
}

// TestForgedDeathDoesNotEvict: memberlist "dead" and "suspect" messages for
// a's gateway, with incarnation 0xFFFFFFFF, sent to b from a peer's tunnel
// address and from another address. On main before this change, one such
// packet removed a and its exports from b's view within seconds.
func TestForgedDeathDoesNotEvict(t *testing.T) {
	_, b, c := exportingPool(t)
	before := viewOf(t, b)
	membership, source := b.refusedCount(refusedMembership), b.refusedCount(refusedSource)

	packets := [][]byte{
		forgedDeath(mlDead, "a/gw-a"), forgedDeath(mlSuspect, "a/gw-a"), forgedDeath(mlDead, "b/gw-b"),
		compound(forgedDeath(mlDead, "a/gw-a"), forgedDeath(mlSuspect, "a/gw-a")),
	}
	sendUDP(t, loopback("c"), b.LocalAddr(), packets...)                    // from c's tunnel address
	sendUDP(t, netip.MustParseAddr("127.0.0.1"), b.LocalAddr(), packets...) // from a node network
	eventually(t, "b refuses and counts every packet", func() bool {
		return b.refusedCount(refusedMembership) == membership+5 && b.refusedCount(refusedSource) == source+4
	})
	// Longer than the presence timeout, so that an eviction would show.
	time.Sleep(2 * c.cfg.presence())
	if after := viewOf(t, b); !reflect.DeepEqual(after, before) {
		t.Errorf("b's view of a changed:\nbefore %+v\n after %+v", before, after)
	}
}

// ghost is a plain memberlist node that counts what it is sent.
type ghost struct {
	*memberlist.Memberlist
	received atomic.Int64 // bytes of user messages
}

type ghostDelegate struct{ g *ghost }

func (ghostDelegate) NodeMeta(int) []byte                                        { return nil }
func (d ghostDelegate) NotifyMsg(b []byte)                                       { d.g.received.Add(int64(len(b))) }
func (ghostDelegate) GetBroadcasts(int, int) [][]byte                            { return nil }
func (ghostDelegate) LocalState(bool) []byte                                     { return nil }
func (d ghostDelegate) MergeRemoteState(b []byte, _ bool)                        { d.g.received.Add(int64(len(b))) }
func (ghostDelegate) NotifyAlive(*memberlist.Node) error                         { return nil }
func (ghostDelegate) NotifyMerge([]*memberlist.Node) error                       { return nil }
func (ghostDelegate) AckPayload() []byte                                         { return nil }
func (ghostDelegate) NotifyPingComplete(*memberlist.Node, time.Duration, []byte) {}

// boundTransport is memberlist's transport with its streams dialed from
// the bound address, as a process that holds the address can: memberlist's
// own leaves the source to the kernel.
type boundTransport struct {
	*memberlist.NetTransport
	addr netip.Addr
}

func (b boundTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(b.addr, 0))}
	return d.Dial("tcp", addr)
}

// DialAddressTimeout overrides the NetTransport's, which memberlist
// prefers to DialTimeout.
func (b boundTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return b.DialTimeout(a.Addr, timeout)
}

// startGhost starts a memberlist node named name on addr, shut down at
// the end of the test.
func startGhost(t *testing.T, name string, addr netip.Addr) *ghost {
	t.Helper()
	g := &ghost{}
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{addr.String()}, Logger: newStdLogger(testLogger(name))})
	if err != nil {
		t.Fatalf("start ghost %s: %v", name, err)
	}
	mc := memberlist.DefaultLocalConfig()
	mc.Name = name
	mc.Transport = boundTransport{nt, addr}
	mc.BindAddr = addr.String()
	mc.BindPort = nt.GetAutoBindPort()
	mc.AdvertisePort = mc.BindPort
	mc.ProbeInterval, mc.GossipInterval, mc.PushPullInterval = 50*time.Millisecond, 50*time.Millisecond, 100*time.Millisecond
	mc.Delegate = ghostDelegate{g}
	// Uncompressed, so that its messages get past the guard (which
	// refuses compressed ones) to the checks under test.
	mc.EnableCompression = false
	mc.Logger = newStdLogger(testLogger(name))
	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = nt.Shutdown()
		t.Fatalf("start ghost %s: %v", name, err)
	}
	g.Memberlist = ml
	t.Cleanup(func() { _ = ml.Shutdown() })
	return g
}

// TestGhostMembersGetNothing: plain memberlist nodes named a/ghost-N, one on
// a's own tunnel address (as a pod that holds it would be), one elsewhere,
// join b. On main they each got b's whole export snapshot, kept a's
// exports alive after a left, and kept joinMissing from dialing a.
func TestGhostMembersGetNothing(t *testing.T) {
	a, b, _ := exportingPool(t)
	if err := b.SetExports(map[ExportKey]json.RawMessage{key("shop", "db"): rec("b")}); err != nil {
		t.Fatal(err)
	}
	membership, source := b.refusedCount(refusedMembership), b.refusedCount(refusedSource)
	onA := startGhost(t, "a/ghost-1", loopback("a"))
	elsewhere := startGhost(t, "a/ghost-2", netip.MustParseAddr("127.0.0.1"))
	for _, g := range []*ghost{onA, elsewhere} {
		if _, err := g.Join([]string{b.LocalAddr().String()}); err == nil {
			t.Errorf("ghost %s joined b", g.LocalNode().Name)
		}
	}
	// Announce the ghosts by UDP too, as memberlist's gossip would.
	sendUDP(t, loopback("a"), b.LocalAddr(), forgedAlive("a/ghost-3", netip.AddrPortFrom(loopback("a"), 9)))
	// The ghost on a's address gets past the source check and is refused
	// for its join (a push/pull) and its alive; the other for its source.
	eventually(t, "b refuses the ghosts and counts them", func() bool {
		return b.refusedCount(refusedMembership) >= membership+2 && b.refusedCount(refusedSource) >= source+1
	})
	for _, m := range b.Members() {
		if m.Node != "gw-"+m.Cluster {
			t.Errorf("b counts %s as a member", m.Name)
		}
	}

	// a leaves: the ghosts keep talking, yet a goes silent after the TTL,
	// and b no longer counts a present (so the gateway dials a's address).
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a goes silent despite its ghosts", func() bool { return b.RemoteExports()["a"].Silent })
	for _, m := range b.Members() {
		if m.Cluster == "a" {
			t.Errorf("a still present at b: %+v", m)
		}
	}
	if got := onA.received.Load() + elsewhere.received.Load(); got != 0 {
		t.Errorf("the ghosts received %d bytes from b", got)
	}
}

// TestUnauthenticatedLargeMessages: 16 MiB messages that b must refuse
// without decoding them, sent through real memberlist streams by c's
// gateway (from any address but a peer's they do not get past the guard),
// and a stream longer than any message. On main a 16.5 MB export message from
// an unknown cluster was decoded, under the gossip lock, before its MAC
// was checked.
func TestUnauthenticatedLargeMessages(t *testing.T) {
	_, b, c := exportingPool(t)
	before := viewOf(t, b)
	sender := c.ml // c's gateway turned hostile: its streams come from its tunnel address
	to := nodeAt(b.LocalAddr())
	big := make([]byte, MaxExportSnapshotSize)
	unknown, err := sealMessage(header{kind: kindSnapshot, cluster: "z", epoch: 1, seq: 1}, big, testKeyring(t, "z", testKey("z"), "b"), func(string) uint64 { return b.epoch })
	if err != nil {
		t.Fatal(err)
	}
	forged, err := sealMessage(header{kind: kindSnapshot, cluster: "a", epoch: 1, seq: 1}, big, testKeyring(t, "a", testKey("c"), "b"), func(string) uint64 { return b.epoch })
	if err != nil {
		t.Fatal(err)
	}
	oversized := append(append([]byte(nil), unknown[:envelopeFixed]...), big...)
	oversized[envelopeFixed-1] = byte(kindHeartbeat)
	counts := func() [4]float64 {
		return [4]float64{exportsReceived(b, resultUnknownSender), exportsReceived(b, resultBadMAC), b.received(resultTooLarge), b.refusedCount(refusedStreamSize)}
	}
	start := counts()
	for _, m := range [][]byte{unknown, forged, oversized} {
		if err := sender.SendReliable(to, m); err != nil {
			t.Fatal(err)
		}
	}
	// memberlist takes user messages of up to 20 MiB; the guard stops
	// reading a stream past the largest message.
	_ = sender.SendReliable(to, make([]byte, 20<<20-16))
	want := [4]float64{start[0] + 1, start[1] + 1, start[2] + 1, start[3] + 1}
	deadline := time.Now().Add(waitFor)
	for counts() != want {
		if time.Now().After(deadline) {
			t.Fatalf("refusals (unknown sender, bad MAC, too large, stream size) = %v, want %v", counts(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if after := viewOf(t, b); !reflect.DeepEqual(after, before) {
		t.Errorf("b's view of a changed:\nbefore %+v\n after %+v", before, after)
	}
}

// TestStreamsBounded: streams beyond MaxStreams are closed at once and
// counted; a stream that never says what it is gives its slot back.
func TestStreamsBounded(t *testing.T) {
	a, b, _ := exportingPool(t)
	busy, membership := b.refusedCount(refusedBusy), b.refusedCount(refusedMembership)
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(loopback("c"), 0))}
	for range b.cfg.MaxStreams + 1 {
		conn, err := d.Dial("tcp", b.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
	}
	eventually(t, "b refuses the stream over its limit", func() bool { return b.refusedCount(refusedBusy) >= busy+1 })
	// The silent streams time out, give their slots back, and b takes
	// messages again.
	eventually(t, "the silent streams time out", func() bool {
		return b.refusedCount(refusedMembership) >= membership+float64(b.cfg.MaxStreams)
	})
	if err := a.SetLocal(stateOf("a", "172.%d.0.0/16")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b takes a's change", func() bool { return knows(b, "a", "172.97.0.0/16") })
}
