package app

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/wirespan/wirespan/gateway/internal/agent"
	"github.com/wirespan/wirespan/gateway/internal/dataplane/linux"
)

// Options configure the gateway; main fills them from flags.
type Options struct {
	ClusterID string
	NodeName  string
	// KeySecret is the cluster key Secret (read by the active gateway).
	KeySecret     types.NamespacedName
	WireGuardMode linux.WireGuardMode
	Agent         agent.Config
	GossipPort    int
	// StatusPeriod is how often tunnel figures (bytes, handshake, latency)
	// are written to ClusterPeer status; state changes are written at once.
	StatusPeriod time.Duration
	// Resync is how often the whole state is recomputed and re-applied even
	// when no input changed, which also repairs changes made by others.
	Resync      time.Duration
	MetricsAddr string
	ProbeAddr   string
	// PprofAddr serves Go's /debug/pprof/ profiles; empty: off.
	PprofAddr string
	// DNSAddr is where the active gateway serves DNSZone; empty: nowhere.
	DNSAddr string
	DNSZone string
	// DNSService is a selector-less Service whose EndpointSlice the active
	// gateway points at itself while it serves DNS; zero: none.
	DNSService types.NamespacedName
	// ClusterDNSService is the cluster DNS Service (kube-dns) whose
	// ClusterIP pods ask; ProbeRequests look names up there. Zero: none.
	ClusterDNSService types.NamespacedName
	// SysctlDir is where the kernel's /proc/sys is (linux.Options).
	SysctlDir string
	// ExportTTL: see gossip.Config.ExportTTL.
	ExportTTL time.Duration
	// ImportGrace: see services.Controller.ImportGrace.
	ImportGrace time.Duration
	// MaxImportsPerCluster: see services.Controller.MaxImportsPerCluster.
	MaxImportsPerCluster int
	// Lease fences the active gateway role (package election); a standby
	// takes the role after LeaseDuration without a renewal, and the holder
	// renews every LeaseRenewPeriod.
	Lease            types.NamespacedName
	LeaseDuration    time.Duration
	LeaseRenewPeriod time.Duration
	// StateFile keeps the data plane the active gateway last applied, to
	// put it back after a restart while the API server is unreachable;
	// empty: not kept.
	StateFile string
	// GoMaxProcs, when positive, is the Go runtime's GOMAXPROCS for this
	// process (Run sets it); 0 keeps Go's default (the CPUs, or the
	// container's CPU limit). --gomaxprocs=auto is AutoGoMaxProcs.
	GoMaxProcs int
	// KubeAPIQPS and KubeAPIBurst limit the client's request rate.
	KubeAPIQPS   float64
	KubeAPIBurst int
}

// DefaultTunnelCIDR6 is --tunnel-cidr-v6's default.
const DefaultTunnelCIDR6 = "fd77:7370:616e::/64"

// DefaultAgentConfig holds the defaults of the data-plane flags.
func DefaultAgentConfig() agent.Config {
	return agent.Config{
		WireGuardName: "wirespan0",
		ListenPort:    51820,
		TunnelCIDR:    netip.MustParsePrefix("100.96.0.0/16"),
		// A /64 of the unique local range (RFC 4193) whose global ID
		// spells "wspan": no registry hands out ULAs, so one fixed and
		// recognizable range is as good as a random one, and the same in
		// every cluster without configuration.
		TunnelCIDR6:  netip.MustParsePrefix(DefaultTunnelCIDR6),
		Table:        51820,
		RulePriority: 100,
		FirewallMark: 0xca,
		Mode:         agent.RouteVXLAN,
		VXLANName:    "wirespan-vx",
		VXLANVNI:     5182,
		VXLANPort:    4790,
		Keepalive:    25 * time.Second,
		NATKeepalive: time.Second,
	}
}

