// Package network wires a lab's namespaces, links, addresses and routes.
//
// The wiring is written as iproute2 batch scripts and an nftables ruleset,
// computed from the plan by pure functions (Scripts, RouterRuleset) and then
// fed to `ip -batch` and `nft -f`: the scripts are what a person would type,
// docs/lab.md can show them, and a test can read them without root.
package network

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/wirespan/wirespan/test/internal/lab/plan"
)

// Script is a list of `ip` commands run in one network namespace ("" is the
// host's).
type Script struct {
	Netns string
	Lines []string
}

// Scripts returns the wiring in the order it must run: the namespaces
// first, then the host link, the router, the nodes and the pods.
func Scripts(p *plan.Plan) []Script {
	var add []string
	for _, ns := range p.Netns() {
		add = append(add, "netns add "+ns)
	}
	host := []string{fmt.Sprintf("link add %s type veth peer name %s netns %s", p.HostLink, p.RouterHostLink, p.Router)}
	for _, c := range p.Clusters {
		host = append(host, fmt.Sprintf("addr add %s/%d dev %s", c.APIServerIP, p.HostNet.Bits(), p.HostLink))
		if c.Family == plan.IPv6 {
			host = append(host, addr6(c.APIServerIP6, 64, p.HostLink))
		}
	}
	host = append(host,
		fmt.Sprintf("addr add %s/%d dev %s", p.EtcdIP, p.HostNet.Bits(), p.HostLink),
		"link set "+p.HostLink+" up")

	router := []string{
		"link set lo up",
		fmt.Sprintf("addr add %s/%d dev %s", p.RouterIP, p.HostNet.Bits(), p.RouterHostLink),
		"link set " + p.RouterHostLink + " up",
	}
	scripts := []Script{{Lines: add}, {Lines: host}, {Netns: p.Router, Lines: router}}
	for _, c := range p.Clusters {
		lines := []string{
			"link add " + c.Bridge + " type bridge",
			fmt.Sprintf("addr add %s/%d dev %s", c.UnderlayGateway, c.Underlay.Bits(), c.Bridge),
		}
		if c.Family.Has6() {
			lines = append(lines, addr6(c.UnderlayGateway6, c.Underlay6.Bits(), c.Bridge))
		}
		lines = append(lines, "link set "+c.Bridge+" up")
		for _, n := range c.Nodes {
			lines = append(lines,
				fmt.Sprintf("link add %s type veth peer name eth0 netns %s", n.RouterLink, n.Netns),
				fmt.Sprintf("link set %s master %s up", n.RouterLink, c.Bridge))
		}
		scripts = append(scripts, Script{Netns: p.Router, Lines: lines})
		for _, n := range c.Nodes {
			scripts = append(scripts, Script{Netns: n.Netns, Lines: nodeLines(c, n)})
		}
		for _, pod := range c.Pods {
			node, _ := c.Node(pod.Node)
			lines := []string{
				"link set lo up",
				fmt.Sprintf("addr add %s/%d dev eth0", pod.IP, node.PodCIDR.Bits()),
			}
			if c.Family.Has6() {
				lines = append(lines, addr6(pod.IP6, node.PodCIDR6.Bits(), "eth0"))
			}
			lines = append(lines, "link set eth0 up", "route add default via "+node.PodGateway.String())
			if c.Family.Has6() {
				lines = append(lines, "route add ::/0 via "+node.PodGateway6.String())
			}
			scripts = append(scripts, Script{Netns: pod.Netns, Lines: lines})
		}
	}
	return scripts
}

