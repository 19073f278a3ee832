package gossip

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func TestGossipConverges(t *testing.T) {
	nodes := startPool(t, noPushPull, "a", "b", "c")
	for _, n := range nodes {
		eventually(t, n.cluster+" knows the other clusters", func() bool {
			others := 0
			for _, m := range nodes {
				if m != n && knows(n, m.cluster, fmt.Sprintf("10.%d.0.0/16", m.cluster[0])) {
					others++
				}
			}
			return others == 2 && len(n.Clusters()) == 2
		})
		eventually(t, n.cluster+" sees 3 members", func() bool { return len(n.Members()) == 3 })
	}
	if got := nodes[0].Members(); got[1].Cluster != "b" || got[1].Node != "gw-b" || got[1].Addr != nodes[1].LocalAddr() {
		t.Errorf("member b = %+v, want cluster b, node gw-b at %v", got[1], nodes[1].LocalAddr())
	}

	// An update reaches the others promptly, without waiting for push/pull.
	a := nodes[0]
	before, _ := a.Local()
	for _, n := range nodes[1:] {
		drain(n.Gossip)
	}
	if err := a.SetLocal(stateOf("a", "172.%d.0.0/16")); err != nil {
		t.Fatal(err)
	}
	after, _ := a.Local()
	if after.Version <= before.Version {
		t.Errorf("version went from %d to %d", before.Version, after.Version)
	}
	for _, n := range nodes[1:] {
		waitChanged(t, n, "update")
		eventually(t, n.cluster+" gets a's update", func() bool { return knows(n, "a", "172.97.0.0/16") })
		if got := n.Clusters()["a"].Version; got != after.Version {
			t.Errorf("%s holds version %d of a, want %d", n.cluster, got, after.Version)
		}
	}
	// Setting the same content again changes nothing.
	if err := a.SetLocal(stateOf("a", "172.%d.0.0/16")); err != nil {
		t.Fatal(err)
	}
	if again, _ := a.Local(); again.Version != after.Version {
		t.Errorf("same state set again: version %d, want %d", again.Version, after.Version)
	}

	eventually(t, "a has a probe round trip to b", func() bool {
		rtt, ok := a.RTT("b")
		return ok && rtt > 0
	})
	if _, ok := a.RTT("nope"); ok {
		t.Error("RTT of an unknown cluster")
	}
	if got := gauge(t, a.reg, "wirespan_gossip_members"); got != 3 {
		t.Errorf("wirespan_gossip_members = %v, want 3", got)
	}
}

