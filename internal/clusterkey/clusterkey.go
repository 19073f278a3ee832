// Package clusterkey handles the cluster's WireGuard key pair, kept in a
// Secret and shared by all of the cluster's gateways: generating it (the
// operator), reading it back (the operator and the gateways, with one
// parser), and deriving the public key. The private key never leaves the
// Secret: nothing here logs it or returns it except to build the Secret.
package clusterkey

import (
	"bytes"
	"errors"
	"fmt"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
)

// ErrNoPrivateKey means the Secret has no privateKey entry.
var ErrNoPrivateKey = errors.New("no " + wirespanv1alpha1.KeySecretPrivateKey + " entry")

// NewSecret generates a fresh key pair and returns the Secret that holds it.
func NewSecret(name types.NamespacedName) (*corev1.Secret, error) {
	priv, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		return nil, fmt.Errorf("generate WireGuard key: %w", err)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: name.Namespace,
			Name:      name.Name,
			Labels:    map[string]string{wirespanv1alpha1.LabelManagedBy: wirespanv1alpha1.ManagedByValue},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			wirespanv1alpha1.KeySecretPrivateKey: []byte(priv.String()),
			wirespanv1alpha1.KeySecretPublicKey:  []byte(priv.PublicKey().String()),
		},
	}, nil
}

// PublicKey derives the public key from the Secret's private key. A
// publicKey entry in the Secret is ignored: the private key is the truth.
func PublicKey(secret *corev1.Secret) (string, error) {
	priv, err := PrivateKey(secret)
	if err != nil {
		return "", err
	}
	return priv.PublicKey().String(), nil
}

// PrivateKey parses the Secret's private key. The operator (to publish the
// public key) and the gateways (to run the tunnel) both read the Secret
// through this one function, so a Secret one of them accepts is never one
// the other refuses.
func PrivateKey(secret *corev1.Secret) (wgtypes.Key, error) {
	raw, ok := secret.Data[wirespanv1alpha1.KeySecretPrivateKey]
	if !ok || len(raw) == 0 {
		return wgtypes.Key{}, ErrNoPrivateKey
	}
	// TrimSpace: `wg genkey > file` leaves a newline, and a Secret made with
	// `kubectl create secret --from-file` keeps it.
	priv, err := wgtypes.ParseKey(string(bytes.TrimSpace(raw)))
	if err != nil {
		// wgtypes' error quotes nothing of the key, so it is safe to show.
		return wgtypes.Key{}, fmt.Errorf("%s is not a WireGuard key (want 32 bytes, base64, as from `wg genkey`): %w",
			wirespanv1alpha1.KeySecretPrivateKey, err)
	}
	return priv, nil
}