// nodeLines wire one node: its underlay eth0 with the router as default
// gateway, its pod bridge, a route per other node's pod range over the
// underlay (host-gw style, the lab's minimal routed CNI), and a veth per pod.
func nodeLines(c plan.Cluster, n plan.Node) []string {
	six := c.Family.Has6()
	lines := []string{
		"link set lo up",
		fmt.Sprintf("addr add %s/%d dev eth0", n.UnderlayIP, c.Underlay.Bits()),
	}
	if six {
		lines = append(lines, addr6(n.UnderlayIP6, c.Underlay6.Bits(), "eth0"))
	}
	lines = append(lines,
		"link set eth0 up",
		"route add default via "+c.UnderlayGateway.String(),
		"link add "+plan.PodBridge+" type bridge",
		fmt.Sprintf("addr add %s/%d dev %s", n.PodGateway, n.PodCIDR.Bits(), plan.PodBridge))
	if six {
		lines = append(lines,
			"route add ::/0 via "+c.UnderlayGateway6.String(),
			addr6(n.PodGateway6, n.PodCIDR6.Bits(), plan.PodBridge))
	}
	lines = append(lines, "link set "+plan.PodBridge+" up")
	for _, other := range c.Nodes {
		if other.Name == n.Name {
			continue
		}
		lines = append(lines, fmt.Sprintf("route add %s via %s", other.PodCIDR, other.UnderlayIP))
		if six {
			lines = append(lines, fmt.Sprintf("route add %s via %s", other.PodCIDR6, other.UnderlayIP6))
		}
	}
	for _, pod := range c.Pods {
		if pod.Node == n.Name {
			lines = append(lines,
				fmt.Sprintf("link add %s type veth peer name eth0 netns %s", pod.NodeLink, pod.Netns),
				fmt.Sprintf("link set %s master %s up", pod.NodeLink, plan.PodBridge),
				// A pod reaching itself through a Service VIP: with
				// br_netfilter the DNATed frame is bridged back out of the
				// port it came in on, which a bridge only does in hairpin
				// mode (kubenet does the same).
				fmt.Sprintf("link set %s type bridge_slave hairpin on", pod.NodeLink))
		}
	}
	return lines
}

// addr6 is the line that adds an IPv6 address without duplicate address
// detection, which would leave it unusable ("tentative") for a second or
// more after `up`: the plan's addresses are unique by construction.
func addr6(a netip.Addr, bits int, dev string) string {
	return fmt.Sprintf("addr add %s/%d dev %s nodad", a, bits, dev)
}

// ForwardingNetns are the namespaces that route: the router and the nodes.
func ForwardingNetns(p *plan.Plan) []string {
	names := []string{p.Router}
	for _, c := range p.Clusters {
		for _, n := range c.Nodes {
			names = append(names, n.Netns)
		}
	}
	return names
}

// RouterRuleset is the router's nftables ruleset. Traffic to the host is
// masqueraded, so the host needs no routes to the lab's underlays (the lab
// adds none to the host's tables). A NAT cluster's traffic leaving its
// underlay is masqueraded too, and new connections into it are dropped:
// it can call out, nobody can call in, as behind a home router.
func RouterRuleset(p *plan.Plan) string {
	var b strings.Builder
	routerTable(&b, "ip", p, func(plan.Cluster) bool { return true })
	// IPv6 reaches only clusters with IPv6, and never the host.
	if slices.ContainsFunc(p.Clusters, func(c plan.Cluster) bool { return c.NAT && c.Family.Has6() }) {
		routerTable(&b, "ip6", p, func(c plan.Cluster) bool { return c.Family.Has6() })
	}
	return b.String()
}

