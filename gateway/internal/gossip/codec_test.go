package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	krA := testKeyring(t, "a", testKey("a"), "b", "c")
	krB := testKeyring(t, "b", testKey("b"), "a", "c")
	krC := testKeyring(t, "c", testKey("c"), "a", "b")
	for name, s := range map[string]ClusterState{
		"full":    sampleState("a", 42),
		"minimal": {Cluster: "a", Version: 1, ActiveGateway: "n"},
		"max version and host prefixes": {
			Cluster: "a", Version: ^uint64(0), ActiveGateway: "node-1",
			PodCIDRs:     []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")},
			ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::1/128")},
			Exports:      []byte(`null`),
		},
	} {
		t.Run(name, func(t *testing.T) {
			msg, err := Encode(s, krA)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			for _, kr := range []*Keyring{krB, krC} {
				got, err := Decode(msg, kr)
				if err != nil {
					t.Fatalf("Decode as %s: %v", kr.Local(), err)
				}
				if !reflect.DeepEqual(got, s) {
					t.Errorf("Decode as %s = %+v, want %+v", kr.Local(), got, s)
				}
			}
		})
	}
}

func TestDecodeCopiesInput(t *testing.T) {
	krA := testKeyring(t, "a", testKey("a"), "b")
	krB := testKeyring(t, "b", testKey("b"), "a")
	msg, err := Encode(sampleState("a", 1), krA)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(msg, krB)
	if err != nil {
		t.Fatal(err)
	}
	for i := range msg { // memberlist reuses its receive buffers
		msg[i] = 0
	}
	if want := sampleState("a", 1); !reflect.DeepEqual(got, want) {
		t.Errorf("state changed with the input buffer: %+v", got)
	}
}

