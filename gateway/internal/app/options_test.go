package app

import (
	"time"

	"net/netip"
	"strings"
	"testing"
)

func TestValidateNamesTheWrongFlag(t *testing.T) {
	valid := func() Options {
		return Options{ClusterID: "east", NodeName: "n1", GossipPort: 7946, Agent: DefaultAgentConfig(),
			DNSAddr: ":5353", DNSZone: "clusterset.local", ExportTTL: 30 * time.Second, ImportGrace: time.Hour, MaxImportsPerCluster: 10, KubeAPIQPS: 100, KubeAPIBurst: 200,
			LeaseDuration: time.Second, LeaseRenewPeriod: 200 * time.Millisecond}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	for _, tc := range []struct {
		change func(*Options)
		want   string
	}{
		{func(o *Options) { o.ClusterID = "East" }, "--cluster-id"},
		{func(o *Options) { o.NodeName = "" }, "--node-name"},
		{func(o *Options) { o.GoMaxProcs = -1 }, "--gomaxprocs"},
		{func(o *Options) { o.DNSAddr = "node:port" }, "--dns-bind-address"},
		{func(o *Options) { o.LeaseRenewPeriod = 600 * time.Millisecond }, "--lease-renew-period"},
		{func(o *Options) { o.Agent.Mode = "tunnel" }, "--node-route-mode"},
		{func(o *Options) { o.Agent.WireGuardName = "a-very-long-interface" }, "--interface"},
		{func(o *Options) { o.Agent.ListenPort = 0 }, "--listen-port"},
		{func(o *Options) { o.Agent.VXLANPort = 70000 }, "--vxlan-port"},
		{func(o *Options) { o.GossipPort = -1 }, "--gossip-port"},
		{func(o *Options) { o.Agent.TunnelCIDR = netip.MustParsePrefix("100.96.0.1/16") }, "--tunnel-cidr"},
		{func(o *Options) { o.Agent.TunnelCIDR = netip.MustParsePrefix("fd00::/64") }, "--tunnel-cidr"},
		{func(o *Options) { o.Agent.TunnelCIDR = netip.MustParsePrefix("100.96.0.0/30") }, "--tunnel-cidr"},
		{func(o *Options) { o.Agent.TunnelCIDR6 = netip.MustParsePrefix("fd77::1/64") }, "--tunnel-cidr-v6"},
		{func(o *Options) { o.Agent.TunnelCIDR6 = netip.MustParsePrefix("100.96.0.0/16") }, "--tunnel-cidr-v6"},
		{func(o *Options) { o.Agent.TunnelCIDR6 = netip.MustParsePrefix("fd77::/124") }, "--tunnel-cidr-v6"},
		{func(o *Options) { o.Agent.Table = 254 }, "--route-table"},
		{func(o *Options) { o.Agent.RulePriority = 32766 }, "--rule-priority"},
		{func(o *Options) { o.Agent.FirewallMark = 0 }, "--fwmark"},
		{func(o *Options) { o.Agent.VXLANVNI = 1 << 24 }, "--vxlan-vni"},
		{func(o *Options) { o.DNSAddr, o.DNSService.Name = "", "wirespan-dns" }, "--dns-service"},
		{func(o *Options) { o.ImportGrace = 10 * time.Second }, "--import-grace"},
		{func(o *Options) { o.MaxImportsPerCluster = 0 }, "--max-imports-per-cluster"},
	} {
		o := valid()
		tc.change(&o)
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v", tc.want, err)
		}
	}
}

func TestDNSBindAddress(t *testing.T) {
	node := netip.MustParseAddr("172.28.1.10")
	for _, tc := range []struct{ in, want string }{
		{"node:5353", "172.28.1.10:5353"},
		{":5353", "0.0.0.0:5353"},
		{"10.0.0.1:53", "10.0.0.1:53"},
		{"[fd00::1]:5353", "[fd00::1]:5353"},
	} {
		if got, err := dnsBindAddress(tc.in, node); err != nil || got.String() != tc.want {
			t.Errorf("dnsBindAddress(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	if got, err := dnsBindAddress("node:5353", netip.MustParseAddr("fd00::10")); err != nil || got.String() != "[fd00::10]:5353" {
		t.Errorf("an IPv6 node: %v, %v", got, err)
	}
	if _, err := dnsBindAddress("node:dns", node); err == nil {
		t.Error("node:dns accepted")
	}
}

func TestAutoGoMaxProcs(t *testing.T) {
	for goDefault, want := range map[int]int{1: 1, 2: 1, 3: 3, 4: 4, 16: 16} {
		if got := AutoGoMaxProcs(goDefault); got != want {
			t.Errorf("AutoGoMaxProcs(%d) = %d, want %d", goDefault, got, want)
		}
	}
}