func TestGossipForgetsRemovedPeer(t *testing.T) {
	nodes := startPool(t, noPushPull, "a", "b", "c")
	a, b := nodes[0], nodes[1]
	eventually(t, "b knows a", func() bool { _, ok := b.Clusters()["a"]; return ok })

	drain(b.Gossip)
	onlyC := map[string]wgtypes.Key{"c": testKey("c").PublicKey()}
	if err := b.SetPeers(onlyC); err != nil {
		t.Fatal(err)
	}
	waitChanged(t, b, "peer removed")
	if _, ok := b.Clusters()["a"]; ok {
		t.Fatal("b still holds a's state after a was removed")
	}
	// a keeps talking to b (a still lists b): b's transport refuses it,
	// its address being no peer's any more.
	refused := b.refusedCount(refusedSource)
	if err := a.SetLocal(stateOf("a", "172.%d.0.0/16")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b refuses a's update", func() bool { return b.refusedCount(refusedSource) > refused })
	if _, ok := b.Clusters()["a"]; ok {
		t.Fatal("b accepted a's state while a is not a peer")
	}
	if _, ok := b.RTT("a"); ok {
		t.Error("b still reports a round trip to a")
	}

	// Re-added: b learns a's current state back, without a changing it and
	// without periodic push/pull (b asks a for an exchange).
	all := map[string]wgtypes.Key{"a": testKey("a").PublicKey(), "c": testKey("c").PublicKey()}
	if err := b.SetPeers(all); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b learns a back", func() bool { return knows(b, "a", "172.97.0.0/16") })
}

func TestGossipRejectsForgedAndStale(t *testing.T) {
	nodes := startPool(t, fastPushPull, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	if err := a.SetLocal(stateOf("a", "172.%d.0.0/16")); err != nil { // version 2
		t.Fatal(err)
	}
	eventually(t, "b knows a", func() bool { return knows(b, "a", "172.97.0.0/16") })
	held := b.Clusters()["a"]
	bNode := &memberlist.Node{Name: b.name, Addr: b.LocalAddr().Addr().AsSlice(), Port: b.LocalAddr().Port()}

	aEpoch := b.sessions["a"].epoch
	// c, a genuine member and peer, sends b a state in a's name, made with
	// its own key: right format, b's epoch echoed (it travels in the
	// clear), wrong key.
	msg := sealState(t, sampleState("a", held.Version+1000), testKeyring(t, "a", testKey("c"), "b"), aEpoch, b.epoch)
	badMAC := b.received(resultBadMAC)
	if err := c.ml.SendReliable(bNode, msg); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b counts the forgery as bad_mac", func() bool { return b.received(resultBadMAC) == badMAC+1 })

	// A genuine message from a, older than what b holds (a replay).
	old := held
	old.Version--
	old.PodCIDRs = []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}
	msg = sealState(t, old, testKeyring(t, "a", testKey("a"), "b"), aEpoch, b.epoch)
	stale := b.received(resultStale)
	if err := c.ml.SendReliable(bNode, msg); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b counts the replay as stale", func() bool { return b.received(resultStale) == stale+1 })

	// Garbage is counted as malformed.
	malformed := b.received(resultMalformed)
	if err := c.ml.SendReliable(bNode, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b counts garbage as malformed", func() bool { return b.received(resultMalformed) == malformed+1 })

	if got := b.Clusters()["a"]; got.Version != held.Version || !sameContent(got, held) {
		t.Errorf("b's state of a changed to %+v, want %+v", got, held)
	}
}

func TestGossipSeesShutdown(t *testing.T) {
	nodes := startPool(t, fastPushPull, "a", "b", "c")
	for _, n := range nodes {
		eventually(t, n.cluster+" sees 3 members", func() bool { return len(n.Members()) == 3 })
		drain(n.Gossip)
	}
	c := nodes[2]
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := c.SetLocal(ClusterState{}); err == nil {
		t.Error("SetLocal after Shutdown succeeded")
	}
	for _, n := range nodes[:2] {
		waitChanged(t, n, "member left")
		eventually(t, n.cluster+" sees c leave", func() bool {
			return !slices.ContainsFunc(n.Members(), func(m Member) bool { return m.Cluster == "c" })
		})
		if got := gauge(t, n.reg, "wirespan_gossip_members"); got != 2 {
			t.Errorf("%s: wirespan_gossip_members = %v, want 2", n.cluster, got)
		}
		// Heard keeps the silent cluster, absent, with its last message.
		heard := n.Heard()
		i := slices.IndexFunc(heard, func(h PeerHeard) bool { return h.Cluster == "c" })
		if len(heard) != 2 || i < 0 || heard[i].Present || heard[i].Heard.IsZero() || heard[i].Node != "gw-c" {
			t.Errorf("%s: Heard() = %+v, want the other live member and c absent, heard before, node gw-c", n.cluster, heard)
		}
		if j := 1 - i; i >= 0 && (!heard[j].Present || time.Since(heard[j].Heard) > 5*time.Second) {
			t.Errorf("%s: Heard() = %+v, want the live member present and heard recently", n.cluster, heard)
		}
	}
}

// TestGossipRetriesFailedSends: a present cluster that a direct send
// cannot reach gets the state again later, while it is present.
func TestGossipRetriesFailedSends(t *testing.T) {
	nodes := startPool(t, noPushPull, "a", "b")
	a := nodes[0]
	keys := map[string]wgtypes.Key{"b": testKey("b").PublicKey(), "x": testKey("x").PublicKey()}
	if err := a.SetPeers(keys); err != nil {
		t.Fatal(err)
	}
	// Cluster x spoke a moment ago, and its gateway's port is closed now,
	// as if it broke in between. It runs no gateway: its address is
	// nowhere, where nothing listens.
	a.mu.Lock()
	a.sessions["x"].heard = time.Now().Add(time.Hour)
	a.mu.Unlock()

	failed := a.sent("error")
	if err := a.SetLocal(stateOf("a", "172.%d.0.0/16")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the send to x fails", func() bool { return a.sent("error") >= failed+1 })
	eventually(t, "the send to x is retried", func() bool { return a.sent("error") >= failed+2 })
	eventually(t, "b gets the state", func() bool { return knows(nodes[1], "a", "172.97.0.0/16") })
}

func TestNewRejectsBadConfig(t *testing.T) {
	good := Config{Cluster: "a", Node: "n", PrivateKey: testKey("a"), BindAddr: netip.MustParseAddr("127.0.0.1"), Port: AnyPort, PeerAddr: testPeerAddr}
	for name, mutate := range map[string]func(*Config){
		"bad cluster": func(c *Config) { c.Cluster = "A_b" },
		"bad node":    func(c *Config) { c.Node = "" },
		"no key":      func(c *Config) { c.PrivateKey = wgtypes.Key{} },
		"no address":  func(c *Config) { c.BindAddr = netip.Addr{} },
		"bad port":    func(c *Config) { c.Port = 70000 },
		"no PeerAddr": func(c *Config) { c.PeerAddr = nil },
	} {
		cfg := good
		mutate(&cfg)
		if g, err := New(cfg); err == nil {
			_ = g.Shutdown()
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// hungListener is a TCP address on loopback where a connection attempt
// hangs: a listener with a backlog of 0 that never accepts, its queue
// filled by one connection, so that the kernel drops every further SYN,
// as for a peer that was cut off.
func hungListener(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sa.(*unix.SockaddrInet4).Port))
	for range 2 { // what the queue holds
		c, err := net.DialTimeout("tcp", addr.String(), 100*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	if c, err := net.DialTimeout("tcp", addr.String(), 200*time.Millisecond); err == nil {
		_ = c.Close()
		t.Skip("this kernel accepts connections beyond a full backlog: no way to make a dial hang here")
	}
	return addr
}

// TestShutdownDoesNotWaitForAHungDial: a gateway that stops gossip (it
// lost the role) while a delivery still dials a peer that does not answer
// (one that was cut off) returns at once, not after TCPTimeout. The
// syncer stops gossip inside its sync, so a hung dial held up the next
// sync, and with it a failover to this node, by seconds.
func TestShutdownDoesNotWaitForAHungDial(t *testing.T) {
	hung := hungListener(t)
	a := startGateway(t, "a", "gw-a", noPushPull, AnyPort, func(c *Config) { c.TCPTimeout = 30 * time.Second })
	addrs.Store(testKey("x").PublicKey(), hung)
	t.Cleanup(func() { addrs.Delete(testKey("x").PublicKey()) })
	if err := a.SetPeers(map[string]wgtypes.Key{"x": testKey("x").PublicKey()}); err != nil {
		t.Fatal(err)
	}
	// x spoke a moment ago: a sends it its state, and the dial hangs.
	a.mu.Lock()
	a.sessions["x"].heard = time.Now().Add(time.Hour)
	a.mu.Unlock()
	if err := a.SetLocal(stateOf("a", "172.%d.0.0/16")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the delivery is dialing
	start := time.Now()
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Shutdown took %v: it waited for the dial (TCPTimeout 30s)", took.Round(time.Millisecond))
	} else {
		t.Logf("Shutdown took %v with a dial hanging", took.Round(time.Millisecond))
	}
}
