package clusterpeer

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/internal/clusterkey"
	"github.com/wirespan/wirespan/operator/internal/peerstatus"
)

// workItem is the one key every event is mapped to.
var workItem = reconcile.Request{NamespacedName: types.NamespacedName{Name: "clusterset"}}

// Reconciler keeps ClusterPeer status true. Set the exported fields before
// SetupWithManager.
type Reconciler struct {
	Client client.Client
	// ClusterID names the self ClusterPeer.
	ClusterID string
	// KeySecret is the Secret with the cluster's WireGuard key pair; it is
	// created with a fresh key pair if missing.
	KeySecret types.NamespacedName
	// PodCIDRs and ServiceCIDRs, when set, replace discovery of that kind of
	// range (for CNIs that leave Node.spec.podCIDRs empty).
	PodCIDRs     []netip.Prefix
	ServiceCIDRs []netip.Prefix
	// Version is this operator's version, published in the self
	// ClusterPeer's status.operatorVersion.
	Version string
	// Now defaults to time.Now.
	Now func() time.Time

	// selfMissing remembers that the missing self peer was logged, so it is
	// logged once per disappearance rather than on every pass.
	selfMissing atomic.Bool
}

// SetupWithManager registers the controller and its watches.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{workItem}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("clusterpeer").
		Watches(&wirespanv1alpha1.ClusterPeer{}, all).
		Watches(&corev1.Node{}, all, builder.WithPredicates(podCIDRsChanged())).
		Watches(&networkingv1.ServiceCIDR{}, all).
		Watches(&corev1.Secret{}, all, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetNamespace() == r.KeySecret.Namespace && o.GetName() == r.KeySecret.Name
		}))).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Complete(r)
}

// podCIDRsChanged passes Node creations and deletions, and updates only when
// spec.podCIDRs changed: Nodes are updated often for reasons that do not
// matter here.
func podCIDRsChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, okOld := e.ObjectOld.(*corev1.Node)
		n, okNew := e.ObjectNew.(*corev1.Node)
		return !okOld || !okNew || !equality.Semantic.DeepEqual(o.Spec.PodCIDRs, n.Spec.PodCIDRs)
	}}
}

// Reconcile recomputes every ClusterPeer's status and writes those that
// changed.
func (r *Reconciler) Reconcile(ctx context.Context, _ reconcile.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	var peers wirespanv1alpha1.ClusterPeerList
	if err := r.Client.List(ctx, &peers); err != nil {
		return ctrl.Result{}, fmt.Errorf("list ClusterPeers: %w", err)
	}
	discovery, err := r.discover(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	key, keyErr := r.clusterKey(ctx)
	r.noteSelf(ctx, peers.Items, key.PublicKey)

	res := peerstatus.Compute(peerstatus.Inputs{
		ClusterID: r.ClusterID,
		Peers:     peers.Items,
		Discovery: discovery,
		Key:       key,
		Now:       metav1.NewTime(r.Now().Truncate(time.Second)),

		OperatorVersion: r.Version,
	})
	cidrOverlaps.Set(float64(res.Overlaps))
	setRefused(res.Refused)

	var errs []error
	for i := range peers.Items {
		p := &peers.Items[i]
		want := res.Statuses[p.Name]
		if equality.Semantic.DeepEqual(p.Status, want) {
			continue
		}
		p.Status = want
		err := r.Client.Status().Update(ctx, p)
		switch {
		case apierrors.IsConflict(err), apierrors.IsNotFound(err):
			// The peer changed or went away since the cache saw it; that
			// change is an event of its own and brings us back here.
			logger.V(1).Info("ClusterPeer changed under us; will recompute", "clusterPeer", p.Name)
		case err != nil:
			errs = append(errs, fmt.Errorf("update status of ClusterPeer %s: %w", p.Name, err))
		default:
			statusUpdates.Inc()
			logger.V(1).Info("updated ClusterPeer status", "clusterPeer", p.Name)
		}
	}
	return ctrl.Result{}, errors.Join(append(errs, keyErr)...)
}

// clusterKey reads the cluster key Secret, creating it with a fresh key pair
// when it does not exist. A Secret that exists but is invalid is reported,
// never overwritten: it may be the user's own key, put in by mistake.
func (r *Reconciler) clusterKey(ctx context.Context) (peerstatus.Key, error) {
	key := peerstatus.Key{SecretName: r.KeySecret.String()}
	var secret corev1.Secret
	err := r.Client.Get(ctx, r.KeySecret, &secret)
	switch {
	case apierrors.IsNotFound(err):
		return r.createKey(ctx, key)
	case err != nil:
		key.Reason, key.Message = wirespanv1alpha1.ReasonKeySecretPending, fmt.Sprintf("cannot read Secret %s: %v", key.SecretName, err)
		return key, fmt.Errorf("read cluster key Secret %s: %w", key.SecretName, err)
	}
	pub, err := clusterkey.PublicKey(&secret)
	if err != nil {
		key.Reason = wirespanv1alpha1.ReasonKeySecretInvalid
		key.Message = fmt.Sprintf("Secret %s: %v; Wirespan never overwrites a Secret it did not create: fix its privateKey or delete it to have a new key generated", key.SecretName, err)
		return key, nil
	}
	key.PublicKey = pub
	return key, nil
}

func (r *Reconciler) createKey(ctx context.Context, key peerstatus.Key) (peerstatus.Key, error) {
	secret, err := clusterkey.NewSecret(r.KeySecret)
	if err != nil {
		return key, err
	}
	err = r.Client.Create(ctx, secret)
	switch {
	case apierrors.IsAlreadyExists(err):
		// Created by someone else since the cache looked; its event follows.
		key.Reason, key.Message = wirespanv1alpha1.ReasonKeySecretPending, "waiting to read Secret "+key.SecretName
		return key, nil
	case err != nil:
		key.Reason, key.Message = wirespanv1alpha1.ReasonKeySecretPending, fmt.Sprintf("cannot create Secret %s: %v", key.SecretName, err)
		return key, fmt.Errorf("create cluster key Secret %s: %w", key.SecretName, err)
	}
	pub, _ := clusterkey.PublicKey(secret)
	log.FromContext(ctx).Info("created cluster key Secret with a new WireGuard key pair", "secret", key.SecretName, "publicKey", pub)
	key.PublicKey = pub
	return key, nil
}

// noteSelf reports whether the self ClusterPeer exists: once in the log, with
// the manifest to apply, and continuously in a metric.
func (r *Reconciler) noteSelf(ctx context.Context, peers []wirespanv1alpha1.ClusterPeer, publicKey string) {
	for i := range peers {
		if peers[i].Name == r.ClusterID {
			selfPresent.Set(1)
			r.selfMissing.Store(false)
			return
		}
	}
	selfPresent.Set(0)
	if r.selfMissing.Swap(true) {
		return
	}
	log.FromContext(ctx).Info("no ClusterPeer describes this cluster yet; add it to Git and apply it. Until then nothing is published.",
		"clusterPeer", r.ClusterID, "manifest", selfManifest(r.ClusterID, publicKey))
}

// selfManifest is the minimal self ClusterPeer a user applies, for messages.
func selfManifest(clusterID, publicKey string) string {
	if publicKey == "" {
		publicKey = "<public key: see the operator's log once the key Secret exists>"
	}
	return fmt.Sprintf("apiVersion: wirespan.io/v1alpha1\nkind: ClusterPeer\nmetadata:\n  name: %s\nspec:\n  publicKey: %s\n  endpoints: [\"<gateway address>:51820\"]\n",
		clusterID, publicKey)
}
