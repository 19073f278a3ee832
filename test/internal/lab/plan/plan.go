// Package plan computes a lab's names and addresses from its few settings.
// It is pure: everything the lab creates is decided here first, so the
// address plan can be tested, documented and printed without touching the
// kernel.
package plan

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"time"
)

// Limits keep every name within the kernel's 15-byte interface names and
// every address inside the ranges documented in docs/lab.md.
const (
	MaxClusters = 9
	MaxNodes    = 4
	MaxInstance = 63
)

// Config is what a user chooses; everything else follows from it.
type Config struct {
	// Instance separates labs on one machine: it picks the name prefix and
	// the host link's subnet. The CLI's lab is 0; the e2e suite uses 1, so
	// tests never touch a lab someone left running.
	Instance int
	Clusters int
	// Nodes per cluster; the first Gateways of them carry the gateway label.
	Nodes    int
	Gateways int
	// NAT names a cluster whose underlay sits behind a masquerading router:
	// it can open connections to the others, but not the other way round.
	NAT string
	// KubeProxyMinSync is kube-proxy's minimum sync period (its flag
	// --iptables-min-sync-period, which the nftables mode reads too);
	// zero keeps kube-proxy's default (1 s). With thousands of Services
	// changing, each kube-proxy runs nft about once a period, and every
	// run costs time in the size of the whole ruleset: three clusters'
	// kube-proxies on one small machine then take about 70% of the CPU
	// their API servers take.
	KubeProxyMinSync time.Duration
	// IPFamily is every cluster's family unless ClusterIPFamilies names
	// it; "" is IPv4.
	IPFamily Family
	// ClusterIPFamilies makes some clusters differ, by name.
	ClusterIPFamilies map[string]Family
}

// DefaultConfig is two clusters of two nodes, one of them a gateway.
func DefaultConfig() Config { return Config{Clusters: 2, Nodes: 2, Gateways: 1} }

// Plan is the whole lab: names, addresses, ports.
type Plan struct {
	Instance int
	// Prefix starts every network namespace and host-side link name.
	Prefix string
	// Router is the network namespace joining the clusters' underlays and,
	// over the host link, the host.
	Router string
	// HostLink is the veth in the host namespace; RouterHostLink its peer in
	// the router namespace.
	HostLink       string
	RouterHostLink string
	// HostNet is the host link's subnet; the host holds one address in it
	// per cluster (that cluster's API server) and one for etcd.
	HostNet  netip.Prefix
	RouterIP netip.Addr
	EtcdIP   netip.Addr
	Clusters []Cluster
	// KubeProxyMinSync is kube-proxy's --min-sync-period, zero for its
	// default.
	KubeProxyMinSync time.Duration
}

// Cluster is one lab cluster.
type Cluster struct {
	Name string
	// APIServerIP is the host address its kube-apiserver binds, reachable
	// from every node through the router.
	APIServerIP netip.Addr
	// APIServerIP6 is the address an IPv6-only cluster's kube-apiserver
	// advertises (it must be of the Service range's family): on the host
	// link, but not bound (see addIPv6).
	APIServerIP6  netip.Addr
	APIServerPort int
	// OperatorMetricsPort and OperatorProbePort are on APIServerIP too.
	OperatorMetricsPort int
	OperatorProbePort   int
	PodCIDR             netip.Prefix
	ServiceCIDR         netip.Prefix
	// KubernetesServiceIP is the first address of ServiceCIDR, which the
	// apiserver gives the `kubernetes` Service.
	KubernetesServiceIP netip.Addr
	DNSServiceIP        netip.Addr
	// ClustersetDNSIP is the ClusterIP of the chart's DNS Service, in
	// front of the active gateway's clusterset DNS server; CoreDNS
	// forwards ClustersetDomain there.
	ClustersetDNSIP netip.Addr
	Underlay        netip.Prefix
	// UnderlayGateway is the router's address on the underlay bridge.
	UnderlayGateway netip.Addr
	// Bridge is the underlay bridge, in the router namespace.
	Bridge string
	NAT    bool
	Nodes  []Node
	Pods   []Pod
	// Family is the cluster's IP family. The fields ending in 6 are its
	// IPv6 ranges and addresses (see addIPv6), which only a cluster with
	// IPv6 in its family wires and publishes.
	Family               Family
	Underlay6            netip.Prefix
	UnderlayGateway6     netip.Addr
	PodCIDR6             netip.Prefix
	ServiceCIDR6         netip.Prefix
	KubernetesServiceIP6 netip.Addr
	DNSServiceIP6        netip.Addr
	ClustersetDNSIP6     netip.Addr
}

