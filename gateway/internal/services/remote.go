package services

import (
	"cmp"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/wirespan/wirespan/gateway/internal/gossip"
	"github.com/wirespan/wirespan/internal/mcs"
)

// The remote half of the inputs: what the other clusters export, decoded
// once per record version and indexed by service, so that a change in
// gossip touches only the services whose records changed.

// clusterState is what a remote cluster's exports count for.
type clusterState int

const (
	// clusterLive: the cluster has a gateway in the pool, or had one less than
	// the export TTL ago. Its exports count whole.
	clusterLive clusterState = iota
	// clusterSilent: no gateway for the export TTL, less than the import grace.
	// Its exports keep their ServiceImports and VIPs, without endpoints.
	clusterSilent
	// clusterGone: silent past the import grace, or no peer any more. Its exports
	// count for nothing.
	clusterGone
)

// remoteCluster is what the controller last saw of one remote cluster.
type remoteCluster struct {
	generation uint64
	// complete: its whole set of exports is known (a snapshot arrived).
	complete    bool
	state       clusterState
	silentSince time.Time
	// records are its exports that decoded, by service, with the version
	// they were decoded from; nil for a record that did not decode.
	records map[serviceKey]remoteRecord
	// overCap are the exports past MaxImportsPerCluster, left out.
	overCap map[gossip.ExportKey]bool
}

type remoteRecord struct {
	version uint64
	export  *mcs.Export
}

// remoteInputs is what one service's reconcile needs of the remote
// clusters.
type remoteInputs struct {
	// exports are the usable records of live and silent clusters.
	exports []mcs.Export
	// states are the states of every remote cluster known, and unsettled
	// those whose set is not complete.
	states    map[string]clusterState
	unsettled map[string]bool
}

// endpointsOf returns the exports whose endpoints count: those of live
// clusters, and ours.
func (r remoteInputs) endpointsOf(all []mcs.Export) []mcs.Export {
	out := make([]mcs.Export, 0, len(all))
	for _, e := range all {
		if st, remote := r.states[e.Cluster]; !remote || st == clusterLive {
			out = append(out, e)
		}
	}
	return out
}

// keeps reports whether what was imported from cluster stays although the
// cluster's records do not ask for it: its set is not known yet, and it
// has not been gone past the grace. Its endpoints stay only while it is
// live.
func (r remoteInputs) keeps(cluster string, endpoints bool) bool {
	st, ok := r.states[cluster]
	if !ok || !r.unsettled[cluster] {
		return false
	}
	if endpoints {
		return st == clusterLive
	}
	return st != clusterGone
}

// stateOf decides a cluster's state from gossip's view of it.
func stateOf(ce gossip.ClusterExports, grace time.Duration, now time.Time) clusterState {
	switch {
	case !ce.Silent:
		return clusterLive
	case now.Sub(ce.SilentSince) < grace:
		return clusterSilent
	}
	return clusterGone
}

// gossipDelta is the outcome of one refresh: the services whose inputs
// changed, and whether a cluster changed state (then every import is
// reconciled: kept imports name clusters without records).
type gossipDelta struct {
	keys         map[serviceKey]bool
	clusterState bool
	// wakeAt is the earliest time a silent cluster's grace ends.
	wakeAt time.Time
}

// refreshRemote brings the controller's view of the remote exports up to
// date with gossip. A cluster whose generation and state are unchanged
// costs a map lookup; only changed records are decoded, outside the lock.
// It runs on the controller's loop goroutine only, the one writer of
// c.remote.
func (c *Controller) refreshRemote(exch Exchange, now time.Time) gossipDelta {
	all := exch.RemoteExports()
	change := gossipDelta{keys: map[serviceKey]bool{}}
	c.mu.Lock()
	old := c.remote
	c.mu.Unlock()
	next := make(map[string]*remoteCluster, len(all))
	for cluster, ce := range all {
		if cluster == c.ClusterID {
			continue
		}
		st := stateOf(ce, c.ImportGrace, now)
		if st == clusterSilent {
			end := ce.SilentSince.Add(c.ImportGrace)
			if change.wakeAt.IsZero() || end.Before(change.wakeAt) {
				change.wakeAt = end
			}
		}
		prev := old[cluster]
		if prev != nil && prev.generation == ce.Generation && prev.complete == ce.Complete && prev.state == st {
			next[cluster] = prev
			continue
		}
		if prev == nil || prev.complete != ce.Complete || prev.state != st {
			change.clusterState = true
		}
		next[cluster] = c.decodeCluster(cluster, ce, st, prev, change.keys)
	}
	for cluster, prev := range old {
		if _, ok := next[cluster]; !ok {
			change.clusterState = true
			for key := range prev.records {
				change.keys[key] = true
			}
		}
	}
	c.mu.Lock()
	c.remote = next
	c.mu.Unlock()
	return change
}

