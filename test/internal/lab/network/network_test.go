package network

import (
	"strings"
	"testing"

	"github.com/wirespan/wirespan/test/internal/lab/plan"
)

func mustPlan(t *testing.T, cfg plan.Config) *plan.Plan {
	t.Helper()
	p, err := plan.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestScriptsCreateEveryNamespaceFirstAndWireNodesAndPods(t *testing.T) {
	p := mustPlan(t, plan.DefaultConfig())
	scripts := Scripts(p)
	if scripts[0].Netns != "" || len(scripts[0].Lines) != len(p.Netns()) {
		t.Fatalf("first script %+v does not add the %d namespaces", scripts[0], len(p.Netns()))
	}
	byNetns := map[string]string{}
	for _, s := range scripts[1:] {
		byNetns[s.Netns] += strings.Join(s.Lines, "\n") + "\n"
	}
	for netns, want := range map[string][]string{
		"":           {"link add wsl-host type veth peer name host netns wsl-router", "addr add 100.127.0.1/24 dev wsl-host", "addr add 100.127.0.200/24 dev wsl-host"},
		"wsl-router": {"addr add 100.127.0.254/24 dev host", "link add br-c2 type bridge", "link add c2-n1 type veth peer name eth0 netns wsl-c2-n1", "link set c2-n1 master br-c2 up"},
		"wsl-c1-n0": {
			"addr add 172.28.1.10/24 dev eth0", "route add default via 172.28.1.1",
			"addr add 10.1.0.1/24 dev cbr0", "route add 10.1.1.0/24 via 172.28.1.11",
			"link add vp0 type veth peer name eth0 netns wsl-c1-default-echo-0", "link set vp0 type bridge_slave hairpin on",
		},
		"wsl-c1-kube-system-coredns-0": {"addr add 10.1.1.11/24 dev eth0", "route add default via 10.1.1.1"},
	} {
		for _, line := range want {
			if !strings.Contains(byNetns[netns], line+"\n") {
				t.Errorf("netns %q lacks %q:\n%s", netns, line, byNetns[netns])
			}
		}
	}
	// A node never routes another cluster's pods: isolation until Wirespan.
	if strings.Contains(byNetns["wsl-c1-n0"], "10.2.") {
		t.Errorf("c1 node routes c2's ranges:\n%s", byNetns["wsl-c1-n0"])
	}
}

func TestRouterRulesetNATsOnlyTheNATCluster(t *testing.T) {
	plain := RouterRuleset(mustPlan(t, plan.DefaultConfig()))
	if !strings.Contains(plain, `oifname "host" masquerade`) || strings.Contains(plain, "ct state new drop") {
		t.Errorf("without --nat:\n%s", plain)
	}
	cfg := plan.DefaultConfig()
	cfg.NAT = "c2"
	nat := RouterRuleset(mustPlan(t, cfg))
	for _, want := range []string{`iifname "br-c2" oifname != "br-c2" masquerade`, `iifname != "br-c2" oifname "br-c2" ct state new drop`} {
		if !strings.Contains(nat, want) {
			t.Errorf("--nat c2 lacks %q:\n%s", want, nat)
		}
	}
	if strings.Contains(nat, "br-c1") {
		t.Errorf("--nat c2 touches c1:\n%s", nat)
	}
}

func TestNodeMasqueradesOnlyTowardTheHost(t *testing.T) {
	p := mustPlan(t, plan.DefaultConfig())
	rs := NodeRuleset(p, p.Clusters[0])
	if !strings.Contains(rs, "ip saddr 10.1.0.0/16 ip daddr 100.127.0.0/24 masquerade") || strings.Count(rs, "masquerade") != 1 {
		t.Errorf("node ruleset:\n%s", rs)
	}
}

func TestResolvConfSearchesThePodNamespace(t *testing.T) {
	p := mustPlan(t, plan.DefaultConfig())
	c := p.Clusters[1]
	got := ResolvConf(c, c.Pods[len(c.Pods)-1])
	want := "search kube-system.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.102.0.10\noptions ndots:5\n"
	if got != want {
		t.Errorf("resolv.conf:\n%s\nwant:\n%s", got, want)
	}
}
