package gossip

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// exportState is Gossip's half of the Multi-Cluster Services exchange: our
// cluster's exports, the changes owed to the pool, and what each remote
// cluster exports. Guarded by Gossip.mu.
type exportState struct {
	set   bool // SetExports was called: we speak for our exports
	local map[ExportKey]exportItem
	// high is the version of our last change; versions count changes
	// within this boot (receivers order them within our epoch).
	high uint64
	// body caches the encoded snapshot of local, snapshot the same sealed
	// for the current keyring and echoes; nil when stale.
	body, snapshot []byte
	// pending are the changes not yet sent, by key (the latest wins).
	pending map[ExportKey]exportItem
	// snapshotTo are clusters owed our whole set: a batch of changes
	// failed to reach them.
	snapshotTo map[string]bool

	remote map[string]*remoteExports
	// silent is whether each cluster was silent at the last look, so that
	// Changed is signaled when that changes.
	silent map[string]bool
	// generations numbers the changes of remote exports (remoteExports'
	// generation) and the records accepted (RemoteExport.Version).
	generations uint64
}

func newExportState() exportState {
	return exportState{
		local:      map[ExportKey]exportItem{},
		pending:    map[ExportKey]exportItem{},
		snapshotTo: map[string]bool{},
		remote:     map[string]*remoteExports{},
		silent:     map[string]bool{},
	}
}

// SetExports publishes the whole set of our cluster's exports, by Service:
// each record is opaque JSON of at most MaxExportSize bytes. Only what
// changed since the last call is sent, at once, to every member; the whole
// set is part of every later push/pull. Records that are not valid are left
// out (the previous version of them stays) and reported in a
// *RefusedExportsError, by key; the others are published.
//
// Until the first call Gossip says nothing about our exports, so remote
// clusters keep what they knew: call it once the caller's view is complete.
func (g *Gossip) SetExports(records map[ExportKey]json.RawMessage) error {
	refused := map[ExportKey]error{}
	g.mu.Lock()
	if g.shutdown {
		g.mu.Unlock()
		return errors.New("set exports: gossip is shut down")
	}
	e := &g.exp
	ver := e.high + 1
	changed := !e.set
	for k, rec := range records {
		it := exportItem{Key: k, Version: ver, Data: bytes.Clone(rec)}
		if err := it.validate(true); err != nil {
			refused[k] = err
			continue
		}
		if cur, ok := e.local[k]; ok && bytes.Equal(cur.Data, rec) {
			continue
		}
		e.local[k], e.pending[k] = it, it
		changed = true
	}
	for k := range e.local {
		if _, ok := records[k]; !ok {
			delete(e.local, k)
			e.pending[k] = exportItem{Key: k, Version: ver, Deleted: true}
			changed = true
		}
	}
	if changed {
		e.set, e.high, e.body, e.snapshot = true, ver, nil, nil
	}
	g.mu.Unlock()

	if changed {
		g.wake()
	}
	if len(refused) > 0 {
		return &RefusedExportsError{Refused: refused}
	}
	return nil
}

// PublishExport publishes or replaces one of our cluster's exports, once
// SetExports has given the whole set; before that it is refused, because
// remote clusters would take a partial set for the whole one. A record
// equal to the one published costs nothing.
func (g *Gossip) PublishExport(key ExportKey, rec json.RawMessage) error {
	// Validated with a stand-in version; the real one is set under the lock.
	it := exportItem{Key: key, Version: 1, Data: bytes.Clone(rec)}
	if err := it.validate(true); err != nil {
		return &RefusedExportsError{Refused: map[ExportKey]error{key: err}}
	}
	return g.changeExport(key, func(e *exportState, ver uint64) bool {
		if cur, ok := e.local[key]; ok && bytes.Equal(cur.Data, rec) {
			return false
		}
		it.Version = ver
		e.local[key], e.pending[key] = it, it
		return true
	})
}

// WithdrawExport withdraws one of our cluster's exports, if published;
// like PublishExport it needs SetExports first.
func (g *Gossip) WithdrawExport(key ExportKey) error {
	return g.changeExport(key, func(e *exportState, ver uint64) bool {
		if _, ok := e.local[key]; !ok {
			return false
		}
		delete(e.local, key)
		e.pending[key] = exportItem{Key: key, Version: ver, Deleted: true}
		return true
	})
}

// ErrExportsNotSet is returned by PublishExport and WithdrawExport before
// SetExports.
var ErrExportsNotSet = errors.New("the whole set of exports was not given yet (SetExports)")

// changeExport applies change to our exports with the next version, under
// the lock, and sends what changed.
func (g *Gossip) changeExport(key ExportKey, change func(e *exportState, ver uint64) bool) error {
	g.mu.Lock()
	switch {
	case g.shutdown:
		g.mu.Unlock()
		return fmt.Errorf("export %s: gossip is shut down", key)
	case !g.exp.set:
		g.mu.Unlock()
		return fmt.Errorf("export %s: %w", key, ErrExportsNotSet)
	}
	e := &g.exp
	ver := e.high + 1
	changed := change(e, ver)
	if changed {
		e.high, e.body, e.snapshot = ver, nil, nil
	}
	g.mu.Unlock()
	if changed {
		g.wake()
	}
	return nil
}