// TestDecodeRejects has one or more cases per drop reason. Messages are
// decoded as cluster b, whose peers are a and c.
func TestDecodeRejects(t *testing.T) {
	krA := testKeyring(t, "a", testKey("a"), "b", "c")
	krB := testKeyring(t, "b", testKey("b"), "a", "c")
	valid, err := Encode(sampleState("a", 7), krA)
	if err != nil {
		t.Fatal(err)
	}
	// seal wraps the body r in a message from a, making it one that fails
	// only for the reason under test.
	seal := func(r *raw) []byte { return sealFor(t, kindState, r.b, krA) }
	// withCount rewrites valid's recipient count.
	withCount := func(n int) []byte {
		c := bytes.Clone(valid)
		c[envelopeFixed+1+1+8+8+4] = byte(n)
		return c
	}
	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 1
		return c
	}
	many := func(n int, f func(*raw)) *raw {
		r := newRaw().head().u16(n)
		for range n {
			f(r)
		}
		return r
	}
	forgedByC, err := Encode(sampleState("a", 8), testKeyring(t, "a", testKey("c"), "b"))
	if err != nil {
		t.Fatal(err)
	}
	notForB, err := Encode(sampleState("a", 8), testKeyring(t, "a", testKey("a"), "c"))
	if err != nil {
		t.Fatal(err)
	}
	fromD, err := Encode(sampleState("d", 8), testKeyring(t, "d", testKey("d"), "b"))
	if err != nil {
		t.Fatal(err)
	}
	fromB, err := Encode(sampleState("b", 8), testKeyring(t, "b", testKey("b"), "a"))
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		msg  []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"bad magic", append([]byte("WSPX"), valid[4:]...), ErrMalformed},
		{"magic only", []byte(envelopeMagic), ErrMalformed},
		{"header only", []byte(envelopeMagic + "\x02\x02"), ErrMalformed},
		{"unknown kind", append([]byte(envelopeMagic+"\x02\x09"), valid[envelopeFixed:]...), ErrMalformed},
		{"truncated", valid[:len(valid)-1], ErrMalformed},
		{"trailing byte", append(bytes.Clone(valid), 0), ErrMalformed},
		{"recipients truncated", valid[:envelopeFixed+1+1+8+8+4+1+1+1+8], ErrMalformed},
		{"empty cluster", seal(newRaw().str8("").u64(1).str8("gw").noCIDRsNoExports()), ErrMalformed},
		{"uppercase cluster", seal(newRaw().str8("A").u64(1).str8("gw").noCIDRsNoExports()), ErrMalformed},
		{"state of another cluster", seal(newRaw().str8("c").u64(1).str8("gw").noCIDRsNoExports()), ErrMalformed},
		{"bad gateway name", seal(newRaw().str8("a").u64(1).str8("gw_1").noCIDRsNoExports()), ErrMalformed},
		{"version 0", seal(newRaw().str8("a").u64(0).str8("gw").noCIDRsNoExports()), ErrMalformed},
		{"unmasked prefix", seal(newRaw().head().u16(1).v4("10.1.0.1", 16).u16(0).u16(0)), ErrMalformed},
		{"prefix bits 33", seal(newRaw().head().u16(1).v4("10.0.0.0", 33).u16(0).u16(0)), ErrMalformed},
		{"IPv4-mapped prefix", seal(newRaw().head().u16(0).u16(1).u8(6).bytes(netip.MustParseAddr("::ffff:10.0.0.0").AsSlice()).u8(104).u16(0)), ErrMalformed},
		{"address family 5", seal(newRaw().head().u16(1).u8(5).bytes([]byte{10, 0, 0, 0}).u8(8).u16(0).u16(0)), ErrMalformed},
		{"exports not JSON", seal(newRaw().head().u16(0).u16(0).u16(3).bytes([]byte("{x}"))), ErrMalformed},
		{"exports truncated", seal(newRaw().head().u16(0).u16(0).u16(10).bytes([]byte("{}"))), ErrMalformed},
		{"trailing byte in the body", seal(newRaw().head().noCIDRsNoExports().u8(0)), ErrMalformed},

		{"state message over its limit", append(bytes.Clone(valid), make([]byte, MaxMessageSize+envelopeOverhead)...), ErrTooLarge},
		{"257 pod CIDRs", seal(many(MaxCIDRs+1, func(r *raw) { r.v4("10.0.0.0", 8) }).u16(0).u16(0)), ErrTooLarge},
		{"exports over 32 KiB", seal(newRaw().head().u16(0).u16(0).u16(MaxExportsSize + 1).bytes(bytes.Repeat([]byte(" "), MaxExportsSize+1))), ErrTooLarge},
		{"65 recipients", withCount(MaxPeers + 1), ErrTooLarge},

		{"format version 1", append([]byte(envelopeMagic+"\x01"), valid[5:]...), ErrUnknownVersion},
		{"format version 3", append([]byte(envelopeMagic+"\x03"), valid[5:]...), ErrUnknownVersion},

		{"sender not a peer", fromD, ErrUnknownSender},
		{"sender is ourselves", fromB, ErrUnknownSender},

		{"no MAC for us", notForB, ErrNoMAC},

		{"forged by c, claiming a", forgedByC, ErrBadMAC},
		{"body changed", flip(valid, len(valid)-1), ErrBadMAC},
		{"header changed", flip(valid, envelopeFixed+1+1+8+7), ErrBadMAC}, // last byte of the sequence
		{"echo changed", flip(valid, envelopeFixed+1+1+8+8+4+1+1+1+7), ErrBadMAC},
		{"MAC changed", flip(valid, envelopeFixed+1+1+8+8+4+1+1+1+8), ErrBadMAC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.msg, krB)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode error = %v, want %v", err, tc.want)
			}
			for _, other := range []error{ErrMalformed, ErrTooLarge, ErrUnknownVersion, ErrUnknownSender, ErrNoMAC, ErrBadMAC} {
				if !errors.Is(other, tc.want) && errors.Is(err, other) {
					t.Errorf("error %v also wraps %v", err, other)
				}
			}
		})
	}
}

