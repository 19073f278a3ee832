package gossip

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Wire format, version 1. All integers are big-endian; every variable-length
// field has an explicit length, and the encoding of a state is canonical
// (one state has exactly one encoding), which the fuzz test relies on.
//
//	"WSPG" 0x01                      magic, format version
//	u8 n, n bytes                    cluster ID            ┐
//	u64                              version               │ signed part:
//	u8 n, n bytes                    active gateway        │ every MAC is
//	u16 n, n × prefix                pod CIDRs             │ computed over
//	u16 n, n × prefix                service CIDRs         │ these bytes,
//	u16 n, n bytes                   exports (JSON or n=0) ┘ magic included
//	u8 n, n × (u8 n, n bytes, 32 bytes)  recipient cluster ID and MAC,
//	                                     recipients strictly ascending
//
// A prefix is u8 family (4 or 6), the 4 or 16 address bytes, u8 bits.
const (
	magic         = "WSPG"
	formatVersion = 1
	headerSize    = len(magic) + 1
)

// Encode returns the wire form of s, authenticated for every peer in kr.
// s.Cluster must be the keyring's own cluster: a node speaks only for its
// cluster.
func Encode(s ClusterState, kr *Keyring) ([]byte, error) {
	if s.Cluster != kr.local {
		return nil, fmt.Errorf("encode state of cluster %q with the keys of %q", s.Cluster, kr.local)
	}
	if len(kr.keys) > MaxPeers {
		return nil, fmt.Errorf("%w: %d recipients, limit %d", ErrTooLarge, len(kr.keys), MaxPeers)
	}
	m := message{state: s}
	for _, id := range sortedKeys(kr.keys) {
		m.macs = append(m.macs, recipientMAC{cluster: id})
	}
	b, signed, err := m.marshal()
	if err != nil {
		return nil, err
	}
	// Fill in the MACs in place: they sit at the end, in recipient order.
	off := len(b)
	for i := len(m.macs) - 1; i >= 0; i-- {
		off -= MACSize
		sum := mac(kr.keys[m.macs[i].cluster], b[:signed])
		copy(b[off:], sum[:])
		off -= 1 + len(m.macs[i].cluster)
	}
	return b, nil
}

// Decode parses msg, checks that it speaks for a known peer of kr's cluster
// and that the MAC for kr's cluster is the one that peer's key produces, and
// returns the state. Every error wraps one of the Err* reasons.
func Decode(msg []byte, kr *Keyring) (ClusterState, error) {
	m, err := parse(msg)
	if err != nil {
		return ClusterState{}, err
	}
	if err := authenticate(msg[:m.signed], m.state.Cluster, m.macs, kr); err != nil {
		return ClusterState{}, err
	}
	return m.state, nil
}

// message is the parsed form of the wire format, before verification.
type message struct {
	state ClusterState
	macs  []recipientMAC
	// signed is the length of the signed part (set by parse).
	signed int
}

type recipientMAC struct {
	cluster string
	mac     [MACSize]byte
}

// marshal encodes m, returning the bytes and the length of the signed part.
func (m *message) marshal() ([]byte, int, error) {
	if err := m.state.validate(); err != nil {
		return nil, 0, fmt.Errorf("encode state: %w", err)
	}
	if len(m.macs) > MaxPeers {
		return nil, 0, fmt.Errorf("%w: %d MACs, limit %d", ErrTooLarge, len(m.macs), MaxPeers)
	}
	for i, r := range m.macs {
		if err := validateCluster(r.cluster); err != nil {
			return nil, 0, fmt.Errorf("MAC recipient: %w", err)
		}
		if i > 0 && r.cluster <= m.macs[i-1].cluster {
			return nil, 0, fmt.Errorf("%w: MAC recipients not strictly ascending", ErrMalformed)
		}
	}
	s := &m.state
	b := make([]byte, 0, 256+len(s.Exports)+18*(len(s.PodCIDRs)+len(s.ServiceCIDRs)))
	b = append(b, magic...)
	b = append(b, formatVersion)
	b = appendString8(b, s.Cluster)
	b = binary.BigEndian.AppendUint64(b, s.Version)
	b = appendString8(b, s.ActiveGateway)
	b = appendPrefixes(b, s.PodCIDRs)
	b = appendPrefixes(b, s.ServiceCIDRs)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.Exports)))
	b = append(b, s.Exports...)
	signed := len(b)
	b = append(b, byte(len(m.macs)))
	for _, r := range m.macs {
		b = appendString8(b, r.cluster)
		b = append(b, r.mac[:]...)
	}
	if len(b) > MaxMessageSize { // unreachable within the limits above; kept as a guard
		return nil, 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), MaxMessageSize)
	}
	return b, signed, nil
}