// decodeCluster builds the view of one changed cluster, reusing the
// records whose version did not change, and marks the services whose
// records changed.
func (c *Controller) decodeCluster(cluster string, ce gossip.ClusterExports, st clusterState, prev *remoteCluster, changed map[serviceKey]bool) *remoteCluster {
	rc := &remoteCluster{
		generation: ce.Generation, complete: ce.Complete, state: st, silentSince: ce.SilentSince,
		records: make(map[serviceKey]remoteRecord, len(ce.Exports)),
	}
	var before map[serviceKey]remoteRecord
	if prev != nil {
		before = prev.records
	}
	over := c.overCap(cluster, ce.Exports, prev)
	if over != nil {
		rc.overCap = over
	}
	for k, rec := range ce.Exports {
		key := serviceKey{Namespace: k.Namespace, Name: k.Name}
		if over[k] {
			continue
		}
		if p, ok := before[key]; ok && p.version == rec.Version {
			rc.records[key] = p
			if prev.state != st {
				changed[key] = true
			}
			continue
		}
		// A record refused before is logged again only at V(1): a peer
		// resending bad records must not flood the log (each is counted).
		p, had := before[key]
		rc.records[key] = remoteRecord{version: rec.Version, export: c.decode(cluster, key, rec.Record, had && p.export == nil)}
		changed[key] = true
	}
	for key := range before {
		if _, ok := rc.records[key]; !ok {
			changed[key] = true
		}
	}
	return rc
}

// overCap returns the exports of a cluster past MaxImportsPerCluster,
// nil if it is within: the last in order of namespace and name, so that
// every importing cluster leaves out the same ones. Newly left out ones
// are counted and logged.
func (c *Controller) overCap(cluster string, exports map[gossip.ExportKey]gossip.RemoteExport, prev *remoteCluster) map[gossip.ExportKey]bool {
	if len(exports) <= c.MaxImportsPerCluster {
		return nil
	}
	keys := slices.SortedFunc(maps.Keys(exports), func(a, b gossip.ExportKey) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	over := make(map[gossip.ExportKey]bool, len(keys)-c.MaxImportsPerCluster)
	added := 0
	for _, k := range keys[c.MaxImportsPerCluster:] {
		over[k] = true
		if prev == nil || !prev.overCap[k] {
			added++
		}
	}
	if added > 0 {
		c.Metrics.badRecords.WithLabelValues("over-cap").Add(float64(added))
		c.Log.Info("A cluster exports more services than --max-imports-per-cluster: the last ones by namespace and name are not imported",
			"cluster", cluster, "exports", len(exports), "max", c.MaxImportsPerCluster, "leftOut", len(over))
	}
	return over
}

// decode returns the export a remote record holds, checked as this
// cluster's own export would be (mcs.ValidateImported); nil if it is
// unusable, which is counted by reason and logged.
func (c *Controller) decode(cluster string, key serviceKey, rec json.RawMessage, refusedBefore bool) *mcs.Export {
	var e mcs.Export
	err := json.Unmarshal(rec, &e)
	if err != nil {
		err = &mcs.RecordError{Reason: "json", Err: err}
	} else {
		err = mcs.ValidateImported(&e, cluster, key.String())
	}
	if err != nil {
		reason := "json"
		var re *mcs.RecordError
		if errors.As(err, &re) {
			reason = re.Reason
		}
		c.Metrics.badRecords.WithLabelValues(reason).Inc()
		log := c.Log
		if refusedBefore {
			log = log.V(1)
		}
		log.Info("Refusing an export record from another cluster; the rest of its exports are imported", "cluster", cluster, "service", key.String(), "error", err.Error())
		return nil
	}
	return &e
}

// remoteFor returns the remote inputs of one service.
func (c *Controller) remoteFor(key serviceKey) remoteInputs {
	c.mu.Lock()
	defer c.mu.Unlock()
	in := remoteInputs{states: make(map[string]clusterState, len(c.remote)), unsettled: map[string]bool{}}
	for cluster, rc := range c.remote {
		in.states[cluster] = rc.state
		if !rc.complete {
			in.unsettled[cluster] = true
		}
		if rec, ok := rc.records[key]; ok && rec.export != nil && rc.state != clusterGone {
			in.exports = append(in.exports, *rec.export)
		}
	}
	return in
}

// remoteKeys returns every service some remote cluster exports.
func (c *Controller) remoteKeys() []serviceKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[serviceKey]bool{}
	var out []serviceKey
	for _, rc := range c.remote {
		for key := range rc.records {
			if !seen[key] {
				seen[key] = true
				out = append(out, key)
			}
		}
	}
	return out
}