// RefusedExportsError names the records SetExports refused and why; the
// others were published.
type RefusedExportsError struct {
	Refused map[ExportKey]error
}

func (e *RefusedExportsError) Error() string {
	var parts []string
	for _, k := range slices.SortedFunc(maps.Keys(e.Refused), compareKeys) {
		parts = append(parts, fmt.Sprintf("export %s: %v", k, e.Refused[k]))
	}
	return "set exports: " + strings.Join(parts, "; ")
}

// ClusterExports is what one remote cluster exports.
type ClusterExports struct {
	// Exports is shared between callers and must not be modified.
	Exports map[ExportKey]RemoteExport
	// Complete: a snapshot of the cluster's whole set arrived. Until then
	// Exports holds only the changes seen since this gateway started, and
	// an export missing from it may still exist.
	Complete bool
	// Generation changes whenever Exports or Complete do (and never
	// repeats): a caller that remembers it can skip an unchanged cluster.
	Generation uint64
	// Silent: the cluster has sent no fresh authenticated message for
	// ExportTTL, since SilentSince (whichever of its gateways is active:
	// a failover within the TTL keeps it live). Its exports are still those it last published;
	// whether to keep using them is the caller's choice.
	Silent      bool
	SilentSince time.Time
}

// RemoteExports returns the exports of each remote cluster among the
// peers: those that spoke less than Config.ExportTTL ago, and the silent
// ones, marked so. A cluster left out is no peer any more: its exports are
// to be withdrawn. When the TTL of a cluster runs out, Changed is
// signaled.
func (g *Gossip) RemoteExports() map[string]ClusterExports {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]ClusterExports, len(g.peers))
	for cluster := range g.peers {
		ce := ClusterExports{Exports: map[ExportKey]RemoteExport{}}
		if re := g.exp.remote[cluster]; re != nil {
			ce.Exports, ce.Complete, ce.Generation = re.live(), re.synced, re.generation
		}
		ce.SilentSince, ce.Silent = g.silentSinceLocked(cluster, now)
		out[cluster] = ce
	}
	return out
}

// silentSinceLocked returns since when cluster has sent no fresh
// authenticated message (since we started, if it never did), and whether
// that is ExportTTL or more. Only the cluster's own key can refresh it:
// memberlist's view, and names, play no part.
func (g *Gossip) silentSinceLocked(cluster string, now time.Time) (time.Time, bool) {
	since := g.started
	if s := g.sessions[cluster]; s != nil && !s.heard.IsZero() {
		since = s.heard
	}
	if now.Sub(since) < g.cfg.presence() {
		return time.Time{}, false
	}
	return since, now.Sub(since) >= g.cfg.ExportTTL
}

// forgetExportsLocked drops what a cluster exports (it left the peers),
// keeping the floor of its versions against replays if it comes back.
func (g *Gossip) forgetExportsLocked(cluster string) bool {
	re, ok := g.exp.remote[cluster]
	if !ok {
		return false
	}
	had := len(re.items) > 0
	re.forget()
	return had
}

// snapshotLocked returns our sealed snapshot, building it if stale; nil if
// we do not speak for our exports yet or it cannot be encoded.
func (g *Gossip) snapshotLocked() []byte {
	e := &g.exp
	if !e.set || e.snapshot != nil {
		return e.snapshot
	}
	if e.body == nil {
		b := exportBatch{Cluster: g.cfg.Cluster, Snapshot: true, High: e.high}
		for _, k := range slices.SortedFunc(maps.Keys(e.local), compareKeys) {
			b.Items = append(b.Items, e.local[k])
		}
		body, err := encodeExports(b)
		if err != nil {
			g.log.Error(err, "Cannot encode the snapshot of our exports; remote clusters keep their last view")
			return nil
		}
		e.body = body
	}
	msg, err := g.sealLocked(kindSnapshot, e.body)
	if err != nil {
		g.log.Error(err, "Cannot seal the snapshot of our exports; remote clusters keep their last view")
		return nil
	}
	e.snapshot = msg
	return msg
}

// batchesLocked takes the pending changes and seals them into messages of
// at most MaxExportBatchSize.
func (g *Gossip) batchesLocked() [][]byte {
	e := &g.exp
	if len(e.pending) == 0 {
		return nil
	}
	keys := slices.SortedFunc(maps.Keys(e.pending), compareKeys)
	var (
		out  [][]byte
		cur  = exportBatch{Cluster: g.cfg.Cluster}
		size int
	)
	emit := func() {
		if len(cur.Items) == 0 {
			return
		}
		body, err := encodeExports(cur)
		var msg []byte
		if err == nil {
			msg, err = g.sealLocked(kindBatch, body)
		}
		if err != nil {
			g.log.Error(err, "Cannot encode a batch of export changes; they go out with the next snapshot")
		} else {
			out = append(out, msg)
		}
		cur, size = exportBatch{Cluster: g.cfg.Cluster}, 0
	}
	// Room for the header and the MACs of every peer.
	budget := MaxExportBatchSize - 1024 - MaxPeers*(64+MACSize)
	for _, k := range keys {
		it := e.pending[k]
		n := 2*64 + 16 + len(it.Data)
		if size+n > budget {
			emit()
		}
		cur.Items = append(cur.Items, it)
		size += n
	}
	emit()
	e.pending = map[ExportKey]exportItem{}
	return out
}
