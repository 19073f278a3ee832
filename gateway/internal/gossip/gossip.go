package gossip

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/hashicorp/memberlist"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Member is one gateway present in the pool: its cluster spoke, with a
// fresh authenticated message, within the presence timeout.
type Member struct {
	// Name is "<cluster>/<node>", Node the cluster's active gateway as its
	// last authenticated state names it; until that state arrives, Node is
	// empty and Name the cluster's.
	Name          string
	Cluster, Node string
	// Addr is the cluster's tunnel address and gossip port, derived from
	// its key (Config.PeerAddr), never from what a packet says.
	Addr netip.AddrPort
}

// Gossip is this gateway's membership in the pool and the exchange of
// cluster states over it. Its methods are safe for concurrent use.
type Gossip struct {
	cfg     Config
	name    string         // our member name
	addr    netip.AddrPort // where members reach us
	log     logr.Logger
	metrics *metrics
	ml      *memberlist.Memberlist
	guard   *guard
	// epoch names this boot (random, never 0); every message we seal
	// carries it and the next sequence number.
	epoch   uint64
	pinging atomic.Bool // a round of pings runs

	// mu guards everything below. It is taken inside memberlist callbacks,
	// some of which run under memberlist's own lock, so no memberlist
	// method is ever called with mu held.
	mu       sync.Mutex
	seq      uint64
	peers    map[string]wgtypes.Key
	keyring  *Keyring
	sessions map[string]*session // by cluster; kept when a peer is removed
	local    ClusterState        // Version 0: not set yet
	lastVer  uint64
	body     []byte // local, encoded; nil if unset
	sealed   []byte // body sealed for the current keyring and echoes
	remote   *store
	present  map[string]bool // clusters present at the last look
	// asked is when each cluster last asked for our state and got it: a
	// peer that keeps asking is answered at most every askInterval.
	asked     map[string]time.Time
	out       outbox
	shutdown  bool
	started   time.Time
	rtt       map[string]time.Duration // by cluster
	changedCh chan struct{}
	exp       exportState

	kick chan struct{} // wakes the sender
	stop chan struct{}
	done chan struct{} // closed when the sender has returned
}

// New binds the memberlist listeners and starts the sender. The pool is
// empty until SetPeers; no state is accepted until then.
func New(cfg Config) (*Gossip, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("gossip config: %w", err)
	}
	kr, _ := NewKeyring(cfg.Cluster, cfg.PrivateKey, nil)
	g := &Gossip{
		cfg:       cfg,
		name:      cfg.Cluster + "/" + cfg.Node,
		log:       cfg.Logger,
		epoch:     newEpoch(),
		peers:     map[string]wgtypes.Key{},
		keyring:   kr,
		sessions:  map[string]*session{},
		remote:    newStore(),
		present:   map[string]bool{},
		asked:     map[string]time.Time{},
		started:   time.Now(),
		rtt:       map[string]time.Duration{},
		changedCh: make(chan struct{}, 1),
		exp:       newExportState(),
		kick:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	g.metrics = newMetrics(func() float64 { return float64(len(g.Members())) })
	if err := g.metrics.register(cfg.Registerer); err != nil {
		return nil, err
	}
	if err := g.startMemberlist(); err != nil {
		g.metrics.unregister(cfg.Registerer)
		return nil, err
	}
	go g.sendLoop()
	return g, nil
}

// startMemberlist starts memberlist as a transport only: behind the guard,
// with no push/pull, refusing every other node as a member. It carries
// Wirespan's messages and answers pings; who is present is decided from
// authenticated messages (session.go), never from memberlist's view, which
// any host that reaches the port could rewrite.
func (g *Gossip) startMemberlist() error {
	cfg := g.cfg
	stdLog := newStdLogger(cfg.Logger.WithName("memberlist"))
	gd, err := newGuard(cfg.BindAddr.Unmap(), max(cfg.Port, 0), cfg.MaxStreams, stdLog, func(reason string) {
		g.metrics.refused.WithLabelValues(reason).Inc()
	})
	if err != nil {
		return fmt.Errorf("start gossip transport: %w", err)
	}
	mc := memberlist.DefaultWANConfig()
	mc.Name = g.name
	mc.Transport = gd
	mc.BindAddr = cfg.BindAddr.Unmap().String()
	mc.AdvertiseAddr = mc.BindAddr
	mc.BindPort = gd.inner.GetAutoBindPort()
	mc.AdvertisePort = mc.BindPort
	mc.ProbeInterval = cfg.ProbeInterval
	mc.ProbeTimeout = cfg.ProbeTimeout
	mc.PushPullInterval = 0 // snapshots go only to verified peers (sender.go)
	mc.TCPTimeout = cfg.TCPTimeout
	// Uncompressed, so that the guard reads a message's type in its first
	// byte, and no peer can make us inflate anything.
	mc.EnableCompression = false
	// memberlist queues an alive broadcast about itself at start and
	// bundles it with its pings and acks; the peers' guards refuse it
	// (counted as membership). Sent once, not four times.
	mc.RetransmitMult = 0
	mc.Logger = stdLog
	d := delegate{g}
	mc.Delegate, mc.Alive, mc.Merge = d, d, d
	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = gd.Shutdown()
		return fmt.Errorf("start memberlist on %s: %w", netip.AddrPortFrom(cfg.BindAddr, uint16(mc.BindPort)), err)
	}
	g.ml, g.guard = ml, gd
	g.addr = netip.AddrPortFrom(cfg.BindAddr.Unmap(), uint16(mc.AdvertisePort))
	return nil
}

