package services

import (
	"encoding/json"
	"errors"
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
	set       bool // SetExports was called
	published map[gossip.ExportKey]json.RawMessage
	remote    map[string]gossip.ClusterExports
	version   uint64
	// calls counts RemoteExports calls.
	calls int
	// touched counts the PublishExport and WithdrawExport calls by key:
	// each reconcile of a service makes one.
	touched map[gossip.ExportKey]int
	// refuse, if set, is returned by SetExports and PublishExport.
	refuse error
}

// SetExports keeps the whole set; refuse applies to PublishExport only,
// which every reconcile calls.
func (f *fakeExchange) SetExports(records map[gossip.ExportKey]json.RawMessage) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.set = true
	f.published = maps.Clone(records)
	return nil
}

func (f *fakeExchange) PublishExport(key gossip.ExportKey, rec json.RawMessage) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.set {
		return gossip.ErrExportsNotSet
	}
	f.touch(key)
	var refused *gossip.RefusedExportsError
	switch {
	case errors.As(f.refuse, &refused) && refused.Refused[key] != nil:
		return f.refuse // as gossip: the refused record is not published
	case errors.As(f.refuse, &refused):
	case f.refuse != nil:
		return f.refuse
	}
	f.published[key] = rec
	return nil
}

func (f *fakeExchange) WithdrawExport(key gossip.ExportKey) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.set {
		return gossip.ErrExportsNotSet
	}
	f.touch(key)
	delete(f.published, key)
	return nil
}

func (f *fakeExchange) touch(key gossip.ExportKey) {
	if f.touched == nil {
		f.touched = map[gossip.ExportKey]int{}
	}
	f.touched[key]++
}

// takeTouched returns the services reconciled since the last call, with
// how many times each was.
func (h *harness) takeTouched() map[string]int {
	h.exch.mu.Lock()
	defer h.exch.mu.Unlock()
	out := map[string]int{}
	for k, n := range h.exch.touched {
		out[k.String()] = n
	}
	h.exch.touched = nil
	return out
}

func (f *fakeExchange) RemoteExports() map[string]gossip.ClusterExports {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return maps.Clone(f.remote)
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
// gives a changed record, and each changed cluster a new generation.
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
		h.exch.version++
		ce := gossip.ClusterExports{Exports: map[gossip.ExportKey]gossip.RemoteExport{}, Complete: c.complete, Generation: h.exch.version}
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

// updateRecord replaces one record of a remote cluster, as gossip does
// for one changed export: only that record gets a new version.
func (h *harness) updateRecord(cluster string, e mcs.Export) {
	h.t.Helper()
	rec, err := json.Marshal(e)
	if err != nil {
		h.t.Fatal(err)
	}
	h.exch.mu.Lock()
	defer h.ctrl.Wake()
	defer h.exch.mu.Unlock()
	ce := h.exch.remote[cluster]
	exports := maps.Clone(ce.Exports)
	h.exch.version++
	exports[gossip.ExportKey{Namespace: e.Service.Namespace, Name: e.Service.Name}] = gossip.RemoteExport{Version: h.exch.version, Record: rec}
	ce.Exports, ce.Generation = exports, h.exch.version
	h.exch.remote[cluster] = ce
}

// silence marks a remote cluster silent since the given time, or live
// again with since zero, keeping its exports.
func (h *harness) silence(cluster string, since time.Time) {
	h.t.Helper()
	h.exch.mu.Lock()
	defer h.ctrl.Wake()
	defer h.exch.mu.Unlock()
	ce, ok := h.exch.remote[cluster]
	if !ok {
		h.t.Fatalf("no remote cluster %s", cluster)
	}
	ce.Silent, ce.SilentSince = !since.IsZero(), since
	h.exch.remote[cluster] = ce
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

// settle returns once the controller has seen every change made before
// the call and has nothing left to do: a pass over gossip began after the
// call, and then the queue was empty, no service in work or waiting for a
// retry, twice in a row.
func (h *harness) settle() {
	h.t.Helper()
	target := h.ctrl.refreshCount() + 1
	h.ctrl.Wake()
	deadline := time.Now().Add(waitFor)
	quiet := 0
	for quiet < 2 {
		if time.Now().After(deadline) {
			h.t.Fatalf("the controller did not settle in %v", waitFor)
		}
		time.Sleep(20 * time.Millisecond)
		if h.ctrl.refreshCount() >= target && h.ctrl.idle() {
			quiet++
		} else {
			quiet = 0
		}
	}
}
