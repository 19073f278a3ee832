package corefile

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestDocumentedRBACSuffices runs the controller as a user that has only
// the Role docs/coredns.md gives: get, list, watch and update on the one
// ConfigMap, by name. The cache's list and watch carry a metadata.name
// field selector, which is what lets resourceNames authorize them.
func TestDocumentedRBACSuffices(t *testing.T) {
	ctx := context.Background()
	key := createConfigMap(t, "coredns-rbac", map[string]string{Key: kubeadm})
	const user = "wirespan-operator-rbac-test"
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: "wirespan-operator-coredns"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{key.Name},
			Verbs: []string{"get", "list", "watch", "update"},
		}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: "wirespan-operator-coredns"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}
	for _, o := range []client.Object{role, binding} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, o) })
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}

	// The Role is all this user has: another ConfigMap is forbidden.
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: "other"}, &corev1.ConfigMap{}); !apierrors.IsForbidden(err) {
		t.Fatalf("reading another ConfigMap as the test user: %v; want forbidden", err)
	}

	stop := runControllerAs(t, cfg, key, gw1)
	corefileIs(t, key, "block added with the documented Role", ensured(t, gw1))
	stop()
	runControllerAs(t, cfg, key)
	corefileIs(t, key, "block removed with the documented Role", kubeadm)
}
