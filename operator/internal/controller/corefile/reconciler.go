package corefile

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/wirespan/wirespan/operator/internal/coredns"
)

// Key is the ConfigMap key CoreDNS reads its configuration from.
const Key = "Corefile"

// Reconciler keeps Wirespan's block in one ConfigMap's Corefile. Set the
// exported fields before SetupWithManager.
type Reconciler struct {
	Client client.Client
	// ConfigMap is the CoreDNS ConfigMap (--coredns-configmap).
	ConfigMap types.NamespacedName
	// Zone is the zone forwarded (--clusterset-zone).
	Zone string
	// Upstreams are the addresses forwarded to, in order (--coredns-forward).
	// Empty: the block is removed.
	Upstreams []netip.AddrPort

	// missing remembers that the absent ConfigMap was logged, so that it
	// is logged once per absence.
	missing atomic.Bool
}

// CacheByObject restricts a manager's ConfigMap cache to the one ConfigMap:
// the operator reads no other, and kube-system has many.
func CacheByObject(cm types.NamespacedName) cache.ByObject {
	return cache.ByObject{
		Namespaces: map[string]cache.Config{cm.Namespace: {}},
		Field:      fields.OneTermEqualSelector("metadata.name", cm.Name),
	}
}

// SetupWithManager registers the controller. The manager's cache should
// hold the ConfigMap through CacheByObject.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	req := reconcile.Request{NamespacedName: r.ConfigMap}
	return ctrl.NewControllerManagedBy(mgr).
		Named("corefile").
		For(&corev1.ConfigMap{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetNamespace() == r.ConfigMap.Namespace && o.GetName() == r.ConfigMap.Name
		}))).
		// One pass at start, so a missing ConfigMap is reported even though
		// no event will ever come for it.
		WatchesRawSource(source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			q.Add(req)
			return nil
		})).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Complete(r)
}

// Reconcile brings the Corefile to what the flags say. Problems that only a
// person can fix are logged and not retried: the next change to the
// ConfigMap brings the controller back.
func (r *Reconciler) Reconcile(ctx context.Context, _ reconcile.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx).WithValues("configMap", r.ConfigMap.String())
	var cm corev1.ConfigMap
	if err := r.Client.Get(ctx, r.ConfigMap, &cm); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("get ConfigMap %s: %w", r.ConfigMap, err)
		}
		if !r.missing.Swap(true) {
			logger.Info("CoreDNS ConfigMap not found; leaving cluster DNS alone until it appears (see --coredns-configmap)")
		}
		return ctrl.Result{}, nil
	}
	r.missing.Store(false)
	old, ok := cm.Data[Key]
	if !ok {
		logger.Info("ConfigMap has no " + Key + " key; leaving it alone (is --coredns-configmap CoreDNS's?)")
		return ctrl.Result{}, nil
	}

	var (
		corefile string
		changed  bool
		err      error
		what     string
	)
	if len(r.Upstreams) > 0 {
		corefile, changed, err = coredns.Ensure(old, r.Zone, r.Upstreams)
		what = "wrote the " + r.Zone + " forwarding block"
	} else {
		corefile, changed, err = coredns.Remove(old)
		what = "removed Wirespan's forwarding block"
	}
	if err != nil {
		logger.Error(err, "not changing the Corefile")
		return ctrl.Result{}, nil
	}
	if !changed {
		return ctrl.Result{}, nil
	}
	cm.Data[Key] = corefile
	err = r.Client.Update(ctx, &cm)
	switch {
	case apierrors.IsConflict(err), apierrors.IsNotFound(err):
		// Someone changed or deleted it since the cache saw it; that is
		// an event of its own and brings us back with the new text.
		logger.V(1).Info("ConfigMap changed under us; will look again")
		return ctrl.Result{}, nil
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("update ConfigMap %s: %w", r.ConfigMap, err)
	}
	logger.Info(what+" in the Corefile; CoreDNS's reload plugin picks it up", "upstreams", r.Upstreams)
	return ctrl.Result{}, nil
}
