package gossip

import (
	"encoding/json"
	"fmt"
)

// itemOverhead is what a record costs in the store beyond its bytes (key,
// versions, map entry), for the cap on what one cluster may hold.
const itemOverhead = 256

// remoteExports is what one remote cluster exports, as far as this gateway
// knows: the latest version of each export, deletions included until a
// snapshot makes them unnecessary. Pure logic; Gossip guards it.
//
// Versions count the sender's changes within one epoch (one boot of one of
// its gateways). A message of a new epoch (the session proved it, and
// retired the old one) supersedes everything held: the records held are
// kept, so that a failover withdraws nothing, but rebased to version 0,
// below any version of the new epoch, until the new epoch's snapshot
// replaces them.
type remoteExports struct {
	epoch uint64
	items map[ExportKey]exportItem
	// floor is the High of the last snapshot applied in epoch: everything
	// the cluster did up to it is known, so a change at or below it is old.
	floor uint64
	// synced: a snapshot has been applied, so the set is complete rather
	// than whatever changes happened to arrive.
	synced bool
	// size is what items hold, with itemOverhead each; capped at
	// MaxExportSnapshotSize, what the cluster's whole set can be.
	size int
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

// apply merges a batch or a snapshot of epoch. counter numbers what is
// accepted (RemoteExport.Version, generation). It returns how many
// records were refused as over the cap, and ErrStale for a snapshot older
// than one applied, ErrDuplicate when nothing in b is new.
func (re *remoteExports) apply(b exportBatch, epoch uint64, counter *uint64) (int, error) {
	if epoch != re.epoch {
		re.rebase(epoch)
	}
	if b.Snapshot {
		return 0, re.applySnapshot(b, counter)
	}
	changed, over := false, 0
	for _, it := range b.Items {
		if it.Version <= re.floor {
			continue
		}
		cur, ok := re.items[it.Key]
		if ok && cur.Version >= it.Version {
			continue
		}
		grow := len(it.Data) - len(cur.Data)
		if !ok {
			grow += itemOverhead
		}
		if grow > 0 && (re.size+grow > MaxExportSnapshotSize || (!ok && len(re.items) >= MaxExports)) {
			over++
			continue
		}
		re.put(it, counter)
		changed = true
	}
	if !changed {
		if over > 0 {
			return over, fmt.Errorf("%w: exports of %s over the cap", ErrTooLarge, b.Cluster)
		}
		return 0, fmt.Errorf("%w: exports of %s", ErrDuplicate, b.Cluster)
	}
	re.changed(counter)
	return over, nil
}

// rebase makes everything held older than any version of a new epoch.
func (re *remoteExports) rebase(epoch uint64) {
	for k, it := range re.items {
		it.Version = 0
		re.items[k] = it
	}
	re.epoch, re.floor = epoch, 0
}

// put stores it, numbered by counter, and accounts for its size.
func (re *remoteExports) put(it exportItem, counter *uint64) {
	if cur, ok := re.items[it.Key]; ok {
		re.size -= len(cur.Data) + itemOverhead
	}
	*counter++
	it.local = *counter
	re.items[it.Key] = it
	re.size += len(it.Data) + itemOverhead
}

func (re *remoteExports) remove(k ExportKey) {
	if cur, ok := re.items[k]; ok {
		re.size -= len(cur.Data) + itemOverhead
		delete(re.items, k)
	}
}

// changed drops what live built and moves the generation, after a change
// of items or synced.
func (re *remoteExports) changed(counter *uint64) {
	re.liveCache = nil
	*counter++
	re.generation = *counter
}

// forget drops the records (the cluster left the peers) and keeps epoch
// and floor, so that its old messages stay old if it is added again.
func (re *remoteExports) forget() {
	re.items, re.size, re.synced = map[ExportKey]exportItem{}, 0, false
	re.liveCache = nil
}

// applySnapshot replaces what is held at or below the snapshot's High with
// the snapshot; changes newer than the snapshot (they can overtake it)
// stay. A snapshot's size is bounded by its message.
func (re *remoteExports) applySnapshot(b exportBatch, counter *uint64) error {
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
			re.put(it, counter)
		}
	}
	for k, cur := range re.items {
		if !listed[k] && cur.Version <= b.High {
			re.remove(k)
		}
	}
	re.floor, re.synced = b.High, true
	re.changed(counter)
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
			out[k] = RemoteExport{Version: it.local, Record: it.Data}
		}
	}
	re.liveCache = out
	return out
}

// RemoteExport is one export of a remote cluster. Record is shared between
// callers and must not be modified; Version changes whenever Record does
// (it numbers the records this gateway accepted, whatever the sender's
// epoch), so callers can cache what they derive from it.
type RemoteExport struct {
	Version uint64
	Record  json.RawMessage
}
