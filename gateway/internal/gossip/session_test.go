package gossip

import (
	"errors"
	"testing"
	"time"
)

// TestSessionRules walks one session through the freshness rules: what
// each message teaches it, and what it refuses.
func TestSessionRules(t *testing.T) {
	const ours = 0xb0b
	now := time.Unix(1000, 0)
	s := &session{}
	msg := func(k kind, epoch, seq uint64) header { return header{kind: k, cluster: "a", epoch: epoch, seq: seq} }
	step := func(what string, h header, echo uint64, want error, check func(admission) bool) {
		t.Helper()
		if err := s.check(h, echo, ours); err != nil {
			if !errors.Is(err, want) {
				t.Fatalf("%s: check = %v, want %v", what, err, want)
			}
			return
		}
		a, err := s.admit(h, echo, ours, now)
		if (want == nil) != (err == nil) || (want != nil && !errors.Is(err, want)) || !check(a) {
			t.Fatalf("%s: admit = %+v, %v; want %v", what, a, err, want)
		}
	}
	anything := func(admission) bool { return true }

	// Bootstrap: a's first heartbeat does not know our epoch; we take a's
	// as a candidate and echo it.
	step("first heartbeat", msg(kindHeartbeat, 0xa1, 1), 0, ErrUnproven, func(a admission) bool { return a.echoChanged && !a.fresh })
	if s.epoch != 0xa1 || s.proven || !s.heard.IsZero() {
		t.Fatalf("after an unproven message: %+v", s)
	}
	// a's answer echoes ours: proven, alive.
	step("proven", msg(kindState, 0xa1, 2), ours, nil, func(a admission) bool { return a.fresh && a.live && a.newEpoch })
	if !s.proven || s.heard != now {
		t.Fatalf("after a proven message: %+v", s)
	}
	step("same sequence again", msg(kindHeartbeat, 0xa1, 2), ours, nil, func(a admission) bool { return a.fresh && !a.live })
	// Unproven messages of the proven epoch, or of any kind but a
	// heartbeat, are refused before their MAC is checked.
	step("replay to a restarted us", msg(kindState, 0xa1, 9), 0x01d, ErrUnproven, anything)
	step("state of a new epoch, unproven", msg(kindState, 0xa2, 1), 0, ErrUnproven, anything)
	// A heartbeat of a new boot of a is answered at once, once per
	// promptInterval, and teaches nothing.
	step("new boot's heartbeat", msg(kindHeartbeat, 0xa2, 1), 0, ErrUnproven, func(a admission) bool { return a.prompt && !a.echoChanged })
	step("again at once", msg(kindHeartbeat, 0xa2, 2), 0, ErrUnproven, func(a admission) bool { return !a.prompt })
	if s.epoch != 0xa1 {
		t.Fatalf("an unproven message changed a proven epoch: %+v", s)
	}
	// The new boot proves itself: it replaces and retires the old one.
	now = now.Add(time.Second)
	step("new boot proven", msg(kindHeartbeat, 0xa2, 3), ours, nil, func(a admission) bool { return a.newEpoch && a.echoChanged && a.live })
	step("old boot, even proven", msg(kindState, 0xa1, 10), ours, ErrReplay, anything)
	if s.epoch != 0xa2 || s.heard != now {
		t.Fatalf("after the new boot: %+v", s)
	}
}

func TestSessionRetiresAtMost(t *testing.T) {
	s := &session{}
	for e := range uint64(2 * maxRetired) {
		s.retire(e + 1)
	}
	if len(s.retired) != maxRetired || s.retired[0] != maxRetired+1 {
		t.Errorf("retired = %v, want the last %d", s.retired, maxRetired)
	}
}
