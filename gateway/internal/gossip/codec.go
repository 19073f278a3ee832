package gossip

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
)

// The body of a state message (kindState; the envelope, envelope.go,
// carries the sender and the MACs). All integers are big-endian; every
// variable-length field has an explicit length, and the encoding of a state
// is canonical (one state has exactly one encoding), which the fuzz test
// relies on.
//
//	u8 n, n bytes                    cluster ID (the envelope's sender)
//	u64                              version
//	u8 n, n bytes                    active gateway
//	u16 n, n × prefix                pod CIDRs
//	u16 n, n × prefix                service CIDRs
//	u16 n, n bytes                   exports (JSON or n=0)
//
// A prefix is u8 family (4 or 6), the 4 or 16 address bytes, u8 bits.
// encodeState returns the body of a state message.
func encodeState(s ClusterState) ([]byte, error) {
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	b := make([]byte, 0, 256+len(s.Exports)+18*(len(s.PodCIDRs)+len(s.ServiceCIDRs)))
	b = appendString8(b, s.Cluster)
	b = binary.BigEndian.AppendUint64(b, s.Version)
	b = appendString8(b, s.ActiveGateway)
	b = appendPrefixes(b, s.PodCIDRs)
	b = appendPrefixes(b, s.ServiceCIDRs)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.Exports)))
	b = append(b, s.Exports...)
	if len(b) > MaxMessageSize { // unreachable within the limits above; kept as a guard
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), MaxMessageSize)
	}
	return b, nil
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

// decodeState parses the body of a state message, already authenticated.
// The result shares no memory with body (memberlist reuses its buffers).
// Every error wraps ErrMalformed or ErrTooLarge.
func decodeState(body []byte) (ClusterState, error) {
	var s ClusterState
	if len(body) > MaxMessageSize {
		return s, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(body), MaxMessageSize)
	}
	r := reader{buf: body}
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
	if r.err == nil && r.off != len(body) {
		r.fail(fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(body)-r.off))
	}
	if r.err != nil {
		return ClusterState{}, r.err
	}
	// Semantic checks, shared with the encoder.
	if err := s.validate(); err != nil {
		return ClusterState{}, err
	}
	return s, nil
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
