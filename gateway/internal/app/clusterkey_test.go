package app

import (
	"context"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
)

// The gateway reads the key Secret as the operator does: a key with a
// trailing newline (`wg genkey > key; kubectl create secret
// --from-file`) passed the operator and stopped the active gateway.
func TestClusterKeyTrimmedLikeTheOperator(t *testing.T) {
	ctx := context.Background()
	c := env.Client
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "cluster-key-"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(ctx, ns) })
	priv, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	for name, value := range map[string]string{
		"newline":  priv.String() + "\n",
		"spaces":   "  " + priv.String() + " \r\n",
		"garbage":  "not a key\n",
		"no-entry": "",
	} {
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: name}, Data: map[string][]byte{}}
		if value != "" {
			secret.Data[wirespanv1alpha1.KeySecretPrivateKey] = []byte(value)
		}
		if err := c.Create(ctx, secret); err != nil {
			t.Fatal(err)
		}
		key, err := readClusterKey(ctx, c, types.NamespacedName{Namespace: ns.Name, Name: name})
		switch name {
		case "newline", "spaces":
			if err != nil || *key != priv {
				t.Errorf("%s: key %v, err %v; want the key", name, key, err)
			}
		default:
			if err == nil || !strings.Contains(err.Error(), "cluster key Secret "+ns.Name+"/"+name) {
				t.Errorf("%s: err %v, want one naming the Secret", name, err)
			}
		}
	}
	if _, err := readClusterKey(ctx, c, types.NamespacedName{Namespace: ns.Name, Name: "missing"}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing Secret: %v", err)
	}
}
