package gossip

import (
	"bytes"
	"crypto/hmac"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Limits of export messages. An export is the opaque JSON record of one
// exported Service (the gateway's MCS controller defines it). Changes travel
// in batches of at most MaxExportBatchSize; the full set of a cluster's
// exports, sent in push/pull exchanges and to members that join, is one
// message of at most MaxExportSnapshotSize, which stays under memberlist's
// 20 MiB bound on the state of a push/pull.
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

// Wire format of an export message, version 1 (same conventions as the
// state message, whose MAC scheme it shares):
//
//	"WSPE" 0x01                         magic, format version
//	u8 n, n bytes                       cluster ID               ┐
//	u8 flags                            bit 0: snapshot          │
//	u64                                 high                     │ signed
//	u32 n, n × item                     items, keys ascending    ┘
//	u8 n, n × (u8 n, n bytes, 32 bytes) recipient cluster ID and MAC
//
// An item is u8 n namespace, u8 n name, u64 version, u8 deleted (0/1),
// u32 n, n bytes of JSON (n = 0 when deleted).
const exportMagic = "WSPE"

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

// encodeExports returns the wire form of b, authenticated for every peer in
// kr.
func encodeExports(b exportBatch, kr *Keyring) ([]byte, error) {
	if b.Cluster != kr.local {
		return nil, fmt.Errorf("encode exports of cluster %q with the keys of %q", b.Cluster, kr.local)
	}
	if err := b.validate(); err != nil {
		return nil, fmt.Errorf("encode exports: %w", err)
	}
	size := 64
	for _, it := range b.Items {
		size += 2*64 + 16 + len(it.Data)
	}
	out := make([]byte, 0, size)
	out = append(out, exportMagic...)
	out = append(out, formatVersion)
	out = appendString8(out, b.Cluster)
	var flags byte
	if b.Snapshot {
		flags = 1
	}
	out = append(out, flags)
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
	out, err := seal(out, kr)
	if err != nil {
		return nil, err
	}
	if len(out) > b.limit() {
		return nil, fmt.Errorf("%w: exports message of %d bytes, limit %d", ErrTooLarge, len(out), b.limit())
	}
	return out, nil
}

// decodeExports parses and authenticates an export message for kr's
// cluster. Every error wraps one of the Err* reasons.
func decodeExports(msg []byte, kr *Keyring) (exportBatch, error) {
	var b exportBatch
	if len(msg) > MaxExportSnapshotSize {
		return b, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(msg), MaxExportSnapshotSize)
	}
	if len(msg) < headerSize || !bytes.Equal(msg[:len(exportMagic)], []byte(exportMagic)) {
		return b, fmt.Errorf("%w: bad magic", ErrMalformed)
	}
	if v := msg[len(exportMagic)]; v != formatVersion {
		return b, fmt.Errorf("%w: %d", ErrUnknownVersion, v)
	}
	r := reader{buf: msg, off: headerSize}
	b.Cluster = r.string8("cluster ID")
	switch flags := r.uint8("flags"); flags {
	case 0, 1:
		b.Snapshot = flags == 1
	default:
		r.fail(fmt.Errorf("%w: flags %#x", ErrMalformed, flags))
	}
	b.High = r.uint64("high")
	n := int(r.uint32("item count"))
	if n > MaxExports {
		r.fail(fmt.Errorf("%w: %d exports, limit %d", ErrTooLarge, n, MaxExports))
	}
	if !b.Snapshot && len(msg) > MaxExportBatchSize {
		r.fail(fmt.Errorf("%w: batch of %d bytes, limit %d", ErrTooLarge, len(msg), MaxExportBatchSize))
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
	signed := r.off
	macs := r.macs()
	if r.err == nil && r.off != len(msg) {
		r.fail(fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(msg)-r.off))
	}
	if r.err != nil {
		return exportBatch{}, r.err
	}
	if err := b.validate(); err != nil {
		return exportBatch{}, err
	}
	if err := authenticate(msg[:signed], b.Cluster, macs, kr); err != nil {
		return exportBatch{}, err
	}
	return b, nil
}

// seal appends the recipient MACs for every peer in kr to the signed part
// b: the trailer that state and export messages share.
func seal(b []byte, kr *Keyring) ([]byte, error) {
	if len(kr.keys) > MaxPeers {
		return nil, fmt.Errorf("%w: %d recipients, limit %d", ErrTooLarge, len(kr.keys), MaxPeers)
	}
	signed := b[:len(b):len(b)]
	b = append(b, byte(len(kr.keys)))
	for _, id := range sortedKeys(kr.keys) {
		sum := mac(kr.keys[id], signed)
		b = appendString8(b, id)
		b = append(b, sum[:]...)
	}
	return b, nil
}

// macs reads the recipient MAC trailer.
func (r *reader) macs() []recipientMAC {
	n := int(r.uint8("MAC count"))
	if n > MaxPeers {
		r.fail(fmt.Errorf("%w: %d MACs, limit %d", ErrTooLarge, n, MaxPeers))
		return nil
	}
	var out []recipientMAC
	for i := 0; i < n && r.err == nil; i++ {
		var m recipientMAC
		m.cluster = r.string8("MAC recipient")
		copy(m.mac[:], r.bytes(MACSize, "MAC"))
		if r.err == nil {
			if err := validateCluster(m.cluster); err != nil {
				r.fail(fmt.Errorf("MAC recipient: %w", err))
			} else if i > 0 && m.cluster <= out[i-1].cluster {
				r.fail(fmt.Errorf("%w: MAC recipients not strictly ascending", ErrMalformed))
			}
		}
		out = append(out, m)
	}
	return out
}

func (r *reader) uint32(what string) uint32 {
	if b := r.bytes(4, what); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

// authenticate checks that signed speaks for sender, a known peer of kr's
// cluster, with the MAC for kr's cluster that the sender's key produces.
func authenticate(signed []byte, sender string, macs []recipientMAC, kr *Keyring) error {
	if sender == kr.local {
		return fmt.Errorf("%w: %q is our own cluster", ErrUnknownSender, sender)
	}
	key, ok := kr.keys[sender]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownSender, sender)
	}
	for _, r := range macs {
		if r.cluster != kr.local {
			continue
		}
		want := mac(key, signed)
		if !hmac.Equal(want[:], r.mac[:]) {
			return fmt.Errorf("%w: claimed sender %q", ErrBadMAC, sender)
		}
		return nil
	}
	return fmt.Errorf("%w: sender %q, recipient %q", ErrNoMAC, sender, kr.local)
}
