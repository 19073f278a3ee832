// Package app assembles the operator: it resolves the cluster ID, builds the
// controller-runtime manager (caches, leader election, probes, metrics) and
// runs the controllers (ClusterPeer status; the CoreDNS Corefile, unless
// --coredns-configmap is empty) until the context ends.
package app

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/internal/version"
	"github.com/wirespan/wirespan/operator/internal/clusterid"
	"github.com/wirespan/wirespan/operator/internal/controller/clusterpeer"
	"github.com/wirespan/wirespan/operator/internal/controller/corefile"
)

// Options configure the operator; main fills them from flags.
type Options struct {
	// ClusterID is the --cluster-id flag; the ClusterProperty
	// cluster.clusterset.k8s.io, if present, must agree with it.
	ClusterID string
	// PodCIDRs and ServiceCIDRs override discovery when set.
	PodCIDRs     []netip.Prefix
	ServiceCIDRs []netip.Prefix
	// KeySecret is the cluster key Secret.
	KeySecret types.NamespacedName
	// MetricsAddr and ProbeAddr are listen addresses; "0" disables.
	MetricsAddr string
	ProbeAddr   string
	// LeaderElection makes only one replica act at a time, in
	// LeaderElectionNamespace (default: the key Secret's namespace).
	LeaderElection          bool
	LeaderElectionNamespace string
	// CoreDNSConfigMap is the CoreDNS ConfigMap whose Corefile gets the
	// clusterset zone's forwarding block (--coredns-configmap). Zero: the
	// operator never reads or writes cluster DNS configuration.
	CoreDNSConfigMap types.NamespacedName
	// CoreDNSForward are the upstreams the block forwards ClustersetZone
	// to (--coredns-forward). Empty: the block is removed if present.
	CoreDNSForward []netip.AddrPort
	// ClustersetZone is the zone forwarded (--clusterset-zone).
	ClustersetZone string
}

// LeaderElectionID names the operator's Lease.
const LeaderElectionID = "wirespan-operator"

// Scheme returns the scheme with every type the operator reads or writes.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, wirespanv1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Run runs the operator until ctx is done.
func Run(ctx context.Context, cfg *rest.Config, opts Options) error {
	logger := ctrl.Log.WithName("operator")
	scheme, err := Scheme()
	if err != nil {
		return err
	}
	id, err := resolveClusterID(ctx, cfg, scheme, opts.ClusterID)
	if err != nil {
		return err
	}
	if opts.LeaderElectionNamespace == "" {
		opts.LeaderElectionNamespace = opts.KeySecret.Namespace
	}
	logger.Info("starting", "clusterID", id, "keySecret", opts.KeySecret.String(),
		"podCIDRsOverride", opts.PodCIDRs, "serviceCIDRsOverride", opts.ServiceCIDRs, "leaderElection", opts.LeaderElection,
		"coreDNSConfigMap", opts.CoreDNSConfigMap.String(), "coreDNSForward", opts.CoreDNSForward)

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress:  opts.ProbeAddr,
		LeaderElection:          opts.LeaderElection,
		LeaderElectionID:        LeaderElectionID,
		LeaderElectionNamespace: opts.LeaderElectionNamespace,
		// Stepping down cleanly on shutdown lets a standby take over at once
		// instead of waiting out the lease.
		LeaderElectionReleaseOnCancel: true,
		Cache:                         cacheOptions(opts.KeySecret, opts.CoreDNSConfigMap),
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	r := &clusterpeer.Reconciler{
		Client:       mgr.GetClient(),
		ClusterID:    id,
		KeySecret:    opts.KeySecret,
		PodCIDRs:     opts.PodCIDRs,
		ServiceCIDRs: opts.ServiceCIDRs,
		Version:      version.Get(),
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up ClusterPeer controller: %w", err)
	}
	if opts.CoreDNSConfigMap.Name != "" {
		c := &corefile.Reconciler{
			Client:    mgr.GetClient(),
			ConfigMap: opts.CoreDNSConfigMap,
			Zone:      opts.ClustersetZone,
			Upstreams: opts.CoreDNSForward,
		}
		if err := c.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("set up Corefile controller: %w", err)
		}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("self-clusterpeer", selfPeerCheck(mgr.GetCache(), id)); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// resolveClusterID reads the ClusterProperty with a direct, uncached read:
// the manager's caches are not running yet.
func resolveClusterID(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, flag string) (string, error) {
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return "", fmt.Errorf("create client: %w", err)
	}
	value, found, err := clusterid.Lookup(ctx, c)
	if err != nil {
		return "", err
	}
	return clusterid.Resolve(flag, value, found)
}

// cacheOptions keeps the caches small: only the one key Secret (the operator
// needs no other Secret and should not hold them in memory), only the CoreDNS
// ConfigMap when there is one, and Nodes cut down to the fields discovery
// reads.
func cacheOptions(keySecret, coreDNSConfigMap types.NamespacedName) cache.Options {
	opts := cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}: {
			Namespaces: map[string]cache.Config{keySecret.Namespace: {}},
			Field:      fields.OneTermEqualSelector("metadata.name", keySecret.Name),
		},
		&corev1.Node{}:              {Transform: trimNode},
		&networkingv1.ServiceCIDR{}: {},
	}}
	if coreDNSConfigMap.Name != "" {
		opts.ByObject[&corev1.ConfigMap{}] = corefile.CacheByObject(coreDNSConfigMap)
	}
	return opts
}

// trimNode drops everything discovery does not read: Node status (images,
// conditions) is most of a Node's size and changes often.
func trimNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion, Labels: n.Labels},
		Spec:       corev1.NodeSpec{PodCIDRs: n.Spec.PodCIDRs, PodCIDR: n.Spec.PodCIDR},
	}, nil
}

// selfPeerCheck fails readiness while the self ClusterPeer is missing, so
// `kubectl get pods` shows that the installation needs its ClusterPeer.
func selfPeerCheck(c cache.Cache, id string) healthz.Checker {
	return func(req *http.Request) error {
		var p wirespanv1alpha1.ClusterPeer
		if err := c.Get(req.Context(), client.ObjectKey{Name: id}, &p); err != nil {
			return fmt.Errorf("self ClusterPeer %q: %w (apply it from Git)", id, err)
		}
		return nil
	}
}
