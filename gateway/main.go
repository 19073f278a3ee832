// Command wirespan-gateway runs on every node. On the cluster's active
// gateway node (label wirespan.io/gateway=true) it runs the WireGuard
// tunnels to the other clusters, gossips this cluster's ranges and reports
// each tunnel in the remote ClusterPeers' status; on every other node it
// routes the other clusters' ranges to the active gateway.
//
// `wirespan-gateway teardown` removes everything Wirespan put in the node's
// kernel; stopping the gateway does not, so traffic survives restarts.
package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	goruntime "runtime"
	"strconv"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/wirespan/wirespan/gateway/internal/agent"
	"github.com/wirespan/wirespan/gateway/internal/app"
	"github.com/wirespan/wirespan/gateway/internal/dataplane/linux"
	"github.com/wirespan/wirespan/gateway/internal/gossip"
	"github.com/wirespan/wirespan/gateway/internal/services"
	"github.com/wirespan/wirespan/internal/kubeflag"
	"github.com/wirespan/wirespan/internal/version"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "wirespan-gateway:", err)
		os.Exit(1)
	}
}

func run() error {
	opts := app.Options{Agent: app.DefaultAgentConfig(), GoMaxProcs: app.AutoGoMaxProcs(goruntime.GOMAXPROCS(0))}
	var (
		keySecret, mode, wgMode, tunnelCIDR, tunnelCIDR6 string
		dnsService, lease, clusterDNS                    string
		zapOpts                                          = zap.Options{}
	)
	a := &opts.Agent
	fs := flag.CommandLine
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: wirespan-gateway [flags]          run the gateway or node agent\n       wirespan-gateway teardown [flags] remove everything Wirespan put in this node's kernel\n\nflags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&opts.ClusterID, "cluster-id", "", "this cluster's ID: the name of its ClusterPeer (required)")
	fs.StringVar(&opts.NodeName, "node-name", os.Getenv("NODE_NAME"), "the Node this runs on (default $NODE_NAME)")
	fs.StringVar(&keySecret, "key-secret", "wirespan-system/wirespan-cluster-key", "namespace/name of the Secret with the cluster's WireGuard key pair")
	fs.StringVar(&wgMode, "wireguard", string(linux.WireGuardAuto), "WireGuard implementation: auto (kernel if it has WireGuard, else userspace), kernel or userspace")
	fs.StringVar(&a.WireGuardName, "interface", a.WireGuardName, "name of the WireGuard interface (unique per machine for userspace devices: their control sockets are not per network namespace)")
	fs.IntVar(&a.ListenPort, "listen-port", a.ListenPort, "WireGuard UDP port; the endpoints in ClusterPeers point here")
	fs.StringVar(&tunnelCIDR, "tunnel-cidr", a.TunnelCIDR.String(), "range each cluster's tunnel address is derived from (by its public key); the same in every cluster")
	fs.StringVar(&tunnelCIDR6, "tunnel-cidr-v6", a.TunnelCIDR6.String(), "IPv6 range each cluster's IPv6 tunnel address is derived from (by its public key), for clusters with IPv6 pod or Service ranges; the same in every cluster; empty: IPv6 is not routed")
	fs.IntVar(&opts.GossipPort, "gossip-port", gossip.DefaultPort, "memberlist port on the tunnel address; the same in every cluster")
	fs.IntVar(&a.Table, "route-table", a.Table, "routing table for routes to other clusters")
	fs.IntVar(&a.RulePriority, "rule-priority", a.RulePriority, "priority of the policy rule that consults --route-table")
	fs.Func("fwmark", fmt.Sprintf("fwmark on the WireGuard device's own packets, which the rule keeps out of --route-table (default %#x; keep clear of kube-proxy's 0x4000 and 0x8000 bits)", a.FirewallMark), func(v string) error {
		m, err := strconv.ParseUint(v, 0, 32)
		if err != nil {
			return fmt.Errorf("want a 32-bit number such as 51820 or 0xca6c: %w", err)
		}
		a.FirewallMark = uint32(m)
		return nil
	})
	fs.StringVar(&mode, "node-route-mode", string(a.Mode), "how nodes reach the active gateway: vxlan (works on any node network) or direct (no overhead; the node network must carry pod source addresses)")
	fs.StringVar(&a.VXLANName, "vxlan-interface", a.VXLANName, "name of the VXLAN interface between nodes and the gateway")
	fs.IntVar(&a.VXLANVNI, "vxlan-vni", a.VXLANVNI, "VXLAN network identifier")
	fs.IntVar(&a.VXLANPort, "vxlan-port", a.VXLANPort, "VXLAN UDP port (not 4789, which CNIs such as Flannel and Calico use)")
	fs.DurationVar(&a.NATKeepalive, "nat-keepalive", a.NATKeepalive, "WireGuard persistent keepalive towards every peer when this cluster is behind NAT (its ClusterPeer lists no endpoints): a NAT mapping that changes is found by the peers when this side next sends, so traffic into the cluster is back within about this long; one small packet per peer this often, only when the tunnel is idle")
	fs.DurationVar(&a.Keepalive, "keepalive", a.Keepalive, "WireGuard persistent keepalive towards every peer: keeps NAT mappings open, and a newly active gateway announces itself with it at once")
	fs.DurationVar(&opts.StatusPeriod, "status-period", 10e9, "how often tunnel figures are written to ClusterPeer status")
	fs.DurationVar(&opts.Resync, "resync-period", 5e9, "how often the data plane is checked and repaired even without changes")
	fs.StringVar(&opts.DNSAddr, "dns-bind-address", ":5353", "address (UDP and TCP) of the clusterset DNS server on the active gateway; the cluster DNS forwards the zone here; empty disables it")
	fs.StringVar(&opts.DNSZone, "dns-zone", "clusterset.local", "DNS zone of multi-cluster services (KEP-1645 names clusterset.local)")
	fs.StringVar(&dnsService, "dns-service", "", "namespace/name of a Service without selector in front of the clusterset DNS server: the active gateway writes its own address into the Service's EndpointSlice while it serves DNS (the chart's DNS Service); empty: none")
	fs.StringVar(&clusterDNS, "cluster-dns-service", "kube-system/kube-dns", "namespace/name of the cluster DNS Service, whose ClusterIP pods ask: a ProbeRequest (kubectl wirespan diagnose) looks names up there, as a pod would; empty: not probed")
	fs.StringVar(&opts.SysctlDir, "sysctl-dir", "/proc/sys", "where the kernel's /proc/sys is: a container's /proc/sys is read-only, so the chart mounts the host's /proc/sys/net writable at /host/proc/sys/net")
	fs.DurationVar(&opts.ExportTTL, "export-ttl", 30e9, "how long a cluster's exported endpoints stay imported after its last gateway left the gossip pool")
	fs.DurationVar(&opts.ImportGrace, "import-grace", services.DefaultImportGrace, "how long the ServiceImports and clusterset IPs of a silent cluster's exports stay after its last gateway left the gossip pool (its endpoints go at --export-ttl), so that a partition does not renumber them; at least --export-ttl")
	fs.IntVar(&opts.MaxImportsPerCluster, "max-imports-per-cluster", services.DefaultMaxImportsPerCluster, "how many services one other cluster may have imported here; the rest (last by namespace and name) are left out and counted in wirespan_mcs_unusable_records_total{reason=\"over-cap\"}")
	fs.StringVar(&lease, "lease", "wirespan-system/wirespan-gateway", "namespace/name of the Lease that fences the active gateway role: the gateway nodes of a cluster hold it in turn (docs/architecture.md, Failover)")
	fs.DurationVar(&opts.LeaseDuration, "lease-duration", time.Second, "how long a standby gateway waits without seeing the active one renew the Lease before it takes the role: the failover time after a crash is about this plus the renew period; the same on every node")
	fs.DurationVar(&opts.LeaseRenewPeriod, "lease-renew-period", 200*time.Millisecond, "how often the active gateway renews the Lease and each standby reads it (each is one API request); at most half --lease-duration")
	fs.StringVar(&opts.StateFile, "state-file", "/var/lib/wirespan/gateway-state.json", "where the active gateway keeps the data plane it last applied (root-only: it holds the cluster key), to bring its tunnels back when it restarts while the API server is unreachable; empty: not kept")
	fs.Func("gomaxprocs", "OS threads that run Go code at once (the Go runtime's GOMAXPROCS): a number, or auto: 1 where Go's default is 2 (two CPUs, or a CPU limit of 2), else Go's default. On a two-core gateway node with userspace WireGuard, 1 carries more: the device's system calls do the kernel's forwarding work on the other core, and Go stops parking and waking threads against it (docs/benchmarks.md, issue 15) (default auto)", func(v string) error {
		if v == "auto" {
			opts.GoMaxProcs = app.AutoGoMaxProcs(goruntime.GOMAXPROCS(0))
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("want auto or a number of threads, at least 1")
		}
		opts.GoMaxProcs = n
		return nil
	})
	fs.Float64Var(&opts.KubeAPIQPS, "kube-api-qps", 100, "queries per second to the API server (MCS imports write several objects per service)")
	fs.IntVar(&opts.KubeAPIBurst, "kube-api-burst", 200, "burst of queries to the API server")
	fs.StringVar(&opts.MetricsAddr, "metrics-bind-address", ":9090", "address of the Prometheus metrics endpoint; 0 disables it")
	fs.StringVar(&opts.ProbeAddr, "health-probe-bind-address", ":9091", "address of the /healthz and /readyz endpoints; 0 disables them")
	fs.StringVar(&opts.PprofAddr, "pprof-bind-address", "", "address of Go's /debug/pprof/ profiles, for finding where CPU and memory go; empty disables it (the default: keep it on loopback if you turn it on)")
	zapOpts.BindFlags(fs)

	args := os.Args[1:]
	teardown := len(args) > 0 && args[0] == "teardown"
	if teardown {
		args = args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (the only command is teardown; see --help)", fs.Args())
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	var err error
	a.Mode = agent.RouteMode(mode)
	opts.WireGuardMode = linux.WireGuardMode(wgMode)
	if a.TunnelCIDR, err = netip.ParsePrefix(tunnelCIDR); err != nil {
		return fmt.Errorf("--tunnel-cidr: %w", err)
	}
	a.TunnelCIDR6 = netip.Prefix{}
	if tunnelCIDR6 != "" {
		if a.TunnelCIDR6, err = netip.ParsePrefix(tunnelCIDR6); err != nil {
			return fmt.Errorf("--tunnel-cidr-v6: %w", err)
		}
	}
	if teardown {
		changes, err := app.Teardown(opts, ctrl.Log.WithName("teardown"))
		for _, c := range changes {
			fmt.Println(c)
		}
		if err == nil && len(changes) == 0 {
			fmt.Println("nothing of Wirespan's found")
		}
		return err
	}
	if opts.KeySecret, err = kubeflag.NamespacedName(keySecret); err != nil {
		return fmt.Errorf("--key-secret: %w", err)
	}
	if opts.Lease, err = kubeflag.NamespacedName(lease); err != nil {
		return fmt.Errorf("--lease: %w", err)
	}
	if dnsService != "" {
		if opts.DNSService, err = kubeflag.NamespacedName(dnsService); err != nil {
			return fmt.Errorf("--dns-service: %w", err)
		}
	}
	if clusterDNS != "" {
		if opts.ClusterDNSService, err = kubeflag.NamespacedName(clusterDNS); err != nil {
			return fmt.Errorf("--cluster-dns-service: %w", err)
		}
	}
	if err := opts.Validate(); err != nil {
		return err
	}
	// First thing in the log, so a log shows which build wrote it (not
	// for teardown, whose output is the list of what it removed).
	ctrl.Log.Info("wirespan-gateway starting", "version", version.Get())
	if err := version.Register(crmetrics.Registry, "gateway"); err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("find the API server (in-cluster, $KUBECONFIG or --kubeconfig): %w", err)
	}
	cfg.QPS, cfg.Burst = float32(opts.KubeAPIQPS), opts.KubeAPIBurst
	return app.Run(ctrl.SetupSignalHandler(), cfg, opts)
}