// routerTable writes the router's table of one nftables family, with the
// NAT rules of the clusters in has.
func routerTable(b *strings.Builder, family string, p *plan.Plan, has func(plan.Cluster) bool) {
	fmt.Fprintf(b, "table %s wirespan-lab {\n", family)
	b.WriteString("\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
	if family == "ip" {
		fmt.Fprintf(b, "\t\toifname %q masquerade\n", p.RouterHostLink)
	}
	for _, c := range p.Clusters {
		if c.NAT && has(c) {
			// Random outside ports, as many home and carrier-grade NATs
			// use: a mapping the router forgets (wirespan-lab remap) comes
			// back on another port. (fully-random: "random" alone derives
			// the port from the flow, so a flow forgotten keeps its port.)
			fmt.Fprintf(b, "\t\tiifname %q oifname != %q masquerade fully-random\n", c.Bridge, c.Bridge)
		}
	}
	b.WriteString("\t}\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n")
	for _, c := range p.Clusters {
		if c.NAT && has(c) {
			fmt.Fprintf(b, "\t\tiifname != %q oifname %q ct state new drop\n", c.Bridge, c.Bridge)
		}
	}
	b.WriteString("\t}\n}\n")
}

// NodeRuleset is a node's nftables ruleset: pod traffic to the host (the
// control planes, outside every cluster network) leaves with the node's
// address, as a CNI's egress masquerade would do, because nothing outside a
// cluster has a route to its pods. Traffic to anywhere else keeps its pod
// source address; that is what Wirespan carries between clusters unNATed.
func NodeRuleset(p *plan.Plan, c plan.Cluster) string {
	return fmt.Sprintf(`table ip wirespan-lab-cni {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr %s ip daddr %s masquerade
	}
}
`, c.PodCIDR, p.HostNet)
}

// ResolvConf is a pod's /etc/resolv.conf, as the kubelet would write it:
// the cluster DNS Service's address of the primary family.
func ResolvConf(c plan.Cluster, pod plan.Pod) string {
	d := plan.ClusterDomain
	return fmt.Sprintf("search %s.svc.%s svc.%s %s\nnameserver %s\noptions ndots:5\n",
		pod.Namespace, d, d, d, c.DNSServiceIPs()[0])
}

// Setup creates what Scripts and RouterRuleset describe, and the pods'
// resolv.conf files under /etc/netns (which `ip netns exec` bind-mounts).
func Setup(p *plan.Plan) error {
	for _, s := range Scripts(p) {
		if err := runBatch(s); err != nil {
			return err
		}
	}
	forward := []string{"net.ipv4.ip_forward=1"}
	if p.HasIPv6() {
		forward = append(forward, "net.ipv6.conf.all.forwarding=1")
	}
	for _, ns := range ForwardingNetns(p) {
		if err := ip(nil, append([]string{"netns", "exec", ns, "sysctl", "-q", "-w"}, forward...)...); err != nil {
			return err
		}
	}
	if err := ip(strings.NewReader(RouterRuleset(p)), "netns", "exec", p.Router, "nft", "-f", "-"); err != nil {
		return err
	}
	for _, c := range p.Clusters {
		for _, n := range c.Nodes {
			if err := ip(strings.NewReader(NodeRuleset(p, c)), "netns", "exec", n.Netns, "nft", "-f", "-"); err != nil {
				return err
			}
		}
		for _, pod := range c.Pods {
			dir := filepath.Join(EtcNetns, pod.Netns)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(ResolvConf(c, pod)), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// EtcNetns is where `ip netns exec` finds per-namespace /etc files.
const EtcNetns = "/etc/netns"

// WireGuardSockets is where userspace WireGuard devices put their control
// sockets, one per interface name.
const WireGuardSockets = "/var/run/wireguard"

// Teardown removes every namespace, host link, /etc/netns folder and
// userspace WireGuard socket whose
// name starts with prefix-, whether or not a plan recorded it (so it also
// cleans up after a crash half-way through Setup). Processes inside the
// namespaces must be stopped first, or a namespace outlives its name.
// It returns what it removed.
func Teardown(prefix string) ([]string, error) {
	var removed []string
	var errs []string
	mark := prefix + "-"
	entries, _ := os.ReadDir("/var/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), mark) {
			if err := ip(nil, "netns", "del", e.Name()); err != nil {
				errs = append(errs, err.Error())
				continue
			}
			removed = append(removed, "netns "+e.Name())
		}
	}
	links, _ := os.ReadDir("/sys/class/net")
	for _, l := range links {
		if strings.HasPrefix(l.Name(), mark) {
			if err := ip(nil, "link", "del", l.Name()); err != nil {
				errs = append(errs, err.Error())
				continue
			}
			removed = append(removed, "link "+l.Name())
		}
	}
	// Userspace WireGuard control sockets are not per namespace, so they
	// outlive the namespaces of gateways that were killed.
	socks, _ := filepath.Glob(filepath.Join(WireGuardSockets, mark+"*.sock"))
	for _, sock := range socks {
		if err := os.Remove(sock); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err.Error())
			continue
		}
		removed = append(removed, sock)
	}
	etc, _ := os.ReadDir(EtcNetns)
	for _, e := range etc {
		if strings.HasPrefix(e.Name(), mark) {
			if err := os.RemoveAll(filepath.Join(EtcNetns, e.Name())); err != nil {
				errs = append(errs, err.Error())
				continue
			}
			removed = append(removed, filepath.Join(EtcNetns, e.Name()))
		}
	}
	if len(errs) > 0 {
		return removed, fmt.Errorf("teardown: %s", strings.Join(errs, "; "))
	}
	return removed, nil
}

func runBatch(s Script) error {
	args := []string{"-batch", "-"}
	if s.Netns != "" {
		args = append([]string{"-n", s.Netns}, args...)
	}
	return ip(strings.NewReader(strings.Join(s.Lines, "\n")+"\n"), args...)
}

// ip runs iproute2's ip with args.
func ip(stdin *strings.Reader, args ...string) error {
	cmd := exec.Command("ip", args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}
