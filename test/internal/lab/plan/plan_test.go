package plan

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestNoRangesOverlapAndNamesFit(t *testing.T) {
	p, err := New(Config{Instance: MaxInstance, Clusters: MaxClusters, Nodes: MaxNodes, Gateways: 2, NAT: "c9"})
	if err != nil {
		t.Fatal(err)
	}
	type named struct {
		what string
		pfx  netip.Prefix
	}
	ranges := []named{{"host link", p.HostNet}}
	links := []string{p.HostLink, p.RouterHostLink}
	netns := map[string]bool{}
	for _, ns := range p.Netns() {
		if netns[ns] {
			t.Errorf("netns %s twice", ns)
		}
		netns[ns] = true
	}
	for _, c := range p.Clusters {
		ranges = append(ranges, named{c.Name + " pods", c.PodCIDR}, named{c.Name + " services", c.ServiceCIDR}, named{c.Name + " underlay", c.Underlay})
		links = append(links, c.Bridge)
		if !c.ServiceCIDR.Contains(c.KubernetesServiceIP) || !c.ServiceCIDR.Contains(c.DNSServiceIP) || !c.ServiceCIDR.Contains(c.ClustersetDNSIP) ||
			c.KubernetesServiceIP == c.DNSServiceIP || c.ClustersetDNSIP == c.DNSServiceIP || c.ClustersetDNSIP == c.KubernetesServiceIP {
			t.Errorf("%s: service IPs %s %s %s vs %s", c.Name, c.KubernetesServiceIP, c.DNSServiceIP, c.ClustersetDNSIP, c.ServiceCIDR)
		}
		if !p.HostNet.Contains(c.APIServerIP) || c.APIServerIP == p.RouterIP || c.APIServerIP == p.EtcdIP {
			t.Errorf("%s: API server IP %s", c.Name, c.APIServerIP)
		}
		ips := map[netip.Addr]string{}
		for _, n := range c.Nodes {
			links = append(links, n.RouterLink)
			if !c.Underlay.Contains(n.UnderlayIP) || n.UnderlayIP == c.UnderlayGateway {
				t.Errorf("%s underlay IP %s", n.Name, n.UnderlayIP)
			}
			if !c.PodCIDR.Contains(n.PodCIDR.Addr()) || !n.PodCIDR.Contains(n.PodGateway) {
				t.Errorf("%s pod CIDR %s gateway %s", n.Name, n.PodCIDR, n.PodGateway)
			}
			ips[n.PodGateway] = n.Name
		}
		for _, pod := range c.Pods {
			node, err := c.Node(pod.Node)
			if err != nil {
				t.Fatal(err)
			}
			if !node.PodCIDR.Contains(pod.IP) {
				t.Errorf("%s/%s IP %s outside %s", pod.Namespace, pod.Name, pod.IP, node.PodCIDR)
			}
			if other, dup := ips[pod.IP]; dup {
				t.Errorf("%s/%s IP %s also used by %s", pod.Namespace, pod.Name, pod.IP, other)
			}
			ips[pod.IP] = pod.Name
			links = append(links, pod.NodeLink)
		}
		if got := len(c.Gateways()); got != 2 {
			t.Errorf("%s has %d gateways", c.Name, got)
		}
	}
	for i, a := range ranges {
		for _, b := range ranges[i+1:] {
			if a.pfx.Overlaps(b.pfx) {
				t.Errorf("%s %s overlaps %s %s", a.what, a.pfx, b.what, b.pfx)
			}
		}
	}
	for _, l := range links {
		if len(l) > 15 {
			t.Errorf("link name %q is longer than the kernel's 15 bytes", l)
		}
	}
	if !p.Clusters[8].NAT || p.Clusters[0].NAT {
		t.Error("NAT not on c9 alone")
	}
}

func TestConfigErrorsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Clusters: 0, Nodes: 2, Gateways: 1}, "--clusters 0"},
		{Config{Clusters: 10, Nodes: 2, Gateways: 1}, "--clusters 10"},
		{Config{Clusters: 2, Nodes: 0, Gateways: 1}, "--nodes 0"},
		{Config{Clusters: 2, Nodes: 2, Gateways: 3}, "--gateways 3"},
		{Config{Clusters: 2, Nodes: 2, Gateways: 0}, "--gateways 0"},
		{Config{Clusters: 2, Nodes: 2, Gateways: 1, KubeProxyMinSync: -time.Second}, "--kube-proxy-min-sync-period -1s"},
		{Config{Clusters: 2, Nodes: 2, Gateways: 1, NAT: "c3"}, "only 2 clusters"},
		{Config{Clusters: 2, Nodes: 2, Gateways: 1, NAT: "east"}, "not a lab cluster name"},
		{Config{Instance: 64, Clusters: 2, Nodes: 2, Gateways: 1}, "instance 64"},
	} {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestLookups(t *testing.T) {
	p, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.Cluster("c2")
	if err != nil {
		t.Fatal(err)
	}
	if pod, err := c.Pod("echo-1"); err != nil || pod.IP.String() != "10.2.1.10" || pod.Netns != "wsl-c2-default-echo-1" {
		t.Errorf("echo-1: %+v %v", pod, err)
	}
	if pod, err := c.Pod("kube-system/coredns-0"); err != nil || pod.Node != "c2-n1" || pod.IP.String() != "10.2.1.11" {
		t.Errorf("coredns-0: %+v %v", pod, err)
	}
	if _, err := c.Pod("nope"); err == nil || !strings.Contains(err.Error(), "default/echo-0") {
		t.Errorf("unknown pod error %v does not list the pods", err)
	}
	if _, err := p.Cluster("c7"); err == nil || !strings.Contains(err.Error(), "[c1 c2]") {
		t.Errorf("unknown cluster error %v", err)
	}
}
