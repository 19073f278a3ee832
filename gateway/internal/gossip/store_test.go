package gossip

import (
	"errors"
	"testing"
)

func TestStoreMerge(t *testing.T) {
	st := newStore()
	steps := []struct {
		do      func() error
		want    error
		version uint64 // held for a afterwards; 0: none
	}{
		{func() error { return st.merge(sampleState("a", 5), 1) }, nil, 5},
		{func() error { return st.merge(sampleState("a", 5), 1) }, ErrDuplicate, 5},
		{func() error { return st.merge(sampleState("a", 4), 1) }, ErrStale, 5},
		{func() error { return st.merge(sampleState("a", 9), 1) }, nil, 9},
		{func() error { st.forget("a"); return nil }, nil, 0},
		// After forget: older is still stale (no rollback by replay), the
		// last version is learned back, newer is accepted.
		{func() error { return st.merge(sampleState("a", 5), 1) }, ErrStale, 0},
		{func() error { return st.merge(sampleState("a", 9), 1) }, nil, 9},
		{func() error { return st.merge(sampleState("a", 10), 1) }, nil, 10},
		{func() error { return st.merge(sampleState("b", 1), 1) }, nil, 10},
	}
	for i, s := range steps {
		if err := s.do(); !errors.Is(err, s.want) || (s.want == nil && err != nil) {
			t.Fatalf("step %d: error %v, want %v", i, err, s.want)
		}
		got := st.states["a"].Version
		if got != s.version {
			t.Fatalf("step %d: holds version %d of a, want %d", i, got, s.version)
		}
	}
	if len(st.states) != 2 {
		t.Errorf("holds %d clusters, want 2", len(st.states))
	}
	// A new epoch (a restart with a clock behind, or a failover) starts
	// its versions at 1 and replaces what the old epoch left.
	if err := st.merge(sampleState("a", 1), 2); err != nil || st.states["a"].Version != 1 {
		t.Errorf("state of a new epoch: %v, holds version %d", err, st.states["a"].Version)
	}
	if err := st.merge(sampleState("a", 1), 2); !errors.Is(err, ErrDuplicate) {
		t.Errorf("same version in the new epoch: %v, want ErrDuplicate", err)
	}
}

func TestStoreMergeCopies(t *testing.T) {
	st := newStore()
	s := sampleState("a", 1)
	if err := st.merge(s, 1); err != nil {
		t.Fatal(err)
	}
	s.PodCIDRs[0] = s.PodCIDRs[1]
	s.Exports[0] = 'x'
	if got := st.states["a"]; !sameContent(got, sampleState("a", 1)) {
		t.Errorf("store shares memory with the merged state: %+v", got)
	}
}
