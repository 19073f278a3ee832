package kube

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/model"
)

const defaultTimeout = 15 * time.Second

// Where Wirespan's objects are: the chart's defaults unless flags say
// otherwise.
type Where struct {
	// Namespace is the release namespace (pods, DNS Service).
	Namespace string
	// DNSService is the name of the chart's DNS Service.
	DNSService string
	// GatewayLease is the name of the Lease the gateways hold in turn (in
	// Namespace).
	GatewayLease string
	// CoreDNS is the CoreDNS ConfigMap.
	CoreDNS types.NamespacedName
}

// DefaultWhere is the chart installed as docs/helm.md says: release
// wirespan in wirespan-system.
func DefaultWhere() Where {
	return Where{Namespace: "wirespan-system", DNSService: "wirespan-dns", GatewayLease: "wirespan-gateway",
		CoreDNS: types.NamespacedName{Namespace: "kube-system", Name: "coredns"}}
}

func newScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, wirespanv1alpha1.AddToScheme, mcsv1beta1.Install} {
		if err := add(s); err != nil {
			return nil, fmt.Errorf("build scheme: %w", err)
		}
	}
	return s, nil
}

// ReadAll reads every target at once; a cluster that cannot be reached
// is returned with its errors, so the others are still shown.
func ReadAll(ctx context.Context, targets []Target, where Where) (model.Clusterset, error) {
	scheme, err := newScheme()
	if err != nil {
		return model.Clusterset{}, err
	}
	set := model.Clusterset{Now: time.Now(), Clusters: make([]model.Cluster, len(targets))}
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() { set.Clusters[i] = read(ctx, t, where, scheme) })
	}
	wg.Wait()
	return set, nil
}

// read reads one cluster. Each list that fails is recorded by name, and
// the reading goes on.
func read(ctx context.Context, t Target, where Where, scheme *runtime.Scheme) model.Cluster {
	c := model.Cluster{Context: t.Context, Errors: map[string]string{}}
	cl, err := client.New(t.Config, client.Options{Scheme: scheme})
	if err != nil {
		c.Errors[model.ReadPeers] = fmt.Sprintf("client for context %s: %v", t.Context, err)
		return c
	}
	var peers wirespanv1alpha1.ClusterPeerList
	if err := cl.List(ctx, &peers); err != nil {
		c.Errors[model.ReadPeers] = err.Error()
	}
	c.Peers = peers.Items
	slices.SortFunc(c.Peers, func(a, b wirespanv1alpha1.ClusterPeer) int { return strings.Compare(a.Name, b.Name) })

	var exports mcsv1beta1.ServiceExportList
	if err := cl.List(ctx, &exports); err != nil {
		c.Errors[model.ReadExports] = err.Error()
	}
	c.Exports = exports.Items
	var imports mcsv1beta1.ServiceImportList
	if err := cl.List(ctx, &imports); err != nil {
		c.Errors[model.ReadImports] = err.Error()
	}
	c.Imports = imports.Items

	c.Corefile = readCorefile(ctx, cl, where.CoreDNS, c.Errors)
	c.DNSService, c.DNSSlices = readDNS(ctx, cl, where, c.Errors)

	var pods corev1.PodList
	if err := cl.List(ctx, &pods, client.InNamespace(where.Namespace),
		client.MatchingLabels{"app.kubernetes.io/part-of": "wirespan"}); err != nil {
		c.Errors[model.ReadPods] = err.Error()
	}
	c.Pods = pods.Items
	c.GatewayLease = readLease(ctx, cl, types.NamespacedName{Namespace: where.Namespace, Name: where.GatewayLease}, c.Errors)
	if len(c.Errors) == 0 {
		c.Errors = nil
	}
	return c
}

func readCorefile(ctx context.Context, cl client.Client, name types.NamespacedName, errs map[string]string) string {
	var cm corev1.ConfigMap
	err := cl.Get(ctx, name, &cm)
	if apierrors.IsNotFound(err) {
		errs[model.ReadCorefile] = fmt.Sprintf("no ConfigMap %s: if CoreDNS's is elsewhere, give --coredns-configmap", name)
		return ""
	}
	if err != nil {
		errs[model.ReadCorefile] = fmt.Sprintf("ConfigMap %s: %v", name, err)
		return ""
	}
	if cm.Data["Corefile"] == "" {
		errs[model.ReadCorefile] = fmt.Sprintf("ConfigMap %s has no Corefile key", name)
	}
	return cm.Data["Corefile"]
}

func readDNS(ctx context.Context, cl client.Client, where Where, errs map[string]string) (*corev1.Service, []discoveryv1.EndpointSlice) {
	var svc corev1.Service
	err := cl.Get(ctx, types.NamespacedName{Namespace: where.Namespace, Name: where.DNSService}, &svc)
	if apierrors.IsNotFound(err) {
		return nil, nil // absent is a finding for diagnose, not a read error
	}
	if err != nil {
		errs[model.ReadDNS] = err.Error()
		return nil, nil
	}
	var slices discoveryv1.EndpointSliceList
	if err := cl.List(ctx, &slices, client.InNamespace(where.Namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: where.DNSService}); err != nil {
		errs[model.ReadDNS] = err.Error()
	}
	return &svc, slices.Items
}

// readLease gets the gateway Lease: the active gateway and its version.
func readLease(ctx context.Context, cl client.Client, name types.NamespacedName, errs map[string]string) *coordinationv1.Lease {
	var l coordinationv1.Lease
	err := cl.Get(ctx, name, &l)
	if apierrors.IsNotFound(err) {
		return nil // no gateway has been active: a finding, not a read error
	}
	if err != nil {
		errs[model.ReadLease] = fmt.Sprintf("Lease %s: %v", name, err)
		return nil
	}
	return &l
}