// Node is a network namespace on its cluster's underlay.
type Node struct {
	Name    string
	Netns   string
	Gateway bool
	// UnderlayIP is on the node's eth0; RouterLink is the peer of that eth0
	// in the router namespace, a port of the cluster's bridge.
	UnderlayIP netip.Addr
	RouterLink string
	PodCIDR    netip.Prefix
	// PodGateway is the node's address on its pod bridge (cbr0).
	PodGateway netip.Addr
	// WireGuard names the node's WireGuard interface. Userspace devices'
	// control sockets are not per network namespace, so the name is unique
	// on the machine: the node's namespace name.
	WireGuard string
	// UnderlayIP6, PodCIDR6 and PodGateway6 are the IPv6 counterparts.
	UnderlayIP6 netip.Addr
	PodCIDR6    netip.Prefix
	PodGateway6 netip.Addr
}

// GatewayDNSPort is where the active gateway serves ClustersetDomain, on
// the node's underlay address; the chart's DNS Service (ClustersetDNSIP,
// port 53) sends the zone there.
const GatewayDNSPort = 5353

// ClustersetDomain is the zone of multi-cluster services (KEP-1645).
const ClustersetDomain = "clusterset.local"

// ExportTTL is the gateways' --export-ttl in the lab: shorter than the
// default 30 s, so that the end-to-end test of a cluster going away does
// not wait long.
const ExportTTL = 10 * time.Second

// GatewayProbePort is where each node's wirespan-gateway serves /healthz
// and /readyz, on the node's loopback; GatewayMetricsPort its metrics,
// GatewayPprofPort its Go profiles.
const (
	GatewayMetricsPort = 9090
	GatewayProbePort   = 9091
	GatewayPprofPort   = 6060
)

// Pod is a network namespace attached to its node's pod bridge.
type Pod struct {
	Namespace string
	Name      string
	Node      string
	Netns     string
	IP        netip.Addr
	// NodeLink is the node-side end of the pod's veth, a port of cbr0.
	NodeLink string
	Labels   map[string]string
	// Role says what runs in the pod: RoleEcho or RoleDNS.
	Role string
	// IP6 is its IPv6 address, wired in a cluster with IPv6.
	IP6 netip.Addr
}

// What runs in a pod.
const (
	RoleEcho = "echo"
	RoleDNS  = "dns"
)

// Fixed names and ports inside the lab.
const (
	PodBridge        = "cbr0"
	EchoPort         = 8080
	APIServerPort    = 6443
	EtcdClientPort   = 2379
	EtcdPeerPort     = 2380
	OperatorMetrics  = 8080
	OperatorProbe    = 8081
	ClusterDomain    = "cluster.local"
	EchoServiceName  = "echo"
	DNSServiceName   = "kube-dns"
	SystemNamespace  = "kube-system"
	DefaultNamespace = "default"
)

var clusterName = regexp.MustCompile(`^c[1-9]$`)

// IsClusterName says whether name is one the lab gives clusters.
func IsClusterName(name string) bool { return clusterName.MatchString(name) }

// ClusterName is the name of the i-th cluster (0-based).
func ClusterName(i int) string { return fmt.Sprintf("c%d", i+1) }

