package gossip

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// waitFor is how long any eventual condition may take; with the timing
// below conditions normally hold within a few hundred milliseconds.
const waitFor = 10 * time.Second

func testLogger(name string) logr.Logger {
	if os.Getenv("GOSSIP_TEST_LOG") == "" {
		return logr.Discard()
	}
	return funcr.New(func(prefix, args string) {
		fmt.Fprintln(os.Stderr, name, prefix, args)
	}, funcr.Options{Verbosity: 2})
}

// node is one gateway of the test pool.
type node struct {
	*Gossip
	cluster string
	reg     *prometheus.Registry
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

func (n *node) received(result string) float64 {
	return counterValue(n.metrics.received.WithLabelValues(result))
}

func (n *node) refusedCount(reason string) float64 {
	return counterValue(n.metrics.refused.WithLabelValues(reason))
}

// sealState seals s as a state message of epoch, echoing echo to every
// recipient: what a gateway of s's cluster sends.
func sealState(t *testing.T, s ClusterState, kr *Keyring, epoch, echo uint64) []byte {
	t.Helper()
	body, err := encodeState(s)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := sealMessage(header{kind: kindState, cluster: s.Cluster, epoch: epoch, seq: 1 << 40}, body, kr, func(string) uint64 { return echo })
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func (n *node) sent(result string) float64 {
	return counterValue(n.metrics.sent.WithLabelValues(result))
}

// Push/pull intervals for startPool: fast, for tests that need periodic
// resync, and never (within a test), for tests that show that direct sends
// and the exchanges done on join alone deliver state at once.
const (
	fastPushPull = 300 * time.Millisecond
	noPushPull   = time.Hour
)

// addrs is where each test gateway listens, by public key: the tests'
// PeerAddr, as the tunnel address derived from the key is in production.
var addrs sync.Map // wgtypes.Key → netip.AddrPort

// nowhere is the address of a cluster that runs no gateway: nothing
// listens on port 1.
var nowhere = netip.MustParseAddrPort("127.0.0.1:1")

func testPeerAddr(k wgtypes.Key) netip.AddrPort {
	if a, ok := addrs.Load(k); ok {
		return a.(netip.AddrPort)
	}
	return nowhere
}

// loopback is cluster c's own address on the loopback range (all of
// 127/8 is local on Linux), so that each gateway has a source address of
// its own, as tunnel addresses are.
func loopback(c string) netip.Addr {
	sum := sha256.Sum256([]byte(c))
	return netip.AddrFrom4([4]byte{127, 77, sum[0], sum[1] | 1})
}

// startPool starts one gateway per cluster on loopback, tells each about
// all the others and publishes a state for each; heartbeats find the
// others.
func startPool(t *testing.T, pushPull time.Duration, clusters ...string) []*node {
	t.Helper()
	keys := map[string]wgtypes.Key{}
	for _, c := range clusters {
		keys[c] = testKey(c).PublicKey()
	}
	var nodes []*node
	for _, c := range clusters {
		nodes = append(nodes, startNode(t, c, pushPull, AnyPort))
	}
	for _, n := range nodes {
		n.join(t, keys)
	}
	return nodes
}

// startNode starts the gateway of cluster c on port (AnyPort: a free one)
// and registers its address; it is shut down at the end of the test.
func startNode(t *testing.T, c string, pushPull time.Duration, port int) *node {
	t.Helper()
	return startGateway(t, c, "gw-"+c, pushPull, port)
}

// startGateway is startNode for a gateway on node gw.
func startGateway(t *testing.T, c, gw string, pushPull time.Duration, port int) *node {
	t.Helper()
	reg := prometheus.NewRegistry()
	g, err := New(Config{
		Cluster:          c,
		Node:             gw,
		PrivateKey:       testKey(c),
		BindAddr:         loopback(c),
		Port:             port,
		PeerAddr:         testPeerAddr,
		Logger:           testLogger(c),
		Registerer:       reg,
		ProbeInterval:    100 * time.Millisecond,
		ProbeTimeout:     50 * time.Millisecond,
		PushPullInterval: pushPull,
		TCPTimeout:       time.Second,
		RetryInterval:    100 * time.Millisecond,
		ExportTTL:        testExportTTL,
	})
	if err != nil {
		t.Fatalf("New(%s): %v", c, err)
	}
	t.Cleanup(func() {
		if err := g.Shutdown(); err != nil {
			t.Errorf("Shutdown(%s): %v", c, err)
		}
	})
	addrs.Store(testKey(c).PublicKey(), g.LocalAddr())
	return &node{Gossip: g, cluster: c, reg: reg}
}

// join gives n its peers and a state.
func (n *node) join(t *testing.T, keys map[string]wgtypes.Key) {
	t.Helper()
	if err := n.SetPeers(keys); err != nil {
		t.Fatalf("SetPeers(%s): %v", n.cluster, err)
	}
	if err := n.SetLocal(stateOf(n.cluster, "10.%d.0.0/16")); err != nil {
		t.Fatalf("SetLocal(%s): %v", n.cluster, err)
	}
}

// restart starts a new gateway for old's cluster (old must be shut down)
// at the same address, as a restarted gateway binds its tunnel address,
// and joins it to seed.
func restart(t *testing.T, old, seed *node) *node {
	t.Helper()
	n := startNode(t, old.cluster, old.cfg.PushPullInterval, int(old.LocalAddr().Port()))
	n.join(t, old.peers)
	if _, err := n.Join([]netip.AddrPort{seed.LocalAddr()}); err != nil {
		t.Fatalf("Join: %v", err)
	}
	return n
}

func exportsReceived(n *node, result string) float64 {
	return counterValue(n.metrics.exportsReceived.WithLabelValues(result))
}

// stateOf returns a state for cluster c whose pod CIDR is podFormat with
// c's first letter as a number.
func stateOf(c, podFormat string) ClusterState {
	return ClusterState{
		PodCIDRs:     []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf(podFormat, c[0]))},
		ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("fd00:" + c + "::/108")},
	}
}

// eventually polls cond until it holds or waitFor passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// drain empties the Changed channel, so the next signal is a new one.
func drain(g *Gossip) {
	select {
	case <-g.Changed():
	default:
	}
}

func waitChanged(t *testing.T, n *node, what string) {
	t.Helper()
	select {
	case <-n.Changed():
	case <-time.After(waitFor):
		t.Fatalf("%s: no Changed signal on %s", what, n.cluster)
	}
}

// knows reports whether n holds cluster c's state with pod CIDR pod.
func knows(n *node, c, pod string) bool {
	s, ok := n.Clusters()[c]
	return ok && len(s.PodCIDRs) == 1 && s.PodCIDRs[0].String() == pod && s.ActiveGateway == "gw-"+c
}

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