// newEpoch returns a random, non-zero epoch: 0 means "unknown" on the wire.
func newEpoch() uint64 {
	for {
		var b [8]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
		if e := binary.BigEndian.Uint64(b[:]); e != 0 {
			return e
		}
	}
}

// LocalAddr returns the address and port other members reach us on.
func (g *Gossip) LocalAddr() netip.AddrPort { return g.addr }

// SetPeers sets the remote clusters (ID → WireGuard public key, from Git).
// Clusters no longer listed, or whose key changed, are forgotten: their
// state is dropped and their messages are refused until they are listed
// again. An entry for our own cluster is ignored. Unusable entries are left
// out and reported in the error; the others take effect. Only the peers'
// tunnel addresses (Config.PeerAddr) may reach the gossip port.
func (g *Gossip) SetPeers(keys map[string]wgtypes.Key) error {
	kr, err := NewKeyring(g.cfg.Cluster, g.cfg.PrivateKey, keys)
	g.mu.Lock()
	if g.shutdown {
		g.mu.Unlock()
		return fmt.Errorf("set peers: gossip is shut down")
	}
	changed, removed := false, false
	for id, old := range g.peers {
		if k := keys[id]; !kr.Has(id) || k != old {
			removed = true
			changed = g.remote.forget(id) || changed
			changed = g.forgetExportsLocked(id) || changed
			delete(g.rtt, id)
			delete(g.present, id)
		}
	}
	var added []string
	peers := make(map[string]wgtypes.Key, len(kr.keys))
	allowed := make(map[netip.Addr]bool, len(kr.keys))
	for _, id := range sortedKeys(kr.keys) {
		peers[id] = keys[id]
		addr := g.cfg.PeerAddr(keys[id])
		allowed[addr.Addr().Unmap()] = true
		s := g.sessions[id]
		if s == nil {
			s = &session{}
			g.sessions[id] = s
		}
		s.addr = addr
		if old, ok := g.peers[id]; !ok || old != keys[id] {
			added = append(added, id)
			// Tell it now that we are here, not at the next round.
			g.out.beat(id)
		}
	}
	g.peers, g.keyring = peers, kr
	g.guard.allow(allowed)
	if removed || len(added) > 0 {
		g.resealLocked()
	}
	g.metrics.clusters.Set(float64(len(g.remote.states)))
	g.mu.Unlock()

	if len(added) > 0 || removed {
		g.log.Info("Gossip peers changed", "added", added, "peers", len(peers))
	}
	g.wake()
	if changed {
		g.signal()
	}
	if err != nil {
		return fmt.Errorf("set peers: %w", err)
	}
	return nil
}

// SetLocal publishes our cluster's state. Cluster defaults to Config.Cluster
// (and must equal it), ActiveGateway to Config.Node; Version is assigned
// here, the previous one plus one: receivers order versions within our
// epoch only, so no clock is involved. A state equal to the current one is
// not resent. Otherwise it is sent to every present cluster at once and
// again with every periodic sync. An invalid state is refused and the
// previous one stays.
func (g *Gossip) SetLocal(s ClusterState) error {
	switch s.Cluster {
	case "":
		s.Cluster = g.cfg.Cluster
	case g.cfg.Cluster:
	default:
		return fmt.Errorf("set local state: cluster %q is not ours (%q)", s.Cluster, g.cfg.Cluster)
	}
	if s.ActiveGateway == "" {
		s.ActiveGateway = g.cfg.Node
	}
	s = s.clone()
	g.mu.Lock()
	if g.shutdown {
		g.mu.Unlock()
		return fmt.Errorf("set local state: gossip is shut down")
	}
	if g.local.Version != 0 && sameContent(s, g.local) {
		g.mu.Unlock()
		return nil
	}
	s.Version = g.lastVer + 1
	body, err := encodeState(s)
	if err != nil {
		g.mu.Unlock()
		return fmt.Errorf("set local state: %w", err)
	}
	g.local, g.lastVer, g.body, g.sealed = s, s.Version, body, nil
	g.out.all = true
	g.mu.Unlock()

	g.log.V(1).Info("Local gossip state set", "version", s.Version)
	g.wake()
	return nil
}

// Local returns our cluster's state as last set, with its version.
func (g *Gossip) Local() (ClusterState, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.local.clone(), g.local.Version != 0
}