// Validate checks the options and says which flag is wrong.
func (o Options) Validate() error {
	var errs []error
	for _, msg := range validation.IsDNS1123Label(o.ClusterID) {
		errs = append(errs, fmt.Errorf("--cluster-id %q: %s", o.ClusterID, msg))
	}
	if o.NodeName == "" {
		errs = append(errs, errors.New("--node-name is empty (set it, or $NODE_NAME from the downward API)"))
	}
	a := o.Agent
	if a.Mode != agent.RouteVXLAN && a.Mode != agent.RouteDirect {
		errs = append(errs, fmt.Errorf("--node-route-mode %q: want vxlan or direct", a.Mode))
	}
	for _, name := range []struct{ flag, value string }{{"--interface", a.WireGuardName}, {"--vxlan-interface", a.VXLANName}} {
		if name.value == "" || len(name.value) > 15 {
			errs = append(errs, fmt.Errorf("%s %q: an interface name is 1 to 15 characters", name.flag, name.value))
		}
	}
	for _, port := range []struct {
		flag  string
		value int
	}{{"--listen-port", a.ListenPort}, {"--vxlan-port", a.VXLANPort}, {"--gossip-port", o.GossipPort}} {
		if port.value < 1 || port.value > 65535 {
			errs = append(errs, fmt.Errorf("%s %d: must be 1-65535", port.flag, port.value))
		}
	}
	if !a.TunnelCIDR.Addr().Is4() || a.TunnelCIDR.Bits() > 24 || a.TunnelCIDR != a.TunnelCIDR.Masked() {
		errs = append(errs, fmt.Errorf("--tunnel-cidr %s: want an IPv4 range of /24 or larger with no host bits set", a.TunnelCIDR))
	}
	if t := a.TunnelCIDR6; t.IsValid() && (!t.Addr().Is6() || t.Addr().Is4In6() || t.Bits() > 120 || t != t.Masked()) {
		errs = append(errs, fmt.Errorf("--tunnel-cidr-v6 %s: want an IPv6 range of /120 or larger with no host bits set, or empty", t))
	}
	if a.Table < 1 || a.Table > 0xfffffeff || a.Table == 253 || a.Table == 254 || a.Table == 255 {
		errs = append(errs, fmt.Errorf("--route-table %d: must be a table of its own, not local (255), main (254) or default (253)", a.Table))
	}
	if a.RulePriority < 1 || a.RulePriority >= 32766 {
		errs = append(errs, fmt.Errorf("--rule-priority %d: must be 1-32765, before the main table's rule", a.RulePriority))
	}
	if a.FirewallMark == 0 {
		errs = append(errs, errors.New("--fwmark 0: must be non-zero, or WireGuard's own packets could be routed into the tunnel"))
	}
	if a.VXLANVNI < 1 || a.VXLANVNI > 1<<24-1 {
		errs = append(errs, fmt.Errorf("--vxlan-vni %d: must be 1-16777215", a.VXLANVNI))
	}
	if o.ExportTTL <= 0 {
		errs = append(errs, fmt.Errorf("--export-ttl %v: must be positive", o.ExportTTL))
	}
	if o.MaxImportsPerCluster < 1 {
		errs = append(errs, fmt.Errorf("--max-imports-per-cluster %d: must be positive", o.MaxImportsPerCluster))
	}
	if o.ImportGrace < o.ExportTTL {
		errs = append(errs, fmt.Errorf("--import-grace %v: must be at least --export-ttl (%v): a silent cluster's imports outlive its endpoints", o.ImportGrace, o.ExportTTL))
	}
	if o.LeaseRenewPeriod <= 0 || o.LeaseDuration < 2*o.LeaseRenewPeriod {
		errs = append(errs, fmt.Errorf("--lease-duration %v, --lease-renew-period %v: the renew period must be positive and at most half the duration, or one slow renewal hands the role over", o.LeaseDuration, o.LeaseRenewPeriod))
	}
	if o.GoMaxProcs < 0 {
		errs = append(errs, fmt.Errorf("--gomaxprocs %d: want 0 (Go's default) or a number of threads", o.GoMaxProcs))
	}
	if o.KubeAPIQPS <= 0 || o.KubeAPIBurst <= 0 {
		errs = append(errs, fmt.Errorf("--kube-api-qps %v, --kube-api-burst %d: must be positive", o.KubeAPIQPS, o.KubeAPIBurst))
	}
	if o.DNSAddr != "" {
		if _, err := dnsBindAddress(o.DNSAddr, netip.IPv6Loopback()); err != nil {
			errs = append(errs, fmt.Errorf("--dns-bind-address %q: want host:port, node:port (the Node's InternalIP) or :port", o.DNSAddr))
		}
		if o.DNSZone == "" {
			errs = append(errs, errors.New("--dns-zone is empty"))
		}
	} else if o.DNSService.Name != "" {
		errs = append(errs, errors.New("--dns-service needs --dns-bind-address: with no DNS server there is nothing to publish"))
	}
	return errors.Join(errs...)
}

// dnsBindAddress is where the DNS server listens: addr as given, with
// "node" as its host standing for the Node's InternalIP (nodeIP), and no
// host for every address.
func dnsBindAddress(addr string, nodeIP netip.Addr) (netip.AddrPort, error) {
	if port, ok := strings.CutPrefix(addr, "node:"); ok {
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return netip.AddrPort{}, err
		}
		return netip.AddrPortFrom(nodeIP, uint16(p)), nil
	}
	return netip.ParseAddrPort(defaultHost(addr))
}

// defaultHost turns ":port" into "0.0.0.0:port" for parsing.
func defaultHost(addr string) string {
	if len(addr) > 0 && addr[0] == ':' {
		return "0.0.0.0" + addr
	}
	return addr
}

// AutoGoMaxProcs is --gomaxprocs=auto for Go's default goDefault: 1 where
// it is 2, else goDefault. On two cores a userspace WireGuard device's
// system calls carry about a core's worth of the kernel's forwarding
// work; with two Ps, Go parks and wakes its threads against that work
// twice as often as the same device run alone, and carries 12 % less
// (docs/benchmarks.md, issue 15). With one P it is as fast as the device
// alone. Larger nodes keep Go's default: not measured there, and one P
// would cap the encryption at one core.
func AutoGoMaxProcs(goDefault int) int {
	if goDefault == 2 {
		return 1
	}
	return goDefault
}
