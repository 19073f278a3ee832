// Package tunnelwatch finds WireGuard sessions that carry traffic one way
// only, long before WireGuard itself gives up on them, so that the active
// gateway can start them again. It is pure: it reads the device's counters
// as the caller samples them and says which peers to re-handshake.
//
// WireGuard starts a new handshake on its own only after 5 s without an
// answer to an initiation, and after 15 s of sending with nothing coming
// back on an established session. Both are long against a 2 s failover
// budget, and both happen at a failover: the new active gateway's first
// initiation can go unanswered (the remote peer is itself in the middle of
// roaming between this cluster's old and new gateway), and a remote peer
// can end up encrypting with keys only a gateway that has since stepped
// down holds. Between two active gateways nothing is ever silent for long:
// gossip sends an authenticated heartbeat through the tunnel every second
// in each direction. So a peer that this gateway keeps sending to while
// nothing at all comes back (not even a handshake message) for Stall has a
// session that is broken, and a peer that has not answered this device's
// first initiation within FirstHandshake will not answer it (2 s and 0.5 s
// by default).
//
// The cure is to remove the peer and add it again in one configuration
// call: that clears WireGuard's handshake state, including the 5 s limit
// between two initiations, and a new peer with a persistent keepalive
// sends its first packet (so an initiation) at once, in the kernel and in
// wireguard-go alike. It costs the packets in flight on a session that was
// broken anyway. A peer that stays silent (a remote cluster that is down)
// is retried with a doubling interval, up to MaxBackoff, so a dead peer
// costs one initiation now and then, not one per check.
package tunnelwatch

import (
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Config holds the watch's timings.
type Config struct {
	// Stall is how long a peer that this gateway sends to may stay silent
	// before its session counts as broken. It must exceed the gossip
	// heartbeat interval (1 s) with room for jitter.
	Stall time.Duration
	// FirstHandshake is how long a peer has to answer the first
	// initiation of a new device (or of a peer added again). An answer
	// takes a round trip; one that comes after the restart is dropped,
	// and the restart's own initiation is answered a round trip later,
	// so a short wait costs little when it is wrong.
	FirstHandshake time.Duration
	// MaxBackoff bounds the interval between two restarts of a peer that
	// stays silent.
	MaxBackoff time.Duration
}

// Defaults are the timings the gateway uses.
var Defaults = Config{Stall: 2 * time.Second, FirstHandshake: 500 * time.Millisecond, MaxBackoff: 30 * time.Second}

// Watch remembers, for each peer, when it last heard from it.
type Watch struct {
	cfg   Config
	peers map[wgtypes.Key]*peerState
}

// peerState is what the watch knows of one peer.
type peerState struct {
	// rx and tx are the counters at the last sample.
	rx, tx int64
	// heard is when rx last moved (or the peer was first seen, or last
	// restarted); txAtHeard is tx then: only traffic sent since counts.
	heard     time.Time
	txAtHeard int64
	// received is when rx last moved, or the peer was first seen; unlike
	// heard, a restart does not move it.
	received time.Time
	// restarts since the peer was last heard; notBefore is the earliest
	// next restart.
	restarts  int
	notBefore time.Time
}

// New returns a watch that has seen nothing.
func New(cfg Config) *Watch {
	return &Watch{cfg: cfg, peers: map[wgtypes.Key]*peerState{}}
}

// Reset forgets every peer: the next sample starts every clock afresh (a
// new device, or this node no longer the active gateway).
func (w *Watch) Reset() { clear(w.peers) }

// Heard is the last time a sample found any peer's receive counter moved,
// or a peer new; zero with no peers.
func (w *Watch) Heard() time.Time {
	var last time.Time
	for _, st := range w.peers {
		if st.received.After(last) {
			last = st.received
		}
	}
	return last
}

// Restart is a peer whose session should be started again.
type Restart struct {
	Key wgtypes.Key
	// Attempt counts the restarts since the peer was last heard: 1 for a
	// session that just broke, more for a peer that stays silent.
	Attempt int
}

// Stalled takes a sample of the device's peers at now and returns those
// whose session should be started again. Peers gone from the device are
// forgotten.
func (w *Watch) Stalled(peers []wgtypes.Peer, now time.Time) []Restart {
	var out []Restart
	seen := make(map[wgtypes.Key]bool, len(peers))
	for _, p := range peers {
		seen[p.PublicKey] = true
		st, ok := w.peers[p.PublicKey]
		switch {
		case !ok:
			// A new peer entry counts from zero: all it sent, it sent
			// since it was created, which is about now.
			w.peers[p.PublicKey] = &peerState{rx: p.ReceiveBytes, tx: p.TransmitBytes, heard: now, received: now}
			continue
		case p.ReceiveBytes < st.rx || p.TransmitBytes < st.tx:
			// Added again (by a restart, or the applier): new counters,
			// but the restarts so far still set the backoff.
			st.rx, st.tx, st.heard, st.txAtHeard = p.ReceiveBytes, p.TransmitBytes, now, 0
			continue
		case p.ReceiveBytes != st.rx:
			st.heard, st.received, st.txAtHeard, st.restarts = now, now, p.TransmitBytes, 0
		}
		st.rx, st.tx = p.ReceiveBytes, p.TransmitBytes
		wait := w.cfg.Stall
		if p.LastHandshakeTime.IsZero() {
			wait = w.cfg.FirstHandshake
		}
		if st.tx == st.txAtHeard || now.Sub(st.heard) < wait || now.Before(st.notBefore) {
			continue
		}
		// The restart is a new start: the entry added again counts from
		// zero, silence counts from now, and the next restart waits
		// twice as long as this one did.
		st.rx, st.tx, st.heard, st.txAtHeard = 0, 0, now, 0
		st.restarts++
		st.notBefore = now.Add(min(wait<<st.restarts, w.cfg.MaxBackoff))
		out = append(out, Restart{Key: p.PublicKey, Attempt: st.restarts})
	}
	for k := range w.peers {
		if !seen[k] {
			delete(w.peers, k)
		}
	}
	return out
}
