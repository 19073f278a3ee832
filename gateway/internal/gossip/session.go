package gossip

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// maxRetired bounds the epochs of a peer's earlier boots that a session
// remembers, to refuse their messages. Only messages made during our own
// boot can prove themselves (they echo our epoch), so a replay of a
// forgotten epoch needs a message recorded during our boot before the peer
// restarted or failed over 8 more times: a window we accept for a bounded
// session, and which any restart of ours closes.
const maxRetired = 8

// session is what this gateway knows of one peer cluster's current boot:
// the peer's epoch, whether that epoch is proven fresh, and when the peer
// last spoke. It is pure logic; Gossip guards it.
//
// Freshness is proven by the echo: a message from A carries, in B's
// recipient entry, B's epoch as A knows it, under the MAC. B's epoch is
// random and new at every start of B, so a message that echoes it was made
// after B started: a message recorded before B restarted cannot be replayed
// to it. A's own epoch, in the header, names A's boot; A numbers its
// messages within it. B takes A's epoch from a message that proves
// itself, and retires the epoch it replaces, refusing its messages from
// then on, so that an authentic message of A's previous boot cannot roll A
// back either.
//
// Bootstrap: a peer that has not heard from us yet echoes 0 (or an old
// epoch). Such a message is authentic but not fresh: its content is
// refused, but until this session has a proven epoch its sender's epoch is
// taken as a candidate, which our messages then echo, so the peer's next
// message proves itself. Once proven, unproven messages change nothing.
type session struct {
	addr netip.AddrPort // where the peer's gateway listens (from its key)
	// epoch is the peer's epoch that our messages echo; proven says that
	// a message proven fresh carried it.
	epoch   uint64
	proven  bool
	retired []uint64
	// seq is the highest sequence number of epoch that refreshed heard.
	seq uint64
	// heard is when the peer last sent a fresh message that was new (a
	// higher sequence than any before): its liveness, from our clock.
	heard time.Time
	// prompted is when a heartbeat of a new epoch of the peer was last
	// answered at once (admission.prompt).
	prompted time.Time
}

// promptInterval bounds how often a session answers heartbeats of a new
// epoch at once: a replay of one cannot make us send more than that.
const promptInterval = 100 * time.Millisecond

// admission is what admit decided about an authenticated message.
type admission struct {
	// fresh: the message proves itself (it echoes our epoch); its content
	// may be merged.
	fresh bool
	// newEpoch: the peer's epoch changed (it restarted, or another of its
	// gateways took over); content of the earlier epoch is superseded.
	newEpoch bool
	// live: the message is newer than any before from that epoch, so it
	// shows the peer alive now.
	live bool
	// echoChanged: the epoch our messages echo to the peer changed; they
	// must be sealed again.
	echoChanged bool
	// prompt: a new boot of the peer spoke and does not know our epoch:
	// send it a heartbeat now.
	prompt bool
}

// admit applies the freshness rules to a message whose MAC matched. ours
// is our own epoch. It returns ErrReplay for a retired epoch and
// ErrUnproven for an authentic message that does not echo our epoch.
func (s *session) admit(h header, echo, ours uint64, now time.Time) (admission, error) {
	var a admission
	if slices.Contains(s.retired, h.epoch) {
		return a, fmt.Errorf("%w: epoch %x of %s is retired", ErrReplay, h.epoch, h.cluster)
	}
	if echo != ours {
		switch {
		case !s.proven && s.epoch != h.epoch:
			s.epoch, s.seq = h.epoch, 0
			a.echoChanged = true
		case s.proven && s.epoch != h.epoch && now.Sub(s.prompted) >= promptInterval:
			// A new boot of the peer (a restart, a failover) that does
			// not know our epoch yet: a heartbeat now tells it, instead
			// of at our next round, and its answer proves it.
			s.prompted, a.prompt = now, true
		}
		return a, fmt.Errorf("%w: %s echoes epoch %x, ours is %x", ErrUnproven, h.cluster, echo, ours)
	}
	a.fresh = true
	if s.epoch != h.epoch || !s.proven {
		// Only a fresh message retires an epoch, so a replay can never
		// retire a live one. The epoch replaced is retired even if it was
		// only a candidate: it was a replay, or another gateway of the
		// cluster that lost the race to prove itself.
		if s.epoch != 0 && s.epoch != h.epoch {
			s.retire(s.epoch)
		}
		a.echoChanged = s.epoch != h.epoch
		a.newEpoch = true
		s.epoch, s.proven, s.seq = h.epoch, true, 0
	}
	if h.seq > s.seq {
		s.seq, s.heard, a.live = h.seq, now, true
	}
	return a, nil
}

// check refuses, before the MAC is computed, a message that admit would
// refuse whatever its MAC: from a retired epoch, or unproven once the
// session is proven (it could teach nothing).
func (s *session) check(h header, echo, ours uint64) error {
	switch {
	case slices.Contains(s.retired, h.epoch):
		return fmt.Errorf("%w: epoch %x of %s is retired", ErrReplay, h.epoch, h.cluster)
	case echo != ours && s.proven && (h.epoch == s.epoch || h.kind != kindHeartbeat):
		// An unproven heartbeat of a new epoch goes on to the MAC check
		// (a heartbeat is small): if authentic, admit answers it.
		return fmt.Errorf("%w: %s echoes epoch %x, ours is %x", ErrUnproven, h.cluster, echo, ours)
	}
	return nil
}

func (s *session) retire(epoch uint64) {
	s.retired = append(s.retired, epoch)
	if len(s.retired) > maxRetired {
		s.retired = slices.Delete(s.retired, 0, len(s.retired)-maxRetired)
	}
}

// present reports whether the peer spoke within window.
func (s *session) present(now time.Time, window time.Duration) bool {
	return !s.heard.IsZero() && now.Sub(s.heard) < window
}
