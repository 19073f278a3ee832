package gossip

import (
	"crypto/sha256"
	"encoding/binary"
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

// raw writes the wire format field by field with no validation at all, so
// that tests can build every kind of broken message. It mirrors the format
// description in codec.go independently of the encoder.
type raw struct{ b []byte }

func newRaw() *raw                 { return &raw{b: []byte(magic + "\x01")} }
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
