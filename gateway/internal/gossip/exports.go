package gossip

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// exportState is Gossip's half of the Multi-Cluster Services exchange: our
// cluster's exports, the changes owed to the pool, and what each remote
// cluster exports. Guarded by Gossip.mu.
type exportState struct {
	set   bool // SetExports was called: we speak for our exports
	local map[ExportKey]exportItem
	high  uint64
	// snapshot caches the sealed snapshot of local; nil when stale.
	snapshot []byte
	// pending are the changes not yet sent, by key (the latest wins).
	pending map[ExportKey]exportItem
	// snapshotTo are members owed our whole set: they joined, or a batch
	// of changes failed to reach them.
	snapshotTo map[string]memberlist.Node

	remote map[string]*remoteExports
	// goneAt is when the last member of a cluster left the pool; a cluster
	// never seen since the start counts as gone since then.
	goneAt  map[string]time.Time
	started time.Time
	// generations numbers the changes of remote exports (remoteExports'
	// generation).
	generations uint64
}

func newExportState(now time.Time) exportState {
	return exportState{
		local:      map[ExportKey]exportItem{},
		pending:    map[ExportKey]exportItem{},
		snapshotTo: map[string]memberlist.Node{},
		remote:     map[string]*remoteExports{},
		goneAt:     map[string]time.Time{},
		started:    now,
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
	ver := max(e.high+1, uint64(time.Now().UnixNano()))
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
		e.set, e.high, e.snapshot = true, ver, nil
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
	ver := max(e.high+1, uint64(time.Now().UnixNano()))
	changed := change(e, ver)
	if changed {
		e.high, e.snapshot = ver, nil
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
	// Silent: the cluster has had no gateway in the pool for ExportTTL,
	// since SilentSince. Its exports are still those it last published;
	// whether to keep using them is the caller's choice.
	Silent      bool
	SilentSince time.Time
}

// RemoteExports returns the exports of each remote cluster among the
// peers: those with a gateway in the pool, or that had one less than
// Config.ExportTTL ago, and the silent ones, marked so. A cluster left out
// is no peer any more: its exports are to be withdrawn. When the TTL of a
// cluster runs out, Changed is signaled.
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

// silentSinceLocked returns since when cluster has had no member in the
// pool, and whether that is ExportTTL or more.
func (g *Gossip) silentSinceLocked(cluster string, now time.Time) (time.Time, bool) {
	for name := range g.members {
		if c, _, ok := splitName(name); ok && c == cluster {
			return time.Time{}, false
		}
	}
	since, ok := g.exp.goneAt[cluster]
	if !ok {
		since = g.exp.started
	}
	return since, now.Sub(since) >= g.cfg.ExportTTL
}

// clusterLeftLocked records that a member of cluster left; if it was the
// last one, the TTL of the cluster's exports starts.
func (g *Gossip) clusterLeftLocked(cluster string) {
	for name := range g.members {
		if c, _, ok := splitName(name); ok && c == cluster {
			return
		}
	}
	g.exp.goneAt[cluster] = time.Now()
	time.AfterFunc(g.cfg.ExportTTL+10*time.Millisecond, g.signal)
}

// forgetExportsLocked drops what a cluster exports (it left the peers).
func (g *Gossip) forgetExportsLocked(cluster string) bool {
	re, ok := g.exp.remote[cluster]
	delete(g.exp.remote, cluster)
	return ok && len(re.items) > 0
}

// receiveExports verifies and merges one export message.
func (g *Gossip) receiveExports(b []byte) {
	g.mu.Lock()
	batch, err := decodeExports(b, g.keyring)
	if err == nil {
		re := g.exp.remote[batch.Cluster]
		if re == nil {
			re = newRemoteExports()
			g.exp.remote[batch.Cluster] = re
		}
		if err = re.apply(batch); err == nil {
			g.exp.generations++
			re.generation = g.exp.generations
		}
	}
	g.mu.Unlock()

	g.metrics.exportsReceived.WithLabelValues(resultOf(err)).Inc()
	switch {
	case err == nil:
		g.log.V(1).Info("Gossip exports accepted", "cluster", batch.Cluster, "snapshot", batch.Snapshot, "items", len(batch.Items))
		g.signal()
	case resultOf(err) == resultDuplicate:
	default:
		g.log.V(1).Info("Gossip exports message dropped", "reason", resultOf(err), "error", err.Error())
	}
}

// snapshotLocked returns our sealed snapshot, building it if stale; nil if
// we do not speak for our exports yet or it cannot be encoded.
func (g *Gossip) snapshotLocked() []byte {
	e := &g.exp
	if !e.set || e.snapshot != nil {
		return e.snapshot
	}
	b := exportBatch{Cluster: g.cfg.Cluster, Snapshot: true, High: e.high}
	for _, k := range slices.SortedFunc(maps.Keys(e.local), compareKeys) {
		b.Items = append(b.Items, e.local[k])
	}
	msg, err := encodeExports(b, g.keyring)
	if err != nil {
		g.log.Error(err, "Cannot encode the snapshot of our exports; remote clusters keep their last view")
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
		msg, err := encodeExports(cur, g.keyring)
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

// Bundle: what LocalState returns once we speak for our exports, so that a
// push/pull carries both our state and our whole export set.
//
//	"WSPB" 0x01, u32 n, n bytes state message (n may be 0), u32 n, n bytes
//	export snapshot message
const bundleMagic = "WSPB"

func bundle(state, exports []byte) []byte {
	b := make([]byte, 0, headerSize+8+len(state)+len(exports))
	b = append(b, bundleMagic...)
	b = append(b, formatVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(state)))
	b = append(b, state...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(exports)))
	return append(b, exports...)
}

func unbundle(b []byte) (state, exports []byte, err error) {
	if len(b) < headerSize || b[len(bundleMagic)] != formatVersion {
		return nil, nil, fmt.Errorf("%w: bundle version", ErrUnknownVersion)
	}
	r := reader{buf: b, off: headerSize}
	state = r.bytes(int(r.uint32("state length")), "state")
	exports = r.bytes(int(r.uint32("exports length")), "exports")
	if r.err == nil && r.off != len(b) {
		r.fail(fmt.Errorf("%w: %d trailing bytes after a bundle", ErrMalformed, len(b)-r.off))
	}
	return state, exports, r.err
}

// dispatch hands one received message to the decoder of its kind.
func (g *Gossip) dispatch(b []byte) {
	switch {
	case bytes.HasPrefix(b, []byte(exportMagic)):
		g.receiveExports(b)
	case bytes.HasPrefix(b, []byte(bundleMagic)):
		state, exports, err := unbundle(b)
		if err != nil {
			g.metrics.received.WithLabelValues(resultOf(err)).Inc()
			g.log.V(1).Info("Gossip bundle dropped", "error", err.Error())
			return
		}
		if len(state) > 0 {
			g.receive(state)
		}
		if len(exports) > 0 {
			g.receiveExports(exports)
		}
	default:
		g.receive(b)
	}
}