// Join sends our heartbeat at once to the given addresses (peers' tunnel
// addresses and gossip port), over UDP, and returns to how many it went.
// Heartbeats go to every peer's address every ProbeInterval anyway: Join
// only saves that wait. A peer answers once it has verified us, and is in
// Members once we have verified it.
func (g *Gossip) Join(addrs []netip.AddrPort) (int, error) {
	msg, err := g.heartbeat()
	if err != nil {
		return 0, fmt.Errorf("join: %w", err)
	}
	n := 0
	var errs []error
	for _, a := range addrs {
		if err := g.ml.SendToAddress(memberlist.Address{Addr: a.String()}, msg); err != nil {
			errs = append(errs, fmt.Errorf("send heartbeat to %s: %w", a, err))
			continue
		}
		n++
	}
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("join %d of %d gossip members: %w", n, len(addrs), err)
	}
	return n, nil
}

// Clusters returns the latest verified state of each remote cluster. A
// cluster whose gateway left the pool keeps its last state; see Members.
func (g *Gossip) Clusters() map[string]ClusterState {
	g.mu.Lock()
	defer g.mu.Unlock()
	return cloneStates(g.remote.states)
}

// Changed is signaled, without blocking and coalesced, when Clusters, the
// exports or the presence of a cluster change. Receivers then read
// Clusters, RemoteExports and Members.
func (g *Gossip) Changed() <-chan struct{} { return g.changedCh }

// Members returns ourselves and the present clusters, sorted by name: one
// member per cluster, whichever of its gateways is active. Presence and
// the node name come from authenticated messages only; a memberlist node
// that merely claims a name is nobody.
func (g *Gossip) Members() []Member {
	now := time.Now()
	g.mu.Lock()
	out := []Member{{Name: g.name, Cluster: g.cfg.Cluster, Node: g.cfg.Node, Addr: g.addr}}
	for cluster := range g.peers {
		s := g.sessions[cluster]
		if !s.present(now, g.cfg.presence()) {
			continue
		}
		m := Member{Name: cluster, Cluster: cluster, Addr: s.addr}
		if node := g.remote.states[cluster].ActiveGateway; node != "" {
			m.Name, m.Node = cluster+"/"+node, node
		}
		out = append(out, m)
	}
	g.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// PeerHeard is what this gateway has heard from one peer cluster's
// gossip: Node is its active gateway as its last authenticated state names
// it, Heard when its last authenticated new message came (zero: never),
// and Present whether that is recent enough to count it a member.
type PeerHeard struct {
	Cluster, Node string
	Present       bool
	Heard         time.Time
}

// Heard returns, for every peer of SetPeers sorted by cluster, what this
// gateway has heard from it: what `kubectl wirespan diagnose` shows of the
// gossip pool.
func (g *Gossip) Heard() []PeerHeard {
	now := time.Now()
	g.mu.Lock()
	out := make([]PeerHeard, 0, len(g.peers))
	for cluster := range g.peers {
		h := PeerHeard{Cluster: cluster, Node: g.remote.states[cluster].ActiveGateway}
		if s := g.sessions[cluster]; s != nil {
			h.Heard = s.heard
			h.Present = s.present(now, g.cfg.presence())
		}
		out = append(out, h)
	}
	g.mu.Unlock()
	slices.SortFunc(out, func(a, b PeerHeard) int { return strings.Compare(a.Cluster, b.Cluster) })
	return out
}

// RTT returns the round trip of the last successful ping of cluster's
// gateway.
func (g *Gossip) RTT(cluster string) (time.Duration, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	d, ok := g.rtt[cluster]
	return d, ok
}

// Shutdown stops the sender and the listeners, and unregisters the
// metrics. The other clusters see us absent after their presence timeout.
// It is safe to call more than once.
func (g *Gossip) Shutdown() error {
	g.mu.Lock()
	if g.shutdown {
		g.mu.Unlock()
		return nil
	}
	g.shutdown = true
	g.mu.Unlock()

	// A delivery still dialing a peer that does not answer ends now, not
	// after TCPTimeout: the loop waits for its deliveries.
	g.guard.abortDials()
	close(g.stop)
	<-g.done
	var errs []error
	if err := g.ml.Shutdown(); err != nil {
		errs = append(errs, fmt.Errorf("shut down memberlist: %w", err))
	}
	g.metrics.unregister(g.cfg.Registerer)
	return errors.Join(errs...)
}

// signal notifies Changed without blocking.
func (g *Gossip) signal() {
	select {
	case g.changedCh <- struct{}{}:
	default:
	}
}

// nodeAt is a memberlist node at addr: whom memberlist's send functions
// dial. Its name is empty: memberlist checks no name on user messages.
func nodeAt(a netip.AddrPort) *memberlist.Node {
	return &memberlist.Node{Addr: a.Addr().AsSlice(), Port: a.Port()}
}
