package linux

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/wirespan/wirespan/gateway/internal/agent"
	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

// TestNodeAgentVXLANCarriesBothFamilies applies a dual-stack node agent's
// state (agent.Desired) and its gateway's VXLAN link in two namespaces,
// over an IPv4 and then an IPv6 node network, and pings from a pod behind
// the node agent to an address of a remote range of each family that the
// gateway holds itself: the packet can only arrive through the VXLAN link,
// IPv6 by the link-local next hop and its permanent neighbor entry. The
// reply comes back over the node network, as a CNI would carry it.
func TestNodeAgentVXLANCarriesBothFamilies(t *testing.T) {
	requireRoot(t)
	for _, underlay6 := range []bool{false, true} {
		name := map[bool]string{false: "IPv4 node network", true: "IPv6 node network"}[underlay6]
		t.Run(name, func(t *testing.T) { nodeAgentOverVXLAN(t, underlay6) })
	}
}

func nodeAgentOverVXLAN(t *testing.T, underlay6 bool) {
	gw, node := vethPair(t) // va in gw, vb in node
	gwIP, nodeIP := netip.MustParseAddr("192.168.77.1"), netip.MustParseAddr("192.168.77.2")
	if underlay6 {
		gwIP, nodeIP = netip.MustParseAddr("fd00:77::1"), netip.MustParseAddr("fd00:77::2")
		inNS(t, gw, "ip", "addr", "add", "fd00:77::1/64", "dev", "va", "nodad")
		inNS(t, node, "ip", "addr", "add", "fd00:77::2/64", "dev", "vb", "nodad")
	}
	pod, podIP := addPod(t, node, netip.MustParsePrefix("10.201.1.0/24"))
	podIP6 := addPod6(t, node, pod, netip.MustParsePrefix("fd00:201:1::/64"))
	// The CNI's routes back to the pod, over the node network.
	inNS(t, gw, "ip", "route", "add", "10.201.1.0/24", "via", "192.168.77.2")
	inNS(t, gw, "ip", "-6", "route", "add", "fd00:201:1::/64", "via", map[bool]string{false: vethLinkLocal(t, node, "vb"), true: "fd00:77::2"}[underlay6], "dev", "va")
	// Addresses of the remote ranges, held by the gateway itself.
	remote4, remote6 := "10.202.0.10", "fd00:202::10"
	inNS(t, gw, "ip", "addr", "add", remote4+"/32", "dev", "lo")
	inNS(t, gw, "ip", "addr", "add", remote6+"/128", "dev", "lo")

	cfg := agent.Config{
		WireGuardName: "wsunused0", TunnelCIDR: netip.MustParsePrefix("100.96.0.0/16"),
		TunnelCIDR6: netip.MustParsePrefix("fd77:7370:616e::/64"), Table: gatewayTable, RulePriority: 100,
		Mode: agent.RouteVXLAN, VXLANName: "wsvx0", VXLANVNI: 5182, VXLANPort: 4790,
	}
	peers := []agent.Peer{{
		Cluster: "b", PublicKey: mustKey(t).PublicKey().String(),
		AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.202.0.0/16"), netip.MustParsePrefix("fd00:202::/56")},
		Claims:       []netip.Prefix{netip.MustParsePrefix("10.202.0.0/16"), netip.MustParsePrefix("fd00:202::/56")},
	}}
	in := func(name string, ip netip.Addr, underlay string) agent.Inputs {
		return agent.Inputs{
			Config: cfg, Cluster: "a",
			Node:     agent.Node{Name: name, IP: ip, Underlay: underlay, UnderlayMTU: 1500},
			Gateways: []agent.Gateway{{Node: "gw", IP: gwIP}}, Active: "gw",
			SelfRanges: []netip.Prefix{netip.MustParsePrefix("10.201.0.0/16"), netip.MustParsePrefix("fd00:201::/56")},
			Peers:      peers,
		}
	}
	nodePlan := agent.Desired(in("node", nodeIP, "vb"))
	if underlay6 {
		// IPv4 needs an IPv4 gateway node address: refused, not attempted.
		if len(nodePlan.Peers[0].Refused) != 1 || !nodePlan.Peers[0].Refused[0].Prefix.Addr().Is4() {
			t.Fatalf("over an IPv6 node network the node agent refused %v, want the IPv4 range only", nodePlan.Peers[0].Refused)
		}
	}
	applyIn(t, node, nodePlan.State)
	// The gateway's side: its VXLAN link and sysctls, as agent.Desired
	// gives them to the active gateway (its WireGuard part is other tests').
	key := mustKey(t)
	gwIn := in("gw", gwIP, "va")
	gwIn.PrivateKey = &key
	gwState := agent.Desired(gwIn).State
	delete(gwState.Sysctls, "net/ipv4/conf/"+cfg.WireGuardName+"/rp_filter")
	applyIn(t, gw, dataplane.State{VXLAN: gwState.VXLAN, Sysctls: gwState.Sysctls})

	pingThrough(t, pod, remote6)
	if !underlay6 {
		pingThrough(t, pod, remote4)
	}
	// It went through VXLAN: the gateway's VXLAN link counted it.
	// (`ip netns exec` mounts the namespace's own /sys.)
	if out := strings.TrimSpace(inNS(t, gw, "cat", "/sys/class/net/wsvx0/statistics/rx_packets")); out == "0" {
		t.Errorf("the gateway's VXLAN link received no packet")
	}
	t.Logf("pod %s / %s reached %s over VXLAN (%s)", podIP, podIP6, remote6, map[bool]string{false: "IPv4 underlay", true: "IPv6 underlay"}[underlay6])
}

// applyIn applies st in namespace ns and fails on any refusal.
func applyIn(t *testing.T, ns string, st dataplane.State) {
	t.Helper()
	a := &dataplane.Applier{Kernel: newKernel(t, ns), VXLANName: "wsvx0"}
	if _, err := a.Apply(st); err != nil {
		t.Fatalf("apply in %s: %v", ns, err)
	}
}

// vethLinkLocal is the kernel's link-local address of dev in ns.
func vethLinkLocal(t *testing.T, ns, dev string) string {
	t.Helper()
	for _, f := range strings.Fields(inNS(t, ns, "ip", "-6", "-o", "addr", "show", "dev", dev, "scope", "link")) {
		if strings.HasPrefix(f, "fe80::") {
			return strings.SplitN(f, "/", 2)[0]
		}
	}
	t.Fatalf("no link-local address on %s in %s", dev, ns)
	return ""
}
