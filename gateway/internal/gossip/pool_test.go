package gossip

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// The test pool: real gateways on loopback, each on an address of its own,
// and the helpers that read them.

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
// Options change the Config after the test pool's defaults.
func startGateway(t *testing.T, c, gw string, pushPull time.Duration, port int, options ...func(*Config)) *node {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := Config{
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
	}
	for _, o := range options {
		o(&cfg)
	}
	g, err := New(cfg)
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