// Validate says what is wrong with a Config, in the words of its flags.
func (c Config) Validate() error {
	switch {
	case c.Instance < 0 || c.Instance > MaxInstance:
		return fmt.Errorf("instance %d: must be 0..%d", c.Instance, MaxInstance)
	case c.Clusters < 1 || c.Clusters > MaxClusters:
		return fmt.Errorf("--clusters %d: must be 1..%d", c.Clusters, MaxClusters)
	case c.Nodes < 1 || c.Nodes > MaxNodes:
		return fmt.Errorf("--nodes %d: must be 1..%d", c.Nodes, MaxNodes)
	case c.Gateways < 1 || c.Gateways > c.Nodes:
		return fmt.Errorf("--gateways %d: must be 1..%d (the number of nodes)", c.Gateways, c.Nodes)
	case c.KubeProxyMinSync < 0:
		return fmt.Errorf("--kube-proxy-min-sync-period %s: must not be negative", c.KubeProxyMinSync)
	}
	if err := c.validateFamilies(); err != nil {
		return err
	}
	if c.NAT != "" {
		if !clusterName.MatchString(c.NAT) {
			return fmt.Errorf("--nat %q: not a lab cluster name (c1..c%d)", c.NAT, c.Clusters)
		}
		if n := int(c.NAT[1] - '0'); n > c.Clusters {
			return fmt.Errorf("--nat %s: there are only %d clusters (c1..c%d)", c.NAT, c.Clusters, c.Clusters)
		}
	}
	return nil
}

// Prefix is the name prefix of an instance: wsl for 0, wsl<N> otherwise.
func Prefix(instance int) string {
	if instance == 0 {
		return "wsl"
	}
	return fmt.Sprintf("wsl%d", instance)
}

// New lays out the lab.
//
// Address plan (i is the 1-based cluster number, n the 0-based node):
//
//	host link      100.127.<instance>.0/24  cluster APIs at .i, etcd at .200, router .254
//	underlay i     172.28.i.0/24            router .1, node n at .10+n
//	pods i         10.i.0.0/16              node n owns 10.i.n.0/24, bridge .1, pods from .10
//	services i     10.10i.0.0/16            kubernetes .0.1, cluster DNS .0.10
//
// and their IPv6 counterparts (addIPv6).
func New(c Config) (*Plan, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	prefix := Prefix(c.Instance)
	p := &Plan{
		Instance:       c.Instance,
		Prefix:         prefix,
		Router:         prefix + "-router",
		HostLink:       prefix + "-host",
		RouterHostLink: "host",
		HostNet:        netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 127, byte(c.Instance), 0}), 24),
		RouterIP:       netip.AddrFrom4([4]byte{100, 127, byte(c.Instance), 254}),
		EtcdIP:         netip.AddrFrom4([4]byte{100, 127, byte(c.Instance), 200}),

		KubeProxyMinSync: c.KubeProxyMinSync,
	}
	for i := range c.Clusters {
		p.Clusters = append(p.Clusters, newCluster(prefix, c, i))
	}
	return p, nil
}

