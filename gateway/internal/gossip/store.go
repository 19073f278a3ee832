package gossip

import "fmt"

// store holds the latest verified state of each remote cluster. It is pure
// logic, not safe for concurrent use; Gossip guards it with its mutex.
type store struct {
	states map[string]ClusterState
	// floor is the highest version accepted per cluster, in the epoch it
	// was accepted in. It survives forget, so that a message recorded
	// before a cluster was removed cannot be replayed to roll its state
	// back once the cluster is re-added.
	floor map[string]versionFloor
}

type versionFloor struct{ epoch, version uint64 }

func newStore() *store {
	return &store{states: map[string]ClusterState{}, floor: map[string]versionFloor{}}
}

// merge keeps s, of the sender's epoch, if it is newer than what the store
// holds for its cluster. Versions are compared only within one epoch: the
// session admits a message only from the sender's current epoch, so a
// state of another epoch than the floor's is of a newer one, and replaces
// whatever its version. It returns ErrStale for an older version and
// ErrDuplicate for the version already held. After forget, the last
// version seen is accepted again: the sender may not have changed since,
// and it must be possible to learn its state back.
func (st *store) merge(s ClusterState, epoch uint64) error {
	cur, have := st.states[s.Cluster]
	floor, seen := st.floor[s.Cluster]
	if seen && floor.epoch == epoch {
		switch {
		case have && s.Version == cur.Version:
			return fmt.Errorf("%w: cluster %s version %d", ErrDuplicate, s.Cluster, s.Version)
		case s.Version < floor.version:
			return fmt.Errorf("%w: cluster %s version %d, have %d", ErrStale, s.Cluster, s.Version, floor.version)
		}
	}
	st.states[s.Cluster] = s.clone()
	st.floor[s.Cluster] = versionFloor{epoch: epoch, version: s.Version}
	return nil
}

// forget drops the state of cluster; it reports whether there was one.
func (st *store) forget(cluster string) bool {
	_, had := st.states[cluster]
	delete(st.states, cluster)
	return had
}
