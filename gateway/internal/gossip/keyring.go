package gossip

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/hkdf"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// MACSize is the size of one per-recipient MAC (HMAC-SHA256).
const MACSize = sha256.Size

// kdfInfo starts the HKDF info string; the two cluster IDs follow, in order,
// each after a NUL (which an RFC 1123 label cannot contain), so that the
// derived key is bound to the pair and to this protocol version.
const kdfInfo = "wirespan gossip v1"

// Keyring holds the MAC keys that the local cluster shares with each known
// remote cluster. It is immutable once built; Gossip swaps in a new one when
// the peers change.
type Keyring struct {
	local string
	keys  map[string][MACSize]byte
}

// NewKeyring derives the pairwise MAC keys of cluster local, whose WireGuard
// private key is priv, with every cluster in peers (cluster ID → public key).
// An entry for local itself is skipped. Peers that cannot be used (invalid
// ID, low-order public key) are left out and reported in the returned error;
// the keyring holds the others and is never nil.
func NewKeyring(local string, priv wgtypes.Key, peers map[string]wgtypes.Key) (*Keyring, error) {
	kr := &Keyring{local: local, keys: make(map[string][MACSize]byte, len(peers))}
	var errs []error
	for _, id := range sortedKeys(peers) {
		if id == local {
			continue
		}
		if err := validateCluster(id); err != nil {
			errs = append(errs, fmt.Errorf("peer: %w", err))
			continue
		}
		k, err := pairKey(priv, peers[id], local, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("peer %s: %w", id, err))
			continue
		}
		kr.keys[id] = k
	}
	if len(kr.keys) > MaxPeers {
		return kr, fmt.Errorf("%d peers, limit %d: messages cannot be encoded", len(kr.keys), MaxPeers)
	}
	return kr, errors.Join(errs...)
}

// Local returns the cluster the keyring speaks for.
func (kr *Keyring) Local() string { return kr.local }

// Has reports whether cluster is a known peer.
func (kr *Keyring) Has(cluster string) bool {
	_, ok := kr.keys[cluster]
	return ok
}

// pairKey derives the key that clusters a and b share:
// HKDF-SHA256(X25519(privA, pubB), info = kdfInfo ‖ 0 ‖ min(a,b) ‖ 0 ‖ max(a,b)).
// X25519 is symmetric, so b computes the same key from privB and pubA.
func pairKey(priv, peerPub wgtypes.Key, a, b string) ([MACSize]byte, error) {
	var key [MACSize]byte
	shared, err := curve25519.X25519(priv[:], peerPub[:])
	if err != nil { // low-order point: the shared secret would be all zeros
		return key, fmt.Errorf("X25519: %w", err)
	}
	if b < a {
		a, b = b, a
	}
	info := kdfInfo + "\x00" + a + "\x00" + b
	if _, err := io.ReadFull(hkdf.New(sha256.New, shared, nil, []byte(info)), key[:]); err != nil {
		return key, fmt.Errorf("HKDF: %w", err)
	}
	return key, nil
}
