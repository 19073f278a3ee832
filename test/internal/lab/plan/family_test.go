package plan

import (
	"net/netip"
	"strings"
	"testing"
)

// The IPv6 plan mirrors the IPv4 one: no range overlaps another, every
// address is inside its range, and each cluster publishes its own
// family's, primary first.
func TestIPv6Plan(t *testing.T) {
	fams, err := ParseClusterFamilies("c2=ipv6,c3=ipv4")
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{Clusters: MaxClusters, Nodes: MaxNodes, Gateways: 1, IPFamily: Dual, ClusterIPFamilies: fams})
	if err != nil {
		t.Fatal(err)
	}
	var ranges []netip.Prefix
	for _, c := range p.Clusters {
		ranges = append(ranges, c.PodCIDR6, c.ServiceCIDR6, c.Underlay6)
		for _, a := range []netip.Addr{c.KubernetesServiceIP6, c.DNSServiceIP6, c.ClustersetDNSIP6} {
			if !c.ServiceCIDR6.Contains(a) {
				t.Errorf("%s: %s outside %s", c.Name, a, c.ServiceCIDR6)
			}
		}
		for _, n := range c.Nodes {
			if !c.Underlay6.Contains(n.UnderlayIP6) || !c.PodCIDR6.Contains(n.PodGateway6) || !n.PodCIDR6.Contains(n.PodGateway6) {
				t.Errorf("%s: %s %s %s", n.Name, n.UnderlayIP6, n.PodCIDR6, n.PodGateway6)
			}
		}
		for _, pod := range c.Pods {
			node, _ := c.Node(pod.Node)
			if !node.PodCIDR6.Contains(pod.IP6) || pod.IP6 == node.PodGateway6 {
				t.Errorf("%s/%s: %s on %s", c.Name, pod.Name, pod.IP6, node.PodCIDR6)
			}
		}
	}
	for i, a := range ranges {
		for _, b := range ranges[i+1:] {
			if a.Overlaps(b) {
				t.Errorf("%s overlaps %s", a, b)
			}
		}
	}
	want := map[string]string{"c1": "10.1.0.0/16 fd00:10:1::/56", "c2": "fd00:10:2::/56", "c3": "10.3.0.0/16"}
	for name, w := range want {
		c, _ := p.Cluster(name)
		var got []string
		for _, r := range c.PodCIDRs() {
			got = append(got, r.String())
		}
		if strings.Join(got, " ") != w {
			t.Errorf("%s pod ranges %v, want %s", name, got, w)
		}
	}
	c1, _ := p.Cluster("c1")
	if got := c1.Pods[0].IP6.String(); got != "fd00:10:1::10" {
		t.Errorf("c1 echo-0 is %s, want fd00:10:1::10 (10.1.0.10's counterpart)", got)
	}
}

func TestFamilyFlags(t *testing.T) {
	for _, bad := range []Config{
		{Clusters: 2, Nodes: 1, Gateways: 1, IPFamily: "ipv5"},
		{Clusters: 2, Nodes: 1, Gateways: 1, ClusterIPFamilies: map[string]Family{"c3": IPv4}},
		{Clusters: 2, Nodes: 1, Gateways: 1, ClusterIPFamilies: map[string]Family{"c2": "both"}},
	} {
		if _, err := New(bad); err == nil || !strings.Contains(err.Error(), "ip-family") {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	for _, bad := range []string{"c3", "c3=ipv5"} {
		if _, err := ParseClusterFamilies(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
