package gossip

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

// reasons are the errors every refusal wraps one of.
var reasons = []error{ErrMalformed, ErrTooLarge, ErrUnknownVersion, ErrUnknownSender, ErrNoMAC, ErrBadMAC}

// FuzzDecode checks that decoding a state body never panics, that every
// error carries a drop reason, and that the format is canonical: whatever
// decodes re-encodes to the very same bytes.
func FuzzDecode(f *testing.F) {
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
		body, err := encodeState(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
		for _, n := range []int{0, 1, 2, 10, len(body) / 2, len(body) - 1} {
			if n >= 0 && n < len(body) {
				f.Add(body[:n])
			}
		}
	}
	f.Add(newRaw().head().noCIDRsNoExports().b)
	f.Add(newRaw().head().u16(1).v4("10.0.0.0", 8).u16(0).u16(2).bytes([]byte("{}")).b)

	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := decodeState(data)
		if err != nil {
			if !errorsIsAny(err, reasons) {
				t.Fatalf("decodeState error without a reason: %v", err)
			}
			return
		}
		b, err := encodeState(s)
		if err != nil {
			t.Fatalf("decoded state does not re-encode: %v\n%+v", err, s)
		}
		if !bytes.Equal(b, data) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", data, b)
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

// FuzzEnvelope feeds arbitrary bytes to what reads a message before it is
// authenticated (the guard's split of compound packets, peek) and then to
// the MAC check: it must never panic,
// every refusal must carry a reason, the body it hands on must be the tail
// of the message with the announced length, and only a message sealed with
// a's key for b may pass.
func FuzzEnvelope(f *testing.F) {
	krA := testKeyring(f, "a", testKey("a"), "b", "c")
	krB := testKeyring(f, "b", testKey("b"), "a", "c")
	state, err := Encode(sampleState("a", 1), krA)
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range [][]byte{
		state,
		sealFor(f, kindHeartbeat, encodeHeartbeat([]string{"b"}), krA),
		sealExports(f, exportBatch{Cluster: "a", Snapshot: true, High: 2, Items: []exportItem{{Key: key("n", "w"), Version: 2, Data: rec("x")}}}, krA),
		sealFor(f, kindState, []byte("x"), testKeyring(f, "a", testKey("c"), "b")),
	} {
		f.Add(m)
		f.Add(m[:len(m)/2])
		f.Add(m[:envelopeFixed+3])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// The guard splits memberlist's compound packets before anything
		// is authenticated: the parts must lie within the packet.
		total := 0
		for _, p := range splitCompound(data) {
			total += len(p)
		}
		if total > len(data) {
			t.Fatalf("compound parts of %d bytes in %d", total, len(data))
		}
		env, err := peek(data, krB)
		if err != nil {
			if !errorsIsAny(err, reasons) {
				t.Fatalf("peek error without a reason: %v", err)
			}
			return
		}
		if len(env.body) > len(data) || !bytes.Equal(env.body, data[len(data)-len(env.body):]) {
			t.Fatalf("peek's body is not the message's tail")
		}
		if limit, _ := env.kind.limit(); len(data) > limit {
			t.Fatalf("peek passed a %s message of %d bytes, limit %d", env.kind, len(data), limit)
		}
		if err := env.verify(krB.local); err != nil {
			if !errors.Is(err, ErrBadMAC) {
				t.Fatalf("verify error %v, want ErrBadMAC", err)
			}
			return
		}
		if env.cluster != "a" && env.cluster != "c" {
			t.Fatalf("authenticated as %q", env.cluster)
		}
	})
}

// FuzzDispatch feeds arbitrary bytes to the body decoders of exports and
// heartbeats: they must never panic, every refusal must carry a reason, and
// a batch that decodes must re-encode to one that decodes to the same.
func FuzzDispatch(f *testing.F) {
	for _, b := range []exportBatch{
		{Cluster: "a", Items: []exportItem{{Key: ExportKey{"ns", "db"}, Version: 3, Deleted: true}, {Key: ExportKey{"ns", "web"}, Version: 4, Data: []byte(`{"x":[1]}`)}}},
		{Cluster: "a", Snapshot: true, High: 9, Items: []exportItem{{Key: ExportKey{"a", "b"}, Version: 9, Data: []byte(`null`)}}},
	} {
		body, err := encodeExports(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body, b.Snapshot)
		f.Add(body[:len(body)/2], b.Snapshot)
	}
	f.Add(encodeHeartbeat([]string{"a", "b"}), false)
	f.Fuzz(func(t *testing.T, data []byte, snapshot bool) {
		if b, err := decodeExports(data, snapshot); err != nil {
			if !errorsIsAny(err, reasons) {
				t.Fatalf("decodeExports error without a reason: %v", err)
			}
		} else {
			again, err := encodeExports(b)
			if err != nil {
				t.Fatalf("decoded batch does not re-encode: %v", err)
			}
			b2, err := decodeExports(again, snapshot)
			if err != nil || !reflect.DeepEqual(b2, b) {
				t.Fatalf("re-encoded batch decodes to %+v, %v; want %+v", b2, err, b)
			}
		}
		if _, err := decodeHeartbeat(data); err != nil && !errorsIsAny(err, reasons) {
			t.Fatalf("decodeHeartbeat error without a reason: %v", err)
		}
	})
}
