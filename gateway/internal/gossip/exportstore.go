package gossip

import (
	"encoding/json"
	"fmt"
)

// remoteExports is what one remote cluster exports, as far as this gateway
// knows: the latest version of each export, deletions included until a
// snapshot makes them unnecessary. Pure logic; Gossip guards it.
type remoteExports struct {
	items map[ExportKey]exportItem
	// floor is the High of the last snapshot applied: everything the
	// cluster did up to it is known, so a change at or below it is old.
	floor uint64
	// synced: a snapshot has been applied, so the set is complete rather
	// than whatever changes happened to arrive.
	synced bool
	// generation changes with every change to items or synced (Gossip
	// sets it from a counter of its own, so that it never repeats, even
	// for a cluster forgotten and learned again): a reader can tell in
	// O(1) that nothing changed since it last looked.
	generation uint64
	// liveCache is what live returned, until the next change.
	liveCache map[ExportKey]RemoteExport
}

func newRemoteExports() *remoteExports {
	return &remoteExports{items: map[ExportKey]exportItem{}}
}

// apply merges a batch or a snapshot. It returns ErrStale for a snapshot
// older than one applied, and ErrDuplicate when nothing in b is new.
func (re *remoteExports) apply(b exportBatch) error {
	if b.Snapshot {
		return re.applySnapshot(b)
	}
	changed := false
	for _, it := range b.Items {
		if it.Version <= re.floor {
			continue
		}
		if cur, ok := re.items[it.Key]; ok && cur.Version >= it.Version {
			continue
		}
		re.items[it.Key] = it
		changed = true
	}
	if !changed {
		return fmt.Errorf("%w: exports of %s", ErrDuplicate, b.Cluster)
	}
	re.changed()
	return nil
}

// changed drops what live built, after a change of items or synced.
func (re *remoteExports) changed() { re.liveCache = nil }

// applySnapshot replaces what is held at or below the snapshot's High with
// the snapshot; changes newer than the snapshot (they can overtake it) stay.
func (re *remoteExports) applySnapshot(b exportBatch) error {
	switch {
	case b.High < re.floor:
		return fmt.Errorf("%w: export snapshot of %s at %d, have %d", ErrStale, b.Cluster, b.High, re.floor)
	case re.synced && b.High == re.floor:
		return fmt.Errorf("%w: export snapshot of %s at %d", ErrDuplicate, b.Cluster, b.High)
	}
	listed := make(map[ExportKey]bool, len(b.Items))
	for _, it := range b.Items {
		listed[it.Key] = true
		if cur, ok := re.items[it.Key]; !ok || cur.Version < it.Version {
			re.items[it.Key] = it
		}
	}
	for k, cur := range re.items {
		if !listed[k] && cur.Version <= b.High {
			delete(re.items, k)
		}
	}
	re.floor, re.synced = b.High, true
	re.changed()
	return nil
}

// live returns the records of the exports that exist, by key. The map is
// built once per change and shared between callers, who must not modify
// it; the records are never modified either: items are replaced, not
// changed.
func (re *remoteExports) live() map[ExportKey]RemoteExport {
	if re.liveCache != nil {
		return re.liveCache
	}
	out := make(map[ExportKey]RemoteExport, len(re.items))
	for k, it := range re.items {
		if !it.Deleted {
			out[k] = RemoteExport{Version: it.Version, Record: it.Data}
		}
	}
	re.liveCache = out
	return out
}

// RemoteExport is one export of a remote cluster. Record is shared between
// callers and must not be modified; Version changes whenever Record does,
// so callers can cache what they derive from it.
type RemoteExport struct {
	Version uint64
	Record  json.RawMessage
}
