package plan

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Family is the IP family of a lab cluster: of its pods, Services and
// node addresses as Kubernetes and Wirespan see them.
type Family string

// The families a cluster may have.
const (
	IPv4 Family = "ipv4"
	IPv6 Family = "ipv6"
	// Dual is dual-stack with IPv4 first (the primary family), as
	// kubeadm and kind set it up by default.
	Dual Family = "dual"
)

// Families are the values of --ip-family.
var Families = []Family{IPv4, IPv6, Dual}

// ParseFamily checks a --ip-family value; "" is IPv4.
func ParseFamily(s string) (Family, error) {
	if s == "" {
		return IPv4, nil
	}
	if f := Family(s); slices.Contains(Families, f) {
		return f, nil
	}
	return "", fmt.Errorf("%q: want ipv4, ipv6 or dual", s)
}

// ParseClusterFamilies reads --cluster-ip-family: "c3=ipv4" or
// "c2=ipv6,c3=ipv4".
func ParseClusterFamilies(s string) (map[string]Family, error) {
	out := map[string]Family{}
	if s == "" {
		return out, nil
	}
	for _, item := range strings.Split(s, ",") {
		name, value, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("--cluster-ip-family %q: want CLUSTER=FAMILY, such as c3=ipv4", item)
		}
		f, err := ParseFamily(value)
		if err != nil {
			return nil, fmt.Errorf("--cluster-ip-family %s: %w", name, err)
		}
		out[name] = f
	}
	return out, nil
}

// Has6 says whether the family includes IPv6.
func (f Family) Has6() bool { return f == IPv6 || f == Dual }

// inFamily lists v4 and v6 as the family has them, its primary family
// first.
func inFamily[T any](f Family, v4, v6 T) []T {
	switch f {
	case IPv6:
		return []T{v6}
	case Dual:
		return []T{v4, v6}
	default:
		return []T{v4}
	}
}

// familyOf is the family of cluster name under c.
func (c Config) familyOf(name string) Family {
	if f, ok := c.ClusterIPFamilies[name]; ok {
		return f
	}
	if c.IPFamily == "" {
		return IPv4
	}
	return c.IPFamily
}

// validateFamilies checks --ip-family and --cluster-ip-family.
func (c Config) validateFamilies() error {
	if _, err := ParseFamily(string(c.IPFamily)); err != nil {
		return fmt.Errorf("--ip-family %w", err)
	}
	for name, f := range c.ClusterIPFamilies {
		if !clusterName.MatchString(name) || int(name[1]-'0') > c.Clusters {
			return fmt.Errorf("--cluster-ip-family %s: not a cluster of this lab (c1..c%d)", name, c.Clusters)
		}
		if _, err := ParseFamily(string(f)); err != nil {
			return fmt.Errorf("--cluster-ip-family %s: %w", name, err)
		}
	}
	return nil
}

// addr6 parses an IPv6 address the plan writes itself.
func addr6(format string, args ...any) netip.Addr {
	return netip.MustParseAddr(fmt.Sprintf(format, args...))
}

