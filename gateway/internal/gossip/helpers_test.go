package gossip

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// testKey returns a fixed private key for name, so that fuzz seeds and
// failures are reproducible.
func testKey(name string) wgtypes.Key {
	return wgtypes.Key(sha256.Sum256([]byte("wirespan gossip test key " + name)))
}

// testKeyring returns local's keyring with the given peers.
func testKeyring(t testing.TB, local string, priv wgtypes.Key, peers ...string) *Keyring {
	t.Helper()
	pubs := map[string]wgtypes.Key{}
	for _, p := range peers {
		pubs[p] = testKey(p).PublicKey()
	}
	kr, err := NewKeyring(local, priv, pubs)
	if err != nil {
		t.Fatalf("NewKeyring(%s): %v", local, err)
	}
	return kr
}

func sampleState(cluster string, version uint64) ClusterState {
	return ClusterState{
		Cluster:       cluster,
		Version:       version,
		PodCIDRs:      []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00:1::/56")},
		ServiceCIDRs:  []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12")},
		ActiveGateway: "gw-" + cluster + ".example.com",
		Exports:       []byte(`{"services":[{"name":"web","ns":"shop"}]}`),
	}
}

// raw writes the body of a state message field by field with no validation
// at all, so that tests can build every kind of broken message. It mirrors
// the format description in codec.go independently of the encoder.
type raw struct{ b []byte }

func newRaw() *raw                 { return &raw{} }
func (r *raw) u8(v int) *raw       { r.b = append(r.b, byte(v)); return r }
func (r *raw) u16(v int) *raw      { r.b = binary.BigEndian.AppendUint16(r.b, uint16(v)); return r }
func (r *raw) u64(v uint64) *raw   { r.b = binary.BigEndian.AppendUint64(r.b, v); return r }
func (r *raw) bytes(v []byte) *raw { r.b = append(r.b, v...); return r }
func (r *raw) str8(s string) *raw  { return r.u8(len(s)).bytes([]byte(s)) }
func (r *raw) v4(a string, bits int) *raw {
	return r.u8(4).bytes(netip.MustParseAddr(a).AsSlice()).u8(bits)
}

// head writes a valid cluster, version and gateway.
func (r *raw) head() *raw { return r.str8("a").u64(1).str8("gw") }

// noCIDRsNoExports writes empty pod and service lists and no exports.
func (r *raw) noCIDRsNoExports() *raw { return r.u16(0).u16(0).u16(0) }

// Epochs of the test messages built outside a Gossip: the sender's, and the
// one they echo for every recipient.
const (
	testEpoch = 0x5eed
	testEcho  = 0xec40
)

// sealFor wraps body in an envelope of kind from kr's cluster, echoing
// testEcho to every recipient.
func sealFor(t testing.TB, k kind, body []byte, kr *Keyring) []byte {
	t.Helper()
	msg, err := sealMessage(header{kind: k, cluster: kr.local, epoch: testEpoch, seq: 1}, body, kr, func(string) uint64 { return testEcho })
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	return msg
}

// Encode returns s as a state message from kr's cluster.
func Encode(s ClusterState, kr *Keyring) ([]byte, error) {
	if s.Cluster != kr.local {
		return nil, fmt.Errorf("encode state of cluster %q with the keys of %q", s.Cluster, kr.local)
	}
	body, err := encodeState(s)
	if err != nil {
		return nil, err
	}
	return sealMessage(header{kind: kindState, cluster: kr.local, epoch: testEpoch, seq: 1}, body, kr, func(string) uint64 { return testEcho })
}

// open authenticates msg as kr's cluster would, without the session rules
// (freshness is session_test's).
func open(msg []byte, kr *Keyring) (envelope, error) {
	env, err := peek(msg, kr)
	if err == nil {
		err = env.verify(kr.local)
	}
	return env, err
}

// Decode authenticates and decodes a state message.
func Decode(msg []byte, kr *Keyring) (ClusterState, error) {
	env, err := open(msg, kr)
	if err != nil {
		return ClusterState{}, err
	}
	if env.kind != kindState {
		return ClusterState{}, fmt.Errorf("%w: a %s message", ErrMalformed, env.kind)
	}
	s, err := decodeState(env.body)
	if err == nil && s.Cluster != env.cluster {
		err = fmt.Errorf("%w: state of %q sent by %q", ErrMalformed, s.Cluster, env.cluster)
	}
	return s, err
}

// openExports authenticates and decodes an export message.
func openExports(msg []byte, kr *Keyring) (exportBatch, error) {
	env, err := open(msg, kr)
	if err != nil {
		return exportBatch{}, err
	}
	if env.kind != kindBatch && env.kind != kindSnapshot {
		return exportBatch{}, fmt.Errorf("%w: a %s message", ErrMalformed, env.kind)
	}
	return decodeExports(env.body, env.kind == kindSnapshot)
}

// sealExports encodes and seals a batch or a snapshot from kr's cluster.
func sealExports(t testing.TB, b exportBatch, kr *Keyring) []byte {
	t.Helper()
	body, err := encodeExports(b)
	if err != nil {
		t.Fatal(err)
	}
	k := kindBatch
	if b.Snapshot {
		k = kindSnapshot
	}
	return sealFor(t, k, body, kr)
}
