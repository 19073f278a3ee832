package gossip

import (
	"fmt"
	"time"
)

// receive judges one message and merges what it carries, cheapest check
// first, and takes the lock only for the lookups and the merge:
//
//  1. peek: size for its kind, sender a peer, a MAC addressed to us (no
//     hashing, no allocation the sender sizes);
//  2. session.check: not from a retired epoch, not unproven once the
//     sender's epoch is proven (no hashing);
//  3. verify: the MAC, one pass over the body, outside the lock;
//  4. session.admit: freshness, liveness, the sender's epoch;
//  5. the body is decoded, outside the lock, within its limits;
//  6. merge, by version within the sender's epoch.
func (g *Gossip) receive(b []byte) {
	g.mu.Lock()
	kr := g.keyring
	g.mu.Unlock()

	env, err := peek(b, kr)
	if err != nil {
		g.count(kindOf(b), err)
		return
	}
	g.mu.Lock()
	s := g.sessions[env.cluster] // every cluster of a keyring has one
	err = s.check(env.header, env.echo, g.epoch)
	g.mu.Unlock()
	if err == nil {
		err = env.verify(kr.local)
	}
	var live bool
	if err == nil {
		live, err = g.admit(s, &env)
	}
	if err != nil {
		g.count(env.kind, err)
		return
	}
	switch env.kind {
	case kindHeartbeat:
		err = g.receiveHeartbeat(env, live)
	case kindState:
		err = g.receiveState(env)
	case kindBatch, kindSnapshot:
		err = g.receiveExports(env)
	}
	g.count(env.kind, err)
}

// admit applies the session's freshness rules to an authentic message and
// schedules what follows: a heartbeat at once when the epoch we echo to
// the sender changed (so that its next message proves itself), and our
// state and exports when the sender became present. It reports whether
// the message was new (admission.live).
func (g *Gossip) admit(s *session, env *envelope) (bool, error) {
	now := time.Now()
	g.mu.Lock()
	a, err := s.admit(env.header, env.echo, g.epoch, now)
	if a.echoChanged {
		g.resealLocked()
	}
	if a.echoChanged || a.prompt {
		g.out.beat(env.cluster)
	}
	arrived := a.live && !g.present[env.cluster]
	if arrived {
		g.present[env.cluster] = true
	}
	// A cluster that arrives, or whose new boot (a restart, a failover)
	// proved itself, has lost or never had what we sent: our state and
	// whole export set go to it now. Only a fresh message of a new epoch
	// does this, so a replay cannot make us resend.
	if arrived || a.newEpoch {
		g.out.welcome(env.cluster)
	}
	g.mu.Unlock()

	if a.newEpoch {
		g.log.V(1).Info("Gossip peer has a new epoch (restart or failover)", "cluster", env.cluster, "epoch", fmt.Sprintf("%x", env.epoch))
	}
	if a.echoChanged || a.prompt || arrived || a.newEpoch {
		g.wake()
	}
	if arrived {
		// Not signaled: readers learn of the cluster with its state and
		// exports, which follow at once; a reader woken now would see it
		// present with none of its exports.
		g.log.V(1).Info("Gossip peer present", "cluster", env.cluster, "addr", s.addr)
	}
	return a.live, err
}

// askInterval bounds how often a peer's request for our state and exports
// is answered. A request comes only in a new heartbeat of the peer's
// proven epoch, which only the peer can make; answering it every few
// hundred milliseconds, rather than once, matters in a planned handover,
// where for a moment the old and the new gateway of the peer share its
// tunnel address and what we send may reach the old one.
const askInterval = 250 * time.Millisecond

// receiveHeartbeat answers a peer that asks for our state: it lacks it
// (it just started, or re-added us).
func (g *Gossip) receiveHeartbeat(env envelope, live bool) error {
	asks, err := decodeHeartbeat(env.body)
	if err != nil {
		return err
	}
	// Only a new heartbeat asks: an old one again (the same sequence)
	// could come from anyone who recorded it.
	if !asks[g.cfg.Cluster] || !live {
		return nil
	}
	now := time.Now()
	g.mu.Lock()
	answer := now.Sub(g.asked[env.cluster]) >= askInterval
	if answer {
		g.asked[env.cluster] = now
		g.out.welcome(env.cluster)
	}
	g.mu.Unlock()
	if answer {
		g.wake()
	}
	return nil
}