// TestForgeryByAnotherPeer: cluster c holds a real key and is one of b's
// peers, yet cannot make b accept a state in a's name.
func TestForgeryByAnotherPeer(t *testing.T) {
	krB := testKeyring(t, "b", testKey("b"), "a", "c")
	// c builds a keyring that claims to be a, with c's own private key and
	// b's real public key: the best c can do.
	forger := testKeyring(t, "a", testKey("c"), "b")
	forged, err := Encode(sampleState("a", 99), forger)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(forged, krB); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("forged message: error %v, want ErrBadMAC", err)
	}
	// The same c speaking for itself is accepted.
	honest, err := Encode(sampleState("c", 99), testKeyring(t, "c", testKey("c"), "b"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(honest, krB); err != nil {
		t.Fatalf("c's own message: %v", err)
	}
}

func TestEncodeRejects(t *testing.T) {
	krA := testKeyring(t, "a", testKey("a"), "b")
	tooMany := make([]netip.Prefix, MaxCIDRs+1)
	for i := range tooMany {
		tooMany[i] = netip.MustParsePrefix("10.0.0.0/8")
	}
	for _, tc := range []struct {
		name   string
		mutate func(*ClusterState)
		want   error
	}{
		{"other cluster", func(s *ClusterState) { s.Cluster = "b" }, nil},
		{"version 0", func(s *ClusterState) { s.Version = 0 }, ErrMalformed},
		{"no gateway", func(s *ClusterState) { s.ActiveGateway = "" }, ErrMalformed},
		{"unmasked", func(s *ClusterState) { s.PodCIDRs = []netip.Prefix{netip.MustParsePrefix("10.0.0.1/8")} }, ErrMalformed},
		{"zero prefix", func(s *ClusterState) { s.ServiceCIDRs = []netip.Prefix{{}} }, ErrMalformed},
		{"too many CIDRs", func(s *ClusterState) { s.ServiceCIDRs = tooMany }, ErrTooLarge},
		{"exports too large", func(s *ClusterState) { s.Exports = bytes.Repeat([]byte(" "), MaxExportsSize+1) }, ErrTooLarge},
		{"exports not JSON", func(s *ClusterState) { s.Exports = []byte("{") }, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := sampleState("a", 1)
			tc.mutate(&s)
			_, err := Encode(s, krA)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("Encode error = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestMaxMessageFits: a state at every limit, for MaxPeers recipients with
// the longest IDs, encodes within MaxMessageSize.
func TestMaxMessageFits(t *testing.T) {
	var peers []string
	for i := range MaxPeers {
		peers = append(peers, strings.Repeat("x", 60)+string(rune('a'+i/26))+string(rune('a'+i%26))+"z")
	}
	kr := testKeyring(t, strings.Repeat("l", 63), testKey("l"), peers...)
	v6 := make([]netip.Prefix, MaxCIDRs)
	for i := range v6 {
		v6[i] = netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, byte(i)}), 16)
	}
	s := ClusterState{
		Cluster: kr.Local(), Version: 1, ActiveGateway: strings.Repeat("n", 253),
		PodCIDRs: v6, ServiceCIDRs: v6,
		Exports: append(append([]byte(`"`), bytes.Repeat([]byte("e"), MaxExportsSize-2)...), '"'),
	}
	msg, err := Encode(s, kr)
	if err != nil {
		t.Fatalf("Encode at the limits: %v", err)
	}
	t.Logf("largest message: %d bytes", len(msg))
	krPeer := testKeyring(t, peers[MaxPeers-1], testKey(peers[MaxPeers-1]))
	krPeer.keys[s.Cluster], _ = pairKey(testKey(peers[MaxPeers-1]), testKey("l").PublicKey(), peers[MaxPeers-1], s.Cluster)
	if got, err := Decode(msg, krPeer); err != nil || !reflect.DeepEqual(got, s) {
		t.Fatalf("Decode at the limits: %v", err)
	}
}

func TestKeyring(t *testing.T) {
	ab, err := pairKey(testKey("a"), testKey("b").PublicKey(), "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	ba, err := pairKey(testKey("b"), testKey("a").PublicKey(), "b", "a")
	if err != nil {
		t.Fatal(err)
	}
	if ab != ba {
		t.Error("pair key is not symmetric")
	}
	// Same key pairs, other cluster IDs: another key (IDs are bound in).
	if ax, _ := pairKey(testKey("a"), testKey("b").PublicKey(), "a", "x"); ax == ab {
		t.Error("pair key does not depend on the cluster IDs")
	}

	kr, err := NewKeyring("a", testKey("a"), map[string]wgtypes.Key{
		"a":       testKey("a").PublicKey(), // ourselves: skipped silently
		"b":       testKey("b").PublicKey(),
		"zero":    {},                       // low-order point
		"Invalid": testKey("c").PublicKey(), // not an RFC 1123 label
	})
	if err == nil || !strings.Contains(err.Error(), "zero") || !strings.Contains(err.Error(), "Invalid") {
		t.Errorf("NewKeyring error = %v, want both bad peers reported", err)
	}
	if !kr.Has("b") || kr.Has("a") || kr.Has("zero") || kr.Has("Invalid") || len(kr.keys) != 1 {
		t.Errorf("keyring holds %v, want only b", sortedKeys(kr.keys))
	}
}

func TestResultOf(t *testing.T) {
	for err, want := range map[error]string{
		nil:                                resultAccepted,
		fmt.Errorf("x: %w", ErrDuplicate):  resultDuplicate,
		fmt.Errorf("x: %w", ErrStale):      resultStale,
		fmt.Errorf("x: %w", ErrMalformed):  resultMalformed,
		fmt.Errorf("x: %w", ErrTooLarge):   resultTooLarge,
		ErrUnknownVersion:                  resultUnknownVersion,
		ErrUnknownSender:                   resultUnknownSender,
		ErrNoMAC:                           resultNoMAC,
		fmt.Errorf("x: %w", ErrBadMAC):     resultBadMAC,
		errors.New("something unforeseen"): resultMalformed,
	} {
		if got := resultOf(err); got != want {
			t.Errorf("resultOf(%v) = %q, want %q", err, got, want)
		}
	}
}
