package gossip

import (
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// outbox is the work the sender owes, accumulated (coalesced) under
// Gossip.mu between two rounds. Targets are clusters: each is reached at
// the address derived from its key, whichever of its gateways is active.
type outbox struct {
	// all: send our state to every present cluster (it changed).
	all bool
	// greet: clusters that just became present, or asked for our state:
	// they get our state and our whole export set.
	greet map[string]bool
	// retry: clusters a direct send of our state failed to reach; tried
	// again after Config.RetryInterval while they are present.
	retry map[string]bool
	// beatTo: clusters that get a heartbeat at once, because the epoch we
	// echo to them changed.
	beatTo map[string]bool
}

func addTo(m *map[string]bool, cluster string) {
	if *m == nil {
		*m = map[string]bool{}
	}
	(*m)[cluster] = true
}

func (o *outbox) welcome(cluster string) { addTo(&o.greet, cluster) }
func (o *outbox) beat(cluster string)    { addTo(&o.beatTo, cluster) }

// wake tells the sender there is work, without blocking.
func (g *Gossip) wake() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// sendLoop runs the sender until Shutdown: heartbeats and pings every
// ProbeInterval, a full sync with one present peer every PushPullInterval,
// and the outbox whenever there is work. Sends block on TCP connects, so
// they run here rather than in SetLocal or in memberlist's callbacks.
func (g *Gossip) sendLoop() {
	defer close(g.done)
	beat := time.NewTicker(g.cfg.ProbeInterval)
	defer beat.Stop()
	resync := time.NewTicker(g.cfg.PushPullInterval)
	defer resync.Stop()
	var pings sync.WaitGroup
	defer pings.Wait()
	var retry <-chan time.Time
	for {
		select {
		case <-g.stop:
			return
		case <-g.kick:
		case <-retry:
		case <-beat.C:
			g.heartbeatAll()
			if g.pinging.CompareAndSwap(false, true) {
				pings.Go(g.pingPresent)
			}
			g.notePresence()
		case <-resync.C:
			g.syncOne()
		}
		retry = nil
		if g.flush() {
			retry = time.After(g.cfg.RetryInterval)
		}
	}
}

// heartbeat seals a heartbeat for every peer (Join does not know whose
// addresses it is given) that asks for the state of every peer whose state
// we lack.
func (g *Gossip) heartbeat() ([]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var asks []string
	for _, c := range sortedKeys(g.peers) {
		if _, ok := g.remote.states[c]; !ok {
			asks = append(asks, c)
		}
	}
	return g.sealLocked(kindHeartbeat, encodeHeartbeat(asks))
}

// heartbeatToLocked seals a heartbeat for cluster alone, asking for its
// state if we lack it: about 150 bytes, where one for every peer would
// carry up to 64 MACs.
func (g *Gossip) heartbeatToLocked(cluster string) ([]byte, error) {
	var asks []string
	if _, ok := g.remote.states[cluster]; !ok {
		asks = []string{cluster}
	}
	g.seq++
	h := header{kind: kindHeartbeat, cluster: g.cfg.Cluster, epoch: g.epoch, seq: g.seq}
	return sealMessageTo(h, encodeHeartbeat(asks), g.keyring, g.echoLocked, []string{cluster})
}

// beat is a heartbeat and where it goes.
type beat struct {
	to  netip.AddrPort
	msg []byte
}

// heartbeatsLocked seals a heartbeat for each of clusters that is a peer.
func (g *Gossip) heartbeatsLocked(clusters []string) []beat {
	var out []beat
	for _, c := range clusters {
		if !g.keyring.Has(c) {
			continue
		}
		msg, err := g.heartbeatToLocked(c)
		if err != nil {
			g.log.Error(err, "Cannot seal a heartbeat", "cluster", c)
			continue
		}
		out = append(out, beat{to: g.sessions[c].addr, msg: msg})
	}
	return out
}

// sendBeats sends heartbeats over UDP.
func (g *Gossip) sendBeats(beats []beat) {
	for _, b := range beats {
		if err := g.ml.SendToAddress(memberlist.Address{Addr: b.to.String()}, b.msg); err != nil {
			g.log.V(1).Info("Send heartbeat failed", "addr", b.to, "error", err.Error())
		}
	}
}

// heartbeatAll sends a heartbeat to every peer, present or not, over UDP:
// it is how a peer learns we are alive, and how we find peers that are not
// present (it replaces memberlist's join).
func (g *Gossip) heartbeatAll() {
	g.mu.Lock()
	beats := g.heartbeatsLocked(sortedKeys(g.peers))
	g.mu.Unlock()
	g.sendBeats(beats)
}

// pingPresent measures the round trip to each present cluster's gateway,
// concurrently, with memberlist's ping (which names no node: the target
// answers any). One round runs at a time.
func (g *Gossip) pingPresent() {
	defer g.pinging.Store(false)
	var wg sync.WaitGroup
	for _, m := range g.Members() {
		if m.Cluster == g.cfg.Cluster {
			continue
		}
		wg.Go(func() {
			rtt, err := g.ml.Ping("", net.UDPAddrFromAddrPort(m.Addr))
			if err != nil {
				return
			}
			g.mu.Lock()
			if g.keyring.Has(m.Cluster) {
				g.rtt[m.Cluster] = rtt
			}
			g.mu.Unlock()
		})
	}
	wg.Wait()
}

// notePresence signals Changed when a cluster stopped being present, or
// its exports' TTL ran out, since the last look.
func (g *Gossip) notePresence() {
	now := time.Now()
	changed := false
	g.mu.Lock()
	for c := range g.present {
		if !g.sessions[c].present(now, g.cfg.presence()) {
			delete(g.present, c)
			changed = true
		}
	}
	for c := range g.peers {
		_, silent := g.silentSinceLocked(c, now)
		if silent != g.exp.silent[c] {
			g.exp.silent[c] = silent
			changed = true
		}
	}
	g.mu.Unlock()
	if changed {
		g.signal()
	}
}

// syncOne sends our state and our whole export set to one present peer
// chosen at random: the periodic exchange that heals lost changes.
func (g *Gossip) syncOne() {
	g.mu.Lock()
	var present []string
	for c := range g.present {
		present = append(present, c)
	}
	if len(present) > 0 {
		g.out.welcome(present[rand.IntN(len(present))])
	}
	g.mu.Unlock()
}

// sealLocked wraps a body in an envelope with the next sequence number.
func (g *Gossip) sealLocked(k kind, body []byte) ([]byte, error) {
	g.seq++
	h := header{kind: k, cluster: g.cfg.Cluster, epoch: g.epoch, seq: g.seq}
	return sealMessage(h, body, g.keyring, g.echoLocked)
}

// echoLocked is the epoch of cluster that our messages echo.
func (g *Gossip) echoLocked(cluster string) uint64 {
	if s := g.sessions[cluster]; s != nil {
		return s.epoch
	}
	return 0
}

// resealLocked drops the sealed forms of our state and exports, after a
// change of the keyring or of an echo.
func (g *Gossip) resealLocked() {
	g.sealed, g.exp.snapshot = nil, nil
}

// sealedStateLocked returns our state, sealed; nil if not set.
func (g *Gossip) sealedStateLocked() []byte {
	if g.sealed == nil && g.body != nil {
		msg, err := g.sealLocked(kindState, g.body)
		if err != nil {
			g.log.Error(err, "Cannot seal our state")
			return nil
		}
		g.sealed = msg
	}
	return g.sealed
}

// delivery is what one cluster gets in a round, in order: the batches of
// export changes or our whole export set, then our state.
type delivery struct {
	addr            *memberlist.Node
	state, snapshot bool
}

// flush does one round of the outbox's work. It reports whether sends
// failed and are to be retried.
func (g *Gossip) flush() bool {
	now := time.Now()
	g.mu.Lock()
	o := g.out
	g.out = outbox{}
	state := g.sealedStateLocked()
	batches := g.batchesLocked()
	plan := map[string]*delivery{}
	for c := range g.peers {
		s := g.sessions[c]
		if !s.present(now, g.cfg.presence()) {
			continue
		}
		plan[c] = &delivery{
			addr:     nodeAt(s.addr),
			state:    state != nil && (o.all || o.greet[c] || o.retry[c]),
			snapshot: o.greet[c] || g.exp.snapshotTo[c],
		}
	}
	var snapshot []byte
	for _, d := range plan {
		if d.snapshot {
			snapshot = g.snapshotLocked()
			break
		}
	}
	g.exp.snapshotTo = map[string]bool{}
	beats := g.heartbeatsLocked(sortedKeys(o.beatTo))
	g.mu.Unlock()

	g.sendBeats(beats)
	failedState, failedExport := g.deliver(plan, state, batches, snapshot)
	if len(failedState) == 0 && len(failedExport) == 0 {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.out.retry == nil {
		g.out.retry = map[string]bool{}
	}
	maps.Copy(g.out.retry, failedState)
	maps.Copy(g.exp.snapshotTo, failedExport)
	return true
}

// deliver sends each cluster its part of a round, concurrently, and
// returns the clusters that a state or an export message failed to reach.
func (g *Gossip) deliver(plan map[string]*delivery, state []byte, batches [][]byte, snapshot []byte) (failedState, failedExport map[string]bool) {
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	failedState, failedExport = map[string]bool{}, map[string]bool{}
	for cluster, d := range plan {
		wg.Go(func() {
			fail := func(into map[string]bool, what string, err error) {
				g.metrics.sent.WithLabelValues("error").Inc()
				g.log.V(1).Info("Send gossip "+what+" failed", "cluster", cluster, "error", err.Error())
				mu.Lock()
				into[cluster] = true
				mu.Unlock()
			}
			// Exports first: a peer that learns our state learns with it
			// that we are here, and should find our exports complete.
			exports := batches
			if d.snapshot && snapshot != nil {
				// The snapshot holds every change: the batches are moot.
				exports = [][]byte{snapshot}
			}
			for _, m := range exports {
				if err := g.ml.SendReliable(d.addr, m); err != nil {
					// A lost batch leaves a gap only a snapshot fills.
					fail(failedExport, "exports", err)
					break
				}
				g.metrics.sent.WithLabelValues("ok").Inc()
			}
			if d.state {
				if err := g.ml.SendReliable(d.addr, state); err != nil {
					fail(failedState, "state", err)
				} else {
					g.metrics.sent.WithLabelValues("ok").Inc()
				}
			}
		})
	}
	wg.Wait()
	return failedState, failedExport
}
