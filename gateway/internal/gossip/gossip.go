package gossip

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/hashicorp/memberlist"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Member is one live gateway in the pool: joined, and neither declared dead
// nor departed.
type Member struct {
	// Name is "<cluster>/<node>"; Cluster and Node are empty if the name
	// does not have that form (such a member is ignored for state).
	Name          string
	Cluster, Node string
	Addr          netip.AddrPort
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

	// mu guards everything below. It is taken inside memberlist callbacks,
	// some of which run under memberlist's own lock, so no memberlist
	// method is ever called with mu held.
	mu        sync.Mutex
	peers     map[string]wgtypes.Key
	keyring   *Keyring
	local     ClusterState // Version 0: not set yet
	lastVer   uint64
	sealed    []byte // local, encoded for the current keyring; nil if unset
	remote    *store
	members   map[string]memberlist.Node // from join/leave events
	rtt       map[string]time.Duration   // by cluster
	out       outbox
	shutdown  bool
	changedCh chan struct{}
	exp       exportState

	kick chan struct{} // wakes the sender
	stop chan struct{}
	done chan struct{} // closed when the sender has returned
}

// New binds the memberlist listeners and starts the sender. The pool is
// empty until Join; no state is accepted until SetPeers.
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
		metrics:   newMetrics(),
		peers:     map[string]wgtypes.Key{},
		keyring:   kr,
		remote:    newStore(),
		members:   map[string]memberlist.Node{},
		rtt:       map[string]time.Duration{},
		changedCh: make(chan struct{}, 1),
		exp:       newExportState(time.Now()),
		kick:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	if err := g.metrics.register(cfg.Registerer); err != nil {
		return nil, err
	}

	mc := memberlist.DefaultWANConfig()
	mc.Name = g.name
	mc.BindAddr = cfg.BindAddr.Unmap().String()
	mc.AdvertiseAddr = mc.BindAddr
	mc.BindPort = max(cfg.Port, 0) // AnyPort → 0: memberlist picks a free one
	mc.AdvertisePort = mc.BindPort
	mc.ProbeInterval = cfg.ProbeInterval
	mc.ProbeTimeout = cfg.ProbeTimeout
	mc.PushPullInterval = cfg.PushPullInterval
	mc.GossipInterval = cfg.GossipInterval
	mc.TCPTimeout = cfg.TCPTimeout
	mc.GossipToTheDeadTime = max(cfg.PushPullInterval, 2*cfg.ProbeInterval)
	mc.Logger = newStdLogger(cfg.Logger.WithName("memberlist"))
	d := delegate{g}
	mc.Delegate, mc.Events, mc.Ping = d, d, d

	ml, err := memberlist.Create(mc)
	if err != nil {
		g.metrics.unregister(cfg.Registerer)
		return nil, fmt.Errorf("start memberlist on %s: %w", netip.AddrPortFrom(cfg.BindAddr, uint16(mc.BindPort)), err)
	}
	g.ml = ml
	// memberlist wrote the port it bound back into mc (AnyPort).
	g.addr = netip.AddrPortFrom(cfg.BindAddr.Unmap(), uint16(mc.AdvertisePort))
	go g.sendLoop()
	return g, nil
}

// LocalAddr returns the address and port other members reach us on.
func (g *Gossip) LocalAddr() netip.AddrPort { return g.addr }

// SetPeers sets the remote clusters (ID → WireGuard public key, from Git).
// Clusters no longer listed, or whose key changed, are forgotten: their
// state is dropped and their messages are refused until they are listed
// again. An entry for our own cluster is ignored. Unusable entries are left
// out and reported in the error; the others take effect.
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
		}
	}
	var added []string
	peers := make(map[string]wgtypes.Key, len(kr.keys))
	for _, id := range sortedKeys(kr.keys) {
		peers[id] = keys[id]
		if old, ok := g.peers[id]; !ok || old != keys[id] {
			added = append(added, id)
		}
	}
	g.peers, g.keyring = peers, kr
	if g.local.Version != 0 && (removed || len(added) > 0) {
		// Re-encode for the new recipients; on failure the old encoding,
		// still valid for the clusters it covers, stays in use.
		if b, serr := Encode(g.local, kr); serr != nil {
			err = errors.Join(err, fmt.Errorf("encode local state: %w", serr))
		} else {
			g.sealed = b
			g.out.all = true
		}
	}
	g.out.pull = append(g.out.pull, added...)
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
// here: max(previous+1, Unix nanoseconds), so that it also increases across
// restarts and failovers. A state equal to the current one is not resent.
// Otherwise it is sent to every member at once and is part of every later
// push/pull. An invalid state is refused and the previous one stays.
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
	s.Version = max(g.lastVer+1, uint64(time.Now().UnixNano()))
	sealed, err := Encode(s, g.keyring)
	if err != nil {
		g.mu.Unlock()
		return fmt.Errorf("set local state: %w", err)
	}
	g.local, g.lastVer, g.sealed = s, s.Version, sealed
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

// Join contacts the given members (their tunnel address and gossip port)
// and exchanges full state with them. It returns how many answered; it is
// best effort, and callers retry periodically (e.g. while alone).
func (g *Gossip) Join(addrs []netip.AddrPort) (int, error) {
	ss := make([]string, 0, len(addrs))
	for _, a := range addrs {
		ss = append(ss, a.String())
	}
	n, err := g.ml.Join(ss)
	if err != nil {
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

// Changed is signaled, without blocking and coalesced, when Clusters or
// the membership changes. Receivers then read Clusters and Members.
func (g *Gossip) Changed() <-chan struct{} { return g.changedCh }

// Members returns the live members, ourselves included, sorted by name.
//
// memberlist's own Members returns pointers into nodes that it changes
// under its lock (a data race for the caller), so this list is kept from
// join and leave events instead, and cannot tell alive from suspect.
func (g *Gossip) Members() []Member {
	g.mu.Lock()
	out := make([]Member, 0, len(g.members))
	for _, n := range g.members {
		cluster, node, _ := splitName(n.Name)
		out = append(out, Member{Name: n.Name, Cluster: cluster, Node: node, Addr: addrPort(&n)})
	}
	g.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// RTT returns the round trip of the last successful direct probe of a member
// of cluster.
func (g *Gossip) RTT(cluster string) (time.Duration, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	d, ok := g.rtt[cluster]
	return d, ok
}

// Shutdown leaves the pool (telling the others, within LeaveTimeout), stops
// the listeners and the sender, and unregisters the metrics. It is safe to
// call more than once.
func (g *Gossip) Shutdown() error {
	g.mu.Lock()
	if g.shutdown {
		g.mu.Unlock()
		return nil
	}
	g.shutdown = true
	g.mu.Unlock()

	close(g.stop)
	<-g.done
	var errs []error
	if err := g.ml.Leave(g.cfg.LeaveTimeout); err != nil {
		errs = append(errs, fmt.Errorf("leave gossip pool: %w", err))
	}
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

// splitName splits a member name "<cluster>/<node>".
func splitName(name string) (cluster, node string, ok bool) {
	cluster, node, ok = strings.Cut(name, "/")
	if !ok || validateCluster(cluster) != nil || validateNode(node) != nil {
		return "", "", false
	}
	return cluster, node, true
}

func addrPort(n *memberlist.Node) netip.AddrPort {
	a, _ := netip.AddrFromSlice(n.Addr)
	return netip.AddrPortFrom(a.Unmap(), n.Port)
}
