package clusterkey

import (
	"errors"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestNewSecretRoundTrip(t *testing.T) {
	s, err := NewSecret(types.NamespacedName{Namespace: "wirespan-system", Name: "wirespan-key"})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := PublicKey(s)
	if err != nil {
		t.Fatalf("PublicKey of a generated Secret: %v", err)
	}
	if got := string(s.Data["publicKey"]); got != pub {
		t.Fatalf("Secret publicKey %q, derived %q", got, pub)
	}
	other, _ := NewSecret(types.NamespacedName{Namespace: "x", Name: "y"})
	if string(other.Data["privateKey"]) == string(s.Data["privateKey"]) {
		t.Fatal("two generated Secrets share a private key")
	}
}

func TestPublicKey(t *testing.T) {
	priv, _ := wgtypes.GeneratePrivateKey()
	want := priv.PublicKey().String()
	tests := []struct {
		name    string
		data    map[string][]byte
		want    string
		wantErr string
	}{
		{"plain", map[string][]byte{"privateKey": []byte(priv.String())}, want, ""},
		{"trailing newline from wg genkey", map[string][]byte{"privateKey": []byte(priv.String() + "\n")}, want, ""},
		{"stale publicKey entry ignored", map[string][]byte{"privateKey": []byte(priv.String()), "publicKey": []byte("bogus")}, want, ""},
		{"missing", map[string][]byte{"publicKey": []byte(want)}, "", "no privateKey entry"},
		{"empty", map[string][]byte{"privateKey": nil}, "", "no privateKey entry"},
		{"not base64", map[string][]byte{"privateKey": []byte("not a key at all!")}, "", "is not a WireGuard key"},
		{"short", map[string][]byte{"privateKey": []byte("AAAA")}, "", "is not a WireGuard key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PublicKey(&corev1.Secret{Data: tt.data})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), priv.String()) {
					t.Fatal("error message leaks the private key")
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("PublicKey = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if !errors.Is(func() error { _, err := PublicKey(&corev1.Secret{}); return err }(), ErrNoPrivateKey) {
		t.Fatal("missing key is not ErrNoPrivateKey")
	}
}

// PrivateKey is the one parser the operator and the gateways share.
func TestPrivateKeyTrims(t *testing.T) {
	priv, _ := wgtypes.GeneratePrivateKey()
	for _, raw := range []string{priv.String(), priv.String() + "\n", " \t" + priv.String() + "\r\n"} {
		got, err := PrivateKey(&corev1.Secret{Data: map[string][]byte{"privateKey": []byte(raw)}})
		if err != nil || got != priv {
			t.Errorf("%q: %v, %v", raw, got, err)
		}
	}
	if _, err := PrivateKey(&corev1.Secret{}); !errors.Is(err, ErrNoPrivateKey) {
		t.Errorf("no entry: %v", err)
	}
}