func newCluster(prefix string, c Config, i int) Cluster {
	num := byte(i + 1)
	name := ClusterName(i)
	cl := Cluster{
		Name:                name,
		APIServerIP:         netip.AddrFrom4([4]byte{100, 127, byte(c.Instance), num}),
		APIServerPort:       APIServerPort,
		OperatorMetricsPort: OperatorMetrics,
		OperatorProbePort:   OperatorProbe,
		PodCIDR:             netip.PrefixFrom(netip.AddrFrom4([4]byte{10, num, 0, 0}), 16),
		ServiceCIDR:         netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 100 + num, 0, 0}), 16),
		KubernetesServiceIP: netip.AddrFrom4([4]byte{10, 100 + num, 0, 1}),
		DNSServiceIP:        netip.AddrFrom4([4]byte{10, 100 + num, 0, 10}),
		ClustersetDNSIP:     netip.AddrFrom4([4]byte{10, 100 + num, 0, 53}),
		Underlay:            netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 28, num, 0}), 24),
		UnderlayGateway:     netip.AddrFrom4([4]byte{172, 28, num, 1}),
		Bridge:              "br-" + name,
		NAT:                 c.NAT == name,
		Family:              c.familyOf(name),
	}
	for n := range c.Nodes {
		node := Node{
			Name:       fmt.Sprintf("%s-n%d", name, n),
			Gateway:    n < c.Gateways,
			UnderlayIP: netip.AddrFrom4([4]byte{172, 28, num, byte(10 + n)}),
			PodCIDR:    netip.PrefixFrom(netip.AddrFrom4([4]byte{10, num, byte(n), 0}), 24),
			PodGateway: netip.AddrFrom4([4]byte{10, num, byte(n), 1}),
		}
		node.Netns = prefix + "-" + node.Name
		node.WireGuard = node.Netns
		node.RouterLink = node.Name
		cl.Nodes = append(cl.Nodes, node)
	}
	// One echo pod per node, so in-cluster traffic crosses nodes; cluster DNS
	// on the last node, so a lookup from echo-0 crosses the underlay too.
	podsOn := map[int]int{}
	addPod := func(ns, podName string, node int, role string, labels map[string]string) {
		nd := cl.Nodes[node]
		ip := nd.PodCIDR.Addr().As4()
		ip[3] = byte(10 + podsOn[node])
		cl.Pods = append(cl.Pods, Pod{
			Namespace: ns, Name: podName, Node: nd.Name,
			Netns:    fmt.Sprintf("%s-%s-%s-%s", prefix, name, ns, podName),
			IP:       netip.AddrFrom4(ip),
			NodeLink: fmt.Sprintf("vp%d", podsOn[node]),
			Labels:   labels, Role: role,
		})
		podsOn[node]++
	}
	for n := range c.Nodes {
		addPod(DefaultNamespace, fmt.Sprintf("echo-%d", n), n, RoleEcho, map[string]string{"app": EchoServiceName})
	}
	addPod(SystemNamespace, "coredns-0", c.Nodes-1, RoleDNS, map[string]string{"k8s-app": DNSServiceName})
	addIPv6(&cl, i+1, c.Instance)
	return cl
}

// Cluster finds a cluster by name.
func (p *Plan) Cluster(name string) (*Cluster, error) {
	for i := range p.Clusters {
		if p.Clusters[i].Name == name {
			return &p.Clusters[i], nil
		}
	}
	return nil, fmt.Errorf("no cluster %q in this lab (it has %s)", name, p.ClusterNames())
}

// ClusterNames lists the clusters for messages.
func (p *Plan) ClusterNames() []string {
	var names []string
	for _, c := range p.Clusters {
		names = append(names, c.Name)
	}
	return names
}

// Netns lists every network namespace the lab makes, router first.
func (p *Plan) Netns() []string {
	names := []string{p.Router}
	for _, c := range p.Clusters {
		for _, n := range c.Nodes {
			names = append(names, n.Netns)
		}
		for _, pod := range c.Pods {
			names = append(names, pod.Netns)
		}
	}
	return names
}

// Pod finds a pod by "name" (namespace default) or "namespace/name".
func (c *Cluster) Pod(ref string) (*Pod, error) {
	ns, name := DefaultNamespace, ref
	for i := range len(ref) {
		if ref[i] == '/' {
			ns, name = ref[:i], ref[i+1:]
			break
		}
	}
	for i := range c.Pods {
		if c.Pods[i].Namespace == ns && c.Pods[i].Name == name {
			return &c.Pods[i], nil
		}
	}
	return nil, fmt.Errorf("no pod %s/%s in cluster %s (pods: %s)", ns, name, c.Name, c.podRefs())
}

// Node finds a node by name.
func (c *Cluster) Node(name string) (*Node, error) {
	for i := range c.Nodes {
		if c.Nodes[i].Name == name {
			return &c.Nodes[i], nil
		}
	}
	return nil, fmt.Errorf("no node %s in cluster %s", name, c.Name)
}

func (c *Cluster) podRefs() []string {
	var refs []string
	for _, p := range c.Pods {
		refs = append(refs, p.Namespace+"/"+p.Name)
	}
	slices.Sort(refs)
	return refs
}

// Gateways lists the cluster's gateway nodes.
func (c *Cluster) Gateways() []Node {
	var gws []Node
	for _, n := range c.Nodes {
		if n.Gateway {
			gws = append(gws, n)
		}
	}
	return gws
}
