package gossip

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Every message travels in one envelope, whatever it carries (a heartbeat,
// a state, a batch of export changes, a snapshot of exports). Format
// version 2; integers big-endian:
//
//	"WSPM" 0x02 u8 kind                   magic, format version, kind   ┐
//	u8 n, n bytes                         sender cluster ID             │ header:
//	u64                                   sender epoch (random per boot)│ every MAC
//	u64                                   sequence within the epoch     │ covers it
//	u32                                   body length                   ┘
//	u8 n, n × (u8 n, n bytes recipient cluster ID, u64 echo, 32 bytes MAC)
//	body
//
// The MAC for recipient R is HMAC-SHA256(K(sender, R), header ‖ u8 len(R) ‖
// R ‖ echo ‖ SHA-256(body)), where echo is R's own epoch as the sender last
// learned it (0 if it knows none). Hashing the body once keeps the cost of
// sealing for 64 recipients that of one pass over the body.
//
// The header and the recipient list come first so that a receiver refuses
// what is too large, from an unknown cluster, not addressed to it, or from
// an epoch it has retired by reading a few dozen bytes: it hashes the body
// only when the sender is a peer and a MAC is addressed to it, and decodes
// the body only once the MAC matches (open).
const (
	envelopeMagic   = "WSPM"
	envelopeVersion = 2
	envelopeFixed   = len(envelopeMagic) + 2 // magic, version, kind
)

// kind says what the body of a message is.
type kind uint8

const (
	kindHeartbeat kind = 1 // no body: "this cluster's gateway is alive"
	kindState     kind = 2 // a ClusterState (codec.go)
	kindBatch     kind = 3 // export changes (exportcodec.go)
	kindSnapshot  kind = 4 // the whole set of exports
)

// Limits of each kind, the envelope included: checked on the length of the
// message before anything in it is read.
const (
	// envelopeOverhead bounds the header and the recipient list.
	envelopeOverhead = envelopeFixed + 1 + 63 + 8 + 8 + 4 + 1 + MaxPeers*(1+63+8+MACSize)
	// maxHeartbeatSize: the envelope and the clusters asked (receive.go).
	maxHeartbeatSize = envelopeOverhead + 1 + MaxPeers*64
)

func (k kind) limit() (int, bool) {
	switch k {
	case kindHeartbeat:
		return maxHeartbeatSize, true
	case kindState:
		return MaxMessageSize + envelopeOverhead, true
	case kindBatch:
		return MaxExportBatchSize + envelopeOverhead, true
	case kindSnapshot:
		return MaxExportSnapshotSize + envelopeOverhead, true
	}
	return 0, false
}

func (k kind) String() string {
	switch k {
	case kindHeartbeat:
		return "heartbeat"
	case kindState:
		return "state"
	case kindBatch:
		return "exports"
	case kindSnapshot:
		return "snapshot"
	}
	return fmt.Sprintf("kind %d", uint8(k))
}

// header is what a message says about itself before its MAC is checked.
type header struct {
	kind    kind
	cluster string // the sender
	epoch   uint64 // the sender's boot
	seq     uint64 // strictly increasing per message sealed in that boot
}

// sealMessage wraps body in an envelope authenticated for every peer in
// kr. echo gives, per peer, that peer's epoch as we know it (0: unknown).
func sealMessage(h header, body []byte, kr *Keyring, echo func(cluster string) uint64) ([]byte, error) {
	return sealMessageTo(h, body, kr, echo, sortedKeys(kr.keys))
}

// sealMessageTo is sealMessage for some of kr's peers only (sorted): a
// heartbeat, sent to each peer apart, carries its recipient's MAC alone.
func sealMessageTo(h header, body []byte, kr *Keyring, echo func(cluster string) uint64, peers []string) ([]byte, error) {
	if h.cluster != kr.local {
		return nil, fmt.Errorf("seal a message of cluster %q with the keys of %q", h.cluster, kr.local)
	}
	if len(peers) > MaxPeers {
		return nil, fmt.Errorf("%w: %d recipients, limit %d", ErrTooLarge, len(peers), MaxPeers)
	}
	limit, ok := h.kind.limit()
	if !ok {
		return nil, fmt.Errorf("seal: unknown kind %d", h.kind)
	}
	size := envelopeFixed + 1 + len(h.cluster) + 20 + 1 + len(peers)*(1+63+8+MACSize) + len(body)
	if size > limit {
		return nil, fmt.Errorf("%w: %s message of %d bytes, limit %d", ErrTooLarge, h.kind, size, limit)
	}
	b := make([]byte, 0, size)
	b = append(b, envelopeMagic...)
	b = append(b, envelopeVersion, byte(h.kind))
	b = appendString8(b, h.cluster)
	b = binary.BigEndian.AppendUint64(b, h.epoch)
	b = binary.BigEndian.AppendUint64(b, h.seq)
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	hdr := b[:len(b):len(b)]
	digest := sha256.Sum256(body)
	b = append(b, byte(len(peers)))
	for _, id := range peers {
		e := echo(id)
		sum := recipientMAC(kr.keys[id], hdr, id, e, digest)
		b = appendString8(b, id)
		b = binary.BigEndian.AppendUint64(b, e)
		b = append(b, sum[:]...)
	}
	return append(b, body...), nil
}

// recipientMAC is the MAC of a message for one recipient.
func recipientMAC(key [MACSize]byte, hdr []byte, recipient string, echo uint64, digest [sha256.Size]byte) [MACSize]byte {
	h := hmac.New(sha256.New, key[:])
	h.Write(hdr)
	h.Write([]byte{byte(len(recipient))})
	h.Write([]byte(recipient))
	h.Write(binary.BigEndian.AppendUint64(nil, echo))
	h.Write(digest[:])
	var out [MACSize]byte
	h.Sum(out[:0])
	return out
}

// envelope is a message whose header and recipient entry for us were read,
// and whose MAC is not checked yet.
type envelope struct {
	header
	echo   uint64 // our epoch as the sender knows it
	mac    [MACSize]byte
	hdr    []byte // the header bytes, for the MAC
	body   []byte // aliases the message
	macKey [MACSize]byte
}

// peek reads the header and our recipient entry, and checks that the
// message is within its kind's size, from a known peer, and addressed to
// kr's cluster. It reads no more than the header and the recipient list,
// allocates nothing that the sender sizes, and never hashes: it is what
// stands between an unauthenticated sender and any work. Every error wraps
// one of the Err* reasons.
func peek(msg []byte, kr *Keyring) (envelope, error) {
	var e envelope
	if len(msg) < envelopeFixed || !bytes.Equal(msg[:len(envelopeMagic)], []byte(envelopeMagic)) {
		return e, fmt.Errorf("%w: bad magic", ErrMalformed)
	}
	if v := msg[len(envelopeMagic)]; v != envelopeVersion {
		return e, fmt.Errorf("%w: %d", ErrUnknownVersion, v)
	}
	e.kind = kind(msg[len(envelopeMagic)+1])
	limit, ok := e.kind.limit()
	if !ok {
		return e, fmt.Errorf("%w: message kind %d", ErrMalformed, e.kind)
	}
	if len(msg) > limit {
		return e, fmt.Errorf("%w: %s message of %d bytes, limit %d", ErrTooLarge, e.kind, len(msg), limit)
	}
	r := reader{buf: msg, off: envelopeFixed}
	e.cluster = r.string8("sender")
	e.epoch = r.uint64("epoch")
	e.seq = r.uint64("sequence")
	bodyLen := int(r.uint32("body length"))
	e.hdr = msg[:r.off]
	if r.err != nil {
		return e, r.err
	}
	if err := validateCluster(e.cluster); err != nil {
		return e, fmt.Errorf("sender: %w", err)
	}
	if e.cluster == kr.local {
		return e, fmt.Errorf("%w: %q is our own cluster", ErrUnknownSender, e.cluster)
	}
	key, known := kr.keys[e.cluster]
	if !known {
		return e, fmt.Errorf("%w: %q", ErrUnknownSender, e.cluster)
	}
	e.macKey = key
	n := int(r.uint8("recipient count"))
	if n > MaxPeers {
		return e, fmt.Errorf("%w: %d recipients, limit %d", ErrTooLarge, n, MaxPeers)
	}
	found := false
	for range n {
		id := r.bytes(int(r.uint8("recipient")), "recipient")
		echo := r.uint64("echo")
		sum := r.bytes(MACSize, "MAC")
		if r.err != nil {
			return e, r.err
		}
		if string(id) == kr.local {
			found, e.echo = true, echo
			copy(e.mac[:], sum)
		}
	}
	if bodyLen != len(msg)-r.off {
		return e, fmt.Errorf("%w: body of %d bytes announced, %d present", ErrMalformed, bodyLen, len(msg)-r.off)
	}
	if !found {
		return e, fmt.Errorf("%w: sender %q, recipient %q", ErrNoMAC, e.cluster, kr.local)
	}
	e.body = msg[r.off:]
	return e, nil
}

// verify checks the MAC addressed to us: one pass over the body.
func (e *envelope) verify(local string) error {
	want := recipientMAC(e.macKey, e.hdr, local, e.echo, sha256.Sum256(e.body))
	if !hmac.Equal(want[:], e.mac[:]) {
		return fmt.Errorf("%w: claimed sender %q", ErrBadMAC, e.cluster)
	}
	return nil
}