func (g *Gossip) receiveState(env envelope) error {
	st, err := decodeState(env.body)
	if err != nil {
		return err
	}
	if st.Cluster != env.cluster {
		return fmt.Errorf("%w: state of %q sent by %q", ErrMalformed, st.Cluster, env.cluster)
	}
	g.mu.Lock()
	err = g.remote.merge(st, env.epoch)
	g.metrics.clusters.Set(float64(len(g.remote.states)))
	g.mu.Unlock()
	if err == nil {
		g.log.V(1).Info("Gossip state accepted", "cluster", st.Cluster, "version", st.Version)
		g.signal()
	}
	return err
}

func (g *Gossip) receiveExports(env envelope) error {
	if env.kind == kindSnapshot && g.holdsSnapshot(env) {
		return fmt.Errorf("%w: export snapshot of %s", ErrDuplicate, env.cluster)
	}
	batch, err := decodeExports(env.body, env.kind == kindSnapshot)
	if err != nil {
		return err
	}
	if batch.Cluster != env.cluster {
		return fmt.Errorf("%w: exports of %q sent by %q", ErrMalformed, batch.Cluster, env.cluster)
	}
	g.mu.Lock()
	re := g.exp.remote[batch.Cluster]
	if re == nil {
		re = newRemoteExports()
		g.exp.remote[batch.Cluster] = re
	}
	over := 0
	over, err = re.apply(batch, env.epoch, &g.exp.generations)
	g.mu.Unlock()
	if over > 0 {
		g.metrics.refused.WithLabelValues(refusedOverCap).Add(float64(over))
	}
	if err == nil {
		g.log.V(1).Info("Gossip exports accepted", "cluster", batch.Cluster, "snapshot", batch.Snapshot, "items", len(batch.Items))
		g.signal()
	}
	return err
}

// count records the outcome of one message in the counter of its kind.
func (g *Gossip) count(k kind, err error) {
	c := g.metrics.received
	if k == kindBatch || k == kindSnapshot {
		c = g.metrics.exportsReceived
	}
	r := resultOf(err)
	c.WithLabelValues(r).Inc()
	if err != nil && r != resultDuplicate {
		g.log.V(1).Info("Gossip message dropped", "kind", k.String(), "reason", r, "error", err.Error())
	}
}

// kindOf reads the kind of a message that peek refused, for counting only.
func kindOf(b []byte) kind {
	if len(b) >= envelopeFixed {
		return kind(b[envelopeFixed-1])
	}
	return kindState
}

// The body of a heartbeat: the clusters whose state the sender lacks.
//
//	u8 n, n × (u8 n, n bytes cluster ID)
func encodeHeartbeat(asks []string) []byte {
	b := []byte{byte(len(asks))}
	for _, c := range asks {
		b = appendString8(b, c)
	}
	return b
}

func decodeHeartbeat(body []byte) (map[string]bool, error) {
	r := reader{buf: body}
	n := int(r.uint8("ask count"))
	if n > MaxPeers {
		return nil, fmt.Errorf("%w: %d asks, limit %d", ErrTooLarge, n, MaxPeers)
	}
	asks := make(map[string]bool, n)
	for range n {
		asks[r.string8("ask")] = true
	}
	if r.err == nil && r.off != len(body) {
		r.fail(fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(body)-r.off))
	}
	if r.err != nil {
		return nil, r.err
	}
	return asks, nil
}

// holdsSnapshot reports whether the (authenticated) snapshot is the one
// already applied, read from its header: the periodic sync resends an
// unchanged set, which is then not decoded again (for 10,000 exports,
// megabytes of JSON every few seconds).
func (g *Gossip) holdsSnapshot(env envelope) bool {
	r := reader{buf: env.body}
	r.string8("cluster ID")
	high := r.uint64("high")
	if r.err != nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	re := g.exp.remote[env.cluster]
	return re != nil && re.synced && re.epoch == env.epoch && re.floor == high
}
