package gossip

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

// FuzzDecode checks that decoding never panics, that every error carries a
// drop reason, and that the format is canonical: whatever parses re-encodes
// to the very same bytes, and whatever decodes (MAC verified) re-encodes to
// a message that decodes to the same state.
func FuzzDecode(f *testing.F) {
	krA := testKeyring(f, "a", testKey("a"), "b", "c")
	krB := testKeyring(f, "b", testKey("b"), "a", "c")
	seeds := []ClusterState{
		sampleState("a", 1),
		{Cluster: "a", Version: 2, ActiveGateway: "n"},
		{
			Cluster: "a", Version: 1 << 62, ActiveGateway: "node.example",
			PodCIDRs:     []netip.Prefix{netip.MustParsePrefix("::/0")},
			ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("fd00::/8")},
			Exports:      []byte(`[1,2,{"a":null}]`),
		},
	}
	for _, s := range seeds {
		msg, err := Encode(s, krA)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(msg)
		for _, n := range []int{0, 4, 5, 6, 8, 20, len(msg) / 2, len(msg) - 33, len(msg) - 1} {
			if n >= 0 && n < len(msg) {
				f.Add(msg[:n])
			}
		}
	}
	f.Add(newRaw().head().noCIDRsNoExports().u8(0).b)
	f.Add(newRaw().head().u16(1).v4("10.0.0.0", 8).u16(0).u16(2).bytes([]byte("{}")).u8(0).b)

	reasons := []error{ErrMalformed, ErrTooLarge, ErrUnknownVersion, ErrUnknownSender, ErrNoMAC, ErrBadMAC}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parse(data)
		if err != nil {
			if !errorsIsAny(err, reasons) {
				t.Fatalf("parse error without a reason: %v", err)
			}
			return
		}
		b, signed, err := m.marshal()
		if err != nil {
			t.Fatalf("parsed message does not re-encode: %v\n%+v", err, m)
		}
		if !bytes.Equal(b, data) || signed != m.signed {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", data, b)
		}
		m2, err := parse(b)
		if err != nil || !reflect.DeepEqual(m2, m) {
			t.Fatalf("re-encoded message parses to %+v, %v; want %+v", m2, err, m)
		}

		s, err := Decode(data, krB)
		if err != nil {
			if !errorsIsAny(err, reasons) {
				t.Fatalf("Decode error without a reason: %v", err)
			}
			return
		}
		again, err := Encode(s, krA)
		if err != nil {
			t.Fatalf("decoded state does not re-encode: %v", err)
		}
		s2, err := Decode(again, krB)
		if err != nil || !reflect.DeepEqual(s2, s) {
			t.Fatalf("re-encoded state decodes to %+v, %v; want %+v", s2, err, s)
		}
	})
}

func errorsIsAny(err error, targets []error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// FuzzDispatch feeds arbitrary bytes to the receive path of every message
// kind (state, exports, bundle): it must never panic, every drop must be
// counted, and a message that decodes must re-encode to one that decodes to
// the same batch.
func FuzzDispatch(f *testing.F) {
	krA := testKeyring(f, "a", testKey("a"), "b")
	krB := testKeyring(f, "b", testKey("b"), "a")
	for _, b := range []exportBatch{
		{Cluster: "a", Items: []exportItem{{Key: ExportKey{"ns", "db"}, Version: 3, Deleted: true}, {Key: ExportKey{"ns", "web"}, Version: 4, Data: []byte(`{"x":[1]}`)}}},
		{Cluster: "a", Snapshot: true, High: 9, Items: []exportItem{{Key: ExportKey{"a", "b"}, Version: 9, Data: []byte(`null`)}}},
	} {
		msg, err := encodeExports(b, krA)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(msg)
		f.Add(bundle(nil, msg))
		f.Add(msg[:len(msg)/2])
	}
	state, err := Encode(sampleState("a", 1), krA)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(state)
	reasons := []error{ErrMalformed, ErrTooLarge, ErrUnknownVersion, ErrUnknownSender, ErrNoMAC, ErrBadMAC}
	f.Fuzz(func(t *testing.T, data []byte) {
		if b, err := decodeExports(data, krB); err != nil {
			if !errorsIsAny(err, reasons) {
				t.Fatalf("decodeExports error without a reason: %v", err)
			}
		} else {
			again, err := encodeExports(b, krA)
			if err != nil {
				t.Fatalf("decoded batch does not re-encode: %v", err)
			}
			b2, err := decodeExports(again, krB)
			if err != nil || !reflect.DeepEqual(b2, b) {
				t.Fatalf("re-encoded batch decodes to %+v, %v; want %+v", b2, err, b)
			}
		}
		if _, _, err := unbundle(data); err != nil && !errorsIsAny(err, reasons) {
			t.Fatalf("unbundle error without a reason: %v", err)
		}
	})
}