func appendString8(b []byte, s string) []byte {
	b = append(b, byte(len(s)))
	return append(b, s...)
}

func appendPrefixes(b []byte, ps []netip.Prefix) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(ps)))
	for _, p := range ps {
		if p.Addr().Is4() {
			b = append(b, 4)
		} else {
			b = append(b, 6)
		}
		b = append(b, p.Addr().AsSlice()...)
		b = append(b, byte(p.Bits()))
	}
	return b
}

// parse decodes the wire format without verifying any MAC. The result shares
// no memory with msg (memberlist reuses its buffers).
func parse(msg []byte) (message, error) {
	var m message
	if len(msg) > MaxMessageSize {
		return m, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(msg), MaxMessageSize)
	}
	if len(msg) < headerSize || !bytes.Equal(msg[:len(magic)], []byte(magic)) {
		return m, fmt.Errorf("%w: bad magic", ErrMalformed)
	}
	if v := msg[len(magic)]; v != formatVersion {
		return m, fmt.Errorf("%w: %d", ErrUnknownVersion, v)
	}
	r := reader{buf: msg, off: headerSize}
	s := &m.state
	s.Cluster = r.string8("cluster ID")
	s.Version = r.uint64("version")
	s.ActiveGateway = r.string8("active gateway")
	s.PodCIDRs = r.prefixes("pod CIDRs")
	s.ServiceCIDRs = r.prefixes("service CIDRs")
	if n := int(r.uint16("exports length")); n > MaxExportsSize {
		r.fail(fmt.Errorf("%w: exports are %d bytes, limit %d", ErrTooLarge, n, MaxExportsSize))
	} else if n > 0 {
		s.Exports = bytes.Clone(r.bytes(n, "exports"))
	}
	m.signed = r.off
	if n := int(r.uint8("MAC count")); n > MaxPeers {
		r.fail(fmt.Errorf("%w: %d MACs, limit %d", ErrTooLarge, n, MaxPeers))
	} else if n > 0 {
		m.macs = make([]recipientMAC, n)
		for i := range m.macs {
			m.macs[i].cluster = r.string8("MAC recipient")
			copy(m.macs[i].mac[:], r.bytes(MACSize, "MAC"))
		}
	}
	if r.err == nil && r.off != len(msg) {
		r.fail(fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(msg)-r.off))
	}
	if r.err != nil {
		return message{}, r.err
	}
	// Semantic checks, shared with the encoder.
	if err := s.validate(); err != nil {
		return message{}, err
	}
	for i, rm := range m.macs {
		if err := validateCluster(rm.cluster); err != nil {
			return message{}, fmt.Errorf("MAC recipient: %w", err)
		}
		if i > 0 && rm.cluster <= m.macs[i-1].cluster {
			return message{}, fmt.Errorf("%w: MAC recipients not strictly ascending", ErrMalformed)
		}
	}
	return m, nil
}

// reader reads fields in order; the first error sticks and later reads
// return zero values, so parse checks once at the end.
type reader struct {
	buf []byte
	off int
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) bytes(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.buf)-r.off {
		r.fail(fmt.Errorf("%w: truncated %s at offset %d", ErrMalformed, what, r.off))
		return nil
	}
	b := r.buf[r.off : r.off+n]
	r.off += n
	return b
}

func (r *reader) uint8(what string) uint8 {
	if b := r.bytes(1, what); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) uint16(what string) uint16 {
	if b := r.bytes(2, what); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) uint64(what string) uint64 {
	if b := r.bytes(8, what); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (r *reader) string8(what string) string {
	return string(r.bytes(int(r.uint8(what)), what))
}

func (r *reader) prefixes(what string) []netip.Prefix {
	n := int(r.uint16(what))
	if n > MaxCIDRs {
		r.fail(fmt.Errorf("%w: %s: %d prefixes, limit %d", ErrTooLarge, what, n, MaxCIDRs))
		return nil
	}
	if n == 0 || r.err != nil {
		return nil
	}
	ps := make([]netip.Prefix, 0, n)
	for range n {
		var addr netip.Addr
		switch fam := r.uint8(what); fam {
		case 4:
			if b := r.bytes(4, what); b != nil {
				addr = netip.AddrFrom4([4]byte(b))
			}
		case 6:
			if b := r.bytes(16, what); b != nil {
				addr = netip.AddrFrom16([16]byte(b))
			}
		default:
			r.fail(fmt.Errorf("%w: %s: address family %d", ErrMalformed, what, fam))
		}
		bits := int(r.uint8(what))
		if r.err != nil {
			return nil
		}
		p := netip.PrefixFrom(addr, bits)
		if !p.IsValid() {
			r.fail(fmt.Errorf("%w: %s: /%d on %v", ErrMalformed, what, bits, addr))
			return nil
		}
		ps = append(ps, p)
	}
	return ps
}
