// Command operator runs Wirespan's operator in one cluster: it publishes the
// cluster's pod and Service CIDRs and public key in the self ClusterPeer's
// status, checks every ClusterPeer against the others, and, with
// --coredns-forward, makes the cluster DNS forward clusterset.local.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/wirespan/wirespan/internal/cidr"
	"github.com/wirespan/wirespan/internal/kubeflag"
	"github.com/wirespan/wirespan/internal/version"
	"github.com/wirespan/wirespan/operator/internal/app"
	"github.com/wirespan/wirespan/operator/internal/coredns"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "wirespan-operator:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		opts                   app.Options
		podCIDRs, serviceCIDRs string
		keySecret              string
		coreDNSConfigMap       string
		coreDNSForward         string
		zapOpts                = zap.Options{}
	)
	flag.StringVar(&opts.ClusterID, "cluster-id", "", "this cluster's ID: the name of its ClusterPeer (an RFC 1123 label). Taken from the about.k8s.io ClusterProperty cluster.clusterset.k8s.io when that exists; the flag must then agree.")
	flag.StringVar(&podCIDRs, "pod-cidrs", "", "comma-separated pod CIDRs to publish instead of those discovered from Node.spec.podCIDRs (for CNIs that do not fill it)")
	flag.StringVar(&serviceCIDRs, "service-cidrs", "", "comma-separated Service CIDRs to publish instead of those from ServiceCIDR objects")
	flag.StringVar(&keySecret, "key-secret", "wirespan-system/wirespan-cluster-key", "namespace/name of the Secret with the cluster's WireGuard key pair; created with a new key pair if missing")
	flag.StringVar(&opts.MetricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 disables it")
	flag.StringVar(&opts.ProbeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz endpoints; 0 disables them")
	flag.BoolVar(&opts.LeaderElection, "leader-elect", true, "run only while holding the leader Lease, so several replicas can stand by")
	flag.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader Lease (default: the key Secret's namespace)")
	flag.StringVar(&coreDNSForward, "coredns-forward", "", "comma-separated addresses (ip or ip:port, port 53 if left out) of the clusterset DNS server, tried in order: the gateways (their --dns-bind-address, :5353 by default) or a Service in front of them. Set: the operator adds a block forwarding --clusterset-zone there to the CoreDNS Corefile; empty: it removes that block")
	flag.StringVar(&coreDNSConfigMap, "coredns-configmap", "kube-system/coredns", "namespace/name of the CoreDNS ConfigMap (key Corefile) that --coredns-forward edits; empty: never read or write it (no RBAC on it needed)")
	flag.StringVar(&opts.ClustersetZone, "clusterset-zone", coredns.DefaultZone, "DNS zone that --coredns-forward forwards: the gateways' --dns-zone")
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (all settings are flags; see --help)", flag.Args())
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	// First thing in the log, so a log shows which build wrote it.
	ctrl.Log.Info("wirespan-operator starting", "version", version.Get())
	if err := version.Register(crmetrics.Registry, "operator"); err != nil {
		return err
	}

	var err error
	if opts.PodCIDRs, err = cidr.ParseList(podCIDRs); err != nil {
		return fmt.Errorf("--pod-cidrs: %w", err)
	}
	if opts.ServiceCIDRs, err = cidr.ParseList(serviceCIDRs); err != nil {
		return fmt.Errorf("--service-cidrs: %w", err)
	}
	if opts.KeySecret, err = kubeflag.NamespacedName(keySecret); err != nil {
		return fmt.Errorf("--key-secret: %w", err)
	}
	if opts.CoreDNSForward, err = coredns.ParseUpstreams(coreDNSForward); err != nil {
		return fmt.Errorf("--coredns-forward: %w", err)
	}
	if coreDNSConfigMap != "" {
		if opts.CoreDNSConfigMap, err = kubeflag.NamespacedName(coreDNSConfigMap); err != nil {
			return fmt.Errorf("--coredns-configmap: %w", err)
		}
	} else if len(opts.CoreDNSForward) > 0 {
		return errors.New("--coredns-forward needs --coredns-configmap: the ConfigMap to write the forwarding block to")
	}
	if opts.ClustersetZone, err = coredns.ParseZone(opts.ClustersetZone); err != nil {
		return fmt.Errorf("--clusterset-zone: %w", err)
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("find the API server (in-cluster, $KUBECONFIG or --kubeconfig): %w", err)
	}
	return app.Run(ctrl.SetupSignalHandler(), cfg, opts)
}
