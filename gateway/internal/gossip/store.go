package gossip

import "fmt"

// store holds the latest verified state of each remote cluster. It is pure
// logic, not safe for concurrent use; Gossip guards it with its mutex.
type store struct {
	states map[string]ClusterState
	// floor is the highest version ever accepted per cluster. It survives
	// forget, so that a message recorded before a cluster was removed cannot
	// be replayed to roll its state back once the cluster is re-added.
	floor map[string]uint64
}

func newStore() *store {
	return &store{states: map[string]ClusterState{}, floor: map[string]uint64{}}
}

// merge keeps s if it is newer than what the store holds for its cluster.
// It returns ErrStale for an older version and ErrDuplicate for the version
// already held. After forget, the last version seen is accepted again: the
// sender may not have changed since, and it must be possible to learn its
// state back.
func (st *store) merge(s ClusterState) error {
	cur, have := st.states[s.Cluster]
	floor := st.floor[s.Cluster]
	switch {
	case have && s.Version == cur.Version:
		return fmt.Errorf("%w: cluster %s version %d", ErrDuplicate, s.Cluster, s.Version)
	case s.Version < floor:
		return fmt.Errorf("%w: cluster %s version %d, have %d", ErrStale, s.Cluster, s.Version, floor)
	}
	st.states[s.Cluster] = s.clone()
	st.floor[s.Cluster] = s.Version
	return nil
}

// forget drops the state of cluster; it reports whether there was one.
func (st *store) forget(cluster string) bool {
	_, had := st.states[cluster]
	delete(st.states, cluster)
	return had
}