// addIPv6 gives cluster i (1-based) its IPv6 ranges and addresses, which
// mirror the IPv4 ones digit for digit (10.1.0.10 is fd00:10:1::10):
//
//	underlay i   fd00:28:i::/64     router ::1, node n at ::10+n
//	pods i       fd00:10:i::/56     node n owns fd00:10:i:n::/64, bridge ::1, pods from ::10
//	services i   fd00:10:10i::/112  kubernetes ::1, cluster DNS ::10, clusterset DNS ::53
//	host link    fd00:127:N::/64    cluster i's API server advertises ::i
//
// Every cluster has them in the plan, but only a cluster with IPv6 in its
// family wires them. Such a cluster's network keeps its IPv4 wiring too,
// also when it is IPv6 only: the lab's control plane is IPv4 (CoreDNS must
// reach its API server, nodes their API server), so IPv4 stays as a
// management network that neither Kubernetes nor Wirespan is told of.
// One thing shows it: kube-apiserver binds one address, its IPv4 one, so
// an IPv6-only cluster's `kubernetes` Service (at APIServerIP6) answers
// nobody; the lab's components reach the API server by kubeconfig.
func addIPv6(cl *Cluster, i, instance int) {
	svc := 100 + i
	cl.APIServerIP6 = addr6("fd00:127:%d::%d", instance, i)
	cl.Underlay6 = netip.MustParsePrefix(fmt.Sprintf("fd00:28:%d::/64", i))
	cl.UnderlayGateway6 = addr6("fd00:28:%d::1", i)
	cl.PodCIDR6 = netip.MustParsePrefix(fmt.Sprintf("fd00:10:%d::/56", i))
	cl.ServiceCIDR6 = netip.MustParsePrefix(fmt.Sprintf("fd00:10:%d::/112", svc))
	cl.KubernetesServiceIP6 = addr6("fd00:10:%d::1", svc)
	cl.DNSServiceIP6 = addr6("fd00:10:%d::10", svc)
	cl.ClustersetDNSIP6 = addr6("fd00:10:%d::53", svc)
	for n := range cl.Nodes {
		node := &cl.Nodes[n]
		node.UnderlayIP6 = addr6("fd00:28:%d::%d", i, 10+n)
		node.PodCIDR6 = netip.MustParsePrefix(fmt.Sprintf("fd00:10:%d:%d::/64", i, n))
		node.PodGateway6 = addr6("fd00:10:%d:%d::1", i, n)
	}
	onNode := map[string]int{}
	for p := range cl.Pods {
		pod := &cl.Pods[p]
		node, _ := cl.Node(pod.Node)
		pod.IP6 = addr6("%s%d", node.PodCIDR6.Addr(), 10+onNode[pod.Node])
		onNode[pod.Node]++
	}
}

// PodCIDRs are the cluster's pod ranges in its family, primary first.
func (c *Cluster) PodCIDRs() []netip.Prefix { return inFamily(c.Family, c.PodCIDR, c.PodCIDR6) }

// ServiceCIDRs are the cluster's Service ranges in its family.
func (c *Cluster) ServiceCIDRs() []netip.Prefix {
	return inFamily(c.Family, c.ServiceCIDR, c.ServiceCIDR6)
}

// DNSServiceIPs are the cluster DNS Service's ClusterIPs.
func (c *Cluster) DNSServiceIPs() []netip.Addr {
	return inFamily(c.Family, c.DNSServiceIP, c.DNSServiceIP6)
}

// ClustersetDNS is the ClusterIP of the chart's DNS Service, of the
// cluster's primary family (the chart's Service is single-stack).
func (c *Cluster) ClustersetDNS() netip.Addr {
	return inFamily(c.Family, c.ClustersetDNSIP, c.ClustersetDNSIP6)[0]
}

// InternalIPs are a node's addresses as its Node object shows them.
func (n *Node) InternalIPs(c *Cluster) []netip.Addr {
	return inFamily(c.Family, n.UnderlayIP, n.UnderlayIP6)
}

// PodCIDRs are a node's pod ranges as its Node object shows them.
func (n *Node) PodCIDRs(c *Cluster) []netip.Prefix {
	return inFamily(c.Family, n.PodCIDR, n.PodCIDR6)
}

// IPs are a pod's addresses as its Pod object shows them.
func (p *Pod) IPs(c *Cluster) []netip.Addr { return inFamily(c.Family, p.IP, p.IP6) }

// HasIPv6 says whether some cluster of the lab has IPv6.
func (p *Plan) HasIPv6() bool {
	return slices.ContainsFunc(p.Clusters, func(c Cluster) bool { return c.Family.Has6() })
}

// Strings is each value's String, for flags, manifests and status.
func Strings[T fmt.Stringer](vs []T) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.String())
	}
	return out
}
