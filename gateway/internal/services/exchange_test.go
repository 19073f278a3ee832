package services

import (
	"encoding/json"
	"maps"
	"sync"
	"time"

	"github.com/wirespan/wirespan/gateway/internal/gossip"
	"github.com/wirespan/wirespan/internal/mcs"
)

// fakeExchange is the gossip transport in memory: it keeps what the
// controller publishes, and serves the remote clusters' records the test
// sets.
type fakeExchange struct {
	mu        sync.Mutex
	published map[gossip.ExportKey]json.RawMessage
	remote    map[string]gossip.ClusterExports
	version   uint64
	// calls counts RemoteExports calls: one per sync.
	calls int
	// refuse, if set, is returned by SetExports.
	refuse error
}

func (f *fakeExchange) SetExports(records map[gossip.ExportKey]json.RawMessage) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.published = maps.Clone(records)
	return f.refuse
}

func (f *fakeExchange) RemoteExports() map[string]gossip.ClusterExports {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	out := make(map[string]gossip.ClusterExports, len(f.remote))
	for c, ce := range f.remote {
		out[c] = gossip.ClusterExports{Exports: maps.Clone(ce.Exports), Complete: ce.Complete}
	}
	return out
}

// remoteChange is a change of one remote cluster's exports in gossip.
type remoteChange struct {
	cluster  string
	gone     bool // the cluster left: absent from RemoteExports
	complete bool
	exports  []mcs.Export
}

// set replaces the whole set of exports of a remote cluster, with its
// Complete flag.
func set(cluster string, complete bool, exports ...mcs.Export) remoteChange {
	return remoteChange{cluster: cluster, complete: complete, exports: exports}
}

// drop makes a remote cluster gone.
func drop(cluster string) remoteChange { return remoteChange{cluster: cluster, gone: true} }

// update makes the changes at once, as no sync can see only some of them,
// and wakes the controller. Each record gets a new version, as gossip
// gives a changed record.
func (h *harness) update(changes ...remoteChange) {
	h.t.Helper()
	h.exch.mu.Lock()
	defer h.ctrl.Wake()
	defer h.exch.mu.Unlock()
	for _, c := range changes {
		if c.gone {
			delete(h.exch.remote, c.cluster)
			continue
		}
		ce := gossip.ClusterExports{Exports: map[gossip.ExportKey]gossip.RemoteExport{}, Complete: c.complete}
		for _, e := range c.exports {
			rec, err := json.Marshal(e)
			if err != nil {
				h.t.Fatal(err)
			}
			h.exch.version++
			key := gossip.ExportKey{Namespace: e.Service.Namespace, Name: e.Service.Name}
			ce.Exports[key] = gossip.RemoteExport{Version: h.exch.version, Record: rec}
		}
		h.exch.remote[c.cluster] = ce
	}
}

// setRemote replaces the exports of one remote cluster: see set.
func (h *harness) setRemote(cluster string, complete bool, exports ...mcs.Export) {
	h.t.Helper()
	h.update(set(cluster, complete, exports...))
}

// published returns the record the controller last published for
// ns/name, if any.
func (h *harness) published(ns, name string) (mcs.Export, bool) {
	h.t.Helper()
	h.exch.mu.Lock()
	rec, ok := h.exch.published[gossip.ExportKey{Namespace: ns, Name: name}]
	h.exch.mu.Unlock()
	var e mcs.Export
	if ok {
		if err := json.Unmarshal(rec, &e); err != nil {
			h.t.Fatalf("published record of %s/%s: %v", ns, name, err)
		}
	}
	return e, ok
}

// settle returns once two whole syncs have run after the call: the first
// sync saw every change made before it; the second one started, so the
// first one had finished writing.
func (h *harness) settle() {
	h.t.Helper()
	h.exch.mu.Lock()
	target := h.exch.calls + 2
	h.exch.mu.Unlock()
	deadline := time.Now().Add(waitFor)
	for {
		h.exch.mu.Lock()
		calls := h.exch.calls
		h.exch.mu.Unlock()
		if calls >= target {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("the controller ran %d of 2 syncs in %v", calls-target+2, waitFor)
		}
		h.ctrl.Wake()
		time.Sleep(20 * time.Millisecond)
	}
}
