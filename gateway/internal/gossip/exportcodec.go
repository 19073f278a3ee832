package gossip

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Limits of export messages. An export is the opaque JSON record of one
// exported Service (the gateway's MCS controller defines it). Changes travel
// in batches of at most MaxExportBatchSize; the full set of a cluster's
// exports, sent to clusters that arrive and every PushPullInterval to one,
// is one message of at most MaxExportSnapshotSize, which stays under
// memberlist's 20 MiB bound on a user message.
const (
	MaxExportSize         = 256 << 10
	MaxExportBatchSize    = 1 << 20
	MaxExportSnapshotSize = 16 << 20
	// MaxExports bounds the exports of one cluster.
	MaxExports = 100_000
)

// ExportKey names one exported Service.
type ExportKey struct{ Namespace, Name string }

func (k ExportKey) String() string { return k.Namespace + "/" + k.Name }

func compareKeys(a, b ExportKey) int {
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// exportItem is one version of one export: its record, or its deletion.
type exportItem struct {
	Key     ExportKey
	Version uint64
	Deleted bool
	Data    json.RawMessage // nil when Deleted
	// local numbers the item where it is held (remoteExports.put); not
	// on the wire.
	local uint64
}

// exportBatch is the content of one export message. A snapshot lists every
// live export of the cluster as of High, the highest version it had given
// out; a receiver drops whatever it holds for the cluster at or below High
// that the snapshot does not list. A batch of changes has High 0.
type exportBatch struct {
	Cluster  string
	Snapshot bool
	High     uint64
	Items    []exportItem // keys strictly ascending
}

// Body of an export message (kindBatch or kindSnapshot; the envelope,
// envelope.go, carries the sender and the MACs), same conventions as the
// state body:
//
//	u8 n, n bytes                       cluster ID (the envelope's sender)
//	u64                                 high (0 in a batch of changes)
//	u32 n, n × item                     items, keys ascending
//
// An item is u8 n namespace, u8 n name, u64 version, u8 deleted (0/1),
// u32 n, n bytes of JSON (n = 0 when deleted).
func (b *exportBatch) limit() int {
	if b.Snapshot {
		return MaxExportSnapshotSize
	}
	return MaxExportBatchSize
}

func (b *exportBatch) validate() error {
	if err := validateCluster(b.Cluster); err != nil {
		return err
	}
	if !b.Snapshot && b.High != 0 {
		return fmt.Errorf("%w: a batch of changes with high %d", ErrMalformed, b.High)
	}
	if len(b.Items) > MaxExports {
		return fmt.Errorf("%w: %d exports, limit %d", ErrTooLarge, len(b.Items), MaxExports)
	}
	for i, it := range b.Items {
		if err := it.validate(b.Snapshot); err != nil {
			return fmt.Errorf("export %s: %w", it.Key, err)
		}
		if b.Snapshot && it.Version > b.High {
			return fmt.Errorf("%w: export %s version %d above the snapshot's %d", ErrMalformed, it.Key, it.Version, b.High)
		}
		if i > 0 && compareKeys(b.Items[i-1].Key, it.Key) >= 0 {
			return fmt.Errorf("%w: export keys not strictly ascending", ErrMalformed)
		}
	}
	return nil
}

func (it *exportItem) validate(snapshot bool) error {
	for _, s := range []string{it.Key.Namespace, it.Key.Name} {
		if errs := validation.IsDNS1123Label(s); len(errs) > 0 {
			return fmt.Errorf("%w: name %q: %s", ErrMalformed, s, strings.Join(errs, "; "))
		}
	}
	switch {
	case it.Version == 0:
		return fmt.Errorf("%w: version 0", ErrMalformed)
	case it.Deleted && snapshot:
		return fmt.Errorf("%w: a deletion in a snapshot", ErrMalformed)
	case it.Deleted && len(it.Data) > 0:
		return fmt.Errorf("%w: a deletion with a record", ErrMalformed)
	case !it.Deleted && len(it.Data) > MaxExportSize:
		return fmt.Errorf("%w: record of %d bytes, limit %d", ErrTooLarge, len(it.Data), MaxExportSize)
	case !it.Deleted && !json.Valid(it.Data):
		return fmt.Errorf("%w: record is not valid JSON", ErrMalformed)
	}
	return nil
}

// encodeExports returns the body of an export message.
func encodeExports(b exportBatch) ([]byte, error) {
	if err := b.validate(); err != nil {
		return nil, fmt.Errorf("encode exports: %w", err)
	}
	size := 64
	for _, it := range b.Items {
		size += 2*64 + 16 + len(it.Data)
	}
	out := make([]byte, 0, size)
	out = appendString8(out, b.Cluster)
	out = binary.BigEndian.AppendUint64(out, b.High)
	out = binary.BigEndian.AppendUint32(out, uint32(len(b.Items)))
	for _, it := range b.Items {
		out = appendString8(out, it.Key.Namespace)
		out = appendString8(out, it.Key.Name)
		out = binary.BigEndian.AppendUint64(out, it.Version)
		del := byte(0)
		if it.Deleted {
			del = 1
		}
		out = append(out, del)
		out = binary.BigEndian.AppendUint32(out, uint32(len(it.Data)))
		out = append(out, it.Data...)
	}
	if len(out) > b.limit() {
		return nil, fmt.Errorf("%w: exports message of %d bytes, limit %d", ErrTooLarge, len(out), b.limit())
	}
	return out, nil
}

// decodeExports parses the body of an authenticated export message; the
// envelope's kind says whether it is a snapshot. Every length is checked
// against what remains of the body before anything is allocated. Every
// error wraps ErrMalformed or ErrTooLarge.
func decodeExports(body []byte, snapshot bool) (exportBatch, error) {
	b := exportBatch{Snapshot: snapshot}
	if len(body) > b.limit() {
		return b, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(body), b.limit())
	}
	r := reader{buf: body}
	b.Cluster = r.string8("cluster ID")
	b.High = r.uint64("high")
	n := int(r.uint32("item count"))
	// An item takes at least 16 bytes: a count beyond what the body can
	// hold is refused before the slice is sized by it.
	if n > MaxExports || n > (len(body)-r.off)/16 {
		r.fail(fmt.Errorf("%w: %d exports in %d bytes, limit %d", ErrTooLarge, n, len(body), MaxExports))
	}
	if r.err == nil && n > 0 {
		b.Items = make([]exportItem, 0, n)
	}
	for i := 0; i < n && r.err == nil; i++ {
		var it exportItem
		it.Key.Namespace = r.string8("namespace")
		it.Key.Name = r.string8("name")
		it.Version = r.uint64("version")
		switch del := r.uint8("deleted"); del {
		case 0, 1:
			it.Deleted = del == 1
		default:
			r.fail(fmt.Errorf("%w: deleted flag %d", ErrMalformed, del))
		}
		size := int(r.uint32("record length"))
		if size > MaxExportSize {
			r.fail(fmt.Errorf("%w: record of %d bytes, limit %d", ErrTooLarge, size, MaxExportSize))
		} else if size > 0 {
			it.Data = bytes.Clone(r.bytes(size, "record"))
		}
		b.Items = append(b.Items, it)
	}
	if r.err == nil && r.off != len(body) {
		r.fail(fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(body)-r.off))
	}
	if r.err != nil {
		return exportBatch{}, r.err
	}
	if err := b.validate(); err != nil {
		return exportBatch{}, err
	}
	return b, nil
}

func (r *reader) uint32(what string) uint32 {
	if b := r.bytes(4, what); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}
