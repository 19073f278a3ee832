package linux

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wirespan/wirespan/gateway/internal/agent"
	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

// The gateway tests run two gateways' data planes as the gateway binary
// runs its own: a process per node namespace, computing its state with
// agent.Desired and applying it with dataplane.Applier on this package's
// Kernel. Only the inputs differ: fixed here, from the API server and
// gossip there.
//
//	podA 10.201.0.10 ─veth─ nodeA ══ WireGuard over va/vb (192.168.77.0/24) ══ nodeB ─veth─ podB 10.202.0.10

// helperGatewayEnv holds a gatewayConfig in JSON for the "gateway" helper.
const helperGatewayEnv = "WIRESPAN_LINUX_TEST_GATEWAY"

// gatewayConfig is what one test gateway knows.
type gatewayConfig struct {
	Cluster, Node, Underlay, Dev string
	NodeIP                       netip.Addr
	PodCIDR                      netip.Prefix
	// PodCIDR6 makes the cluster dual-stack; zero: IPv4 only.
	PodCIDR6 netip.Prefix
	Key      wgtypes.Key
	Peer     gatewayPeer
}

type gatewayPeer struct {
	Cluster   string
	PublicKey wgtypes.Key
	Endpoint  netip.AddrPort
	PodCIDR   netip.Prefix
	PodCIDR6  netip.Prefix
}

// validPrefixes are those of ps that are set.
func validPrefixes(ps ...netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.IsValid() {
			out = append(out, p)
		}
	}
	return out
}

// gatewayReport is what the gateway helper prints once its state is in.
type gatewayReport struct {
	// Kind is the WireGuard link's kind: wireguard (kernel) or tun.
	Kind string
	// Changes are what Apply changed; a restarted gateway over a kernel
	// that kept its state changes nothing.
	Changes []string
}

const gatewayTable = 51820

func (c gatewayConfig) applier(k dataplane.Kernel) *dataplane.Applier {
	return &dataplane.Applier{Kernel: k, WireGuardName: c.Dev, VXLANName: "wsvx-unused"}
}

// desired is the gateway's state, from agent.Desired as the gateway
// computes it.
func (c gatewayConfig) desired() dataplane.State {
	return agent.Desired(agent.Inputs{
		Config: agent.Config{
			WireGuardName: c.Dev, ListenPort: tunnelPort, TunnelCIDR: netip.MustParsePrefix("100.96.0.0/16"),
			TunnelCIDR6: netip.MustParsePrefix("fd77:7370:616e::/64"),
			Table:       gatewayTable, RulePriority: 100, Mode: agent.RouteDirect,
		},
		Cluster:         c.Cluster,
		Node:            agent.Node{Name: c.Node, IP: c.NodeIP, Underlay: c.Underlay, UnderlayMTU: 1500},
		Gateways:        []agent.Gateway{{Node: c.Node, IP: c.NodeIP}},
		Active:          c.Node,
		PrivateKey:      &c.Key,
		SelfRanges:      validPrefixes(c.PodCIDR, c.PodCIDR6),
		SelfHasEndpoint: true,
		Peers: []agent.Peer{{
			Cluster: c.Peer.Cluster, PublicKey: c.Peer.PublicKey.String(),
			Endpoints:    []netip.AddrPort{c.Peer.Endpoint},
			AllowedCIDRs: validPrefixes(c.Peer.PodCIDR, c.Peer.PodCIDR6), Claims: validPrefixes(c.Peer.PodCIDR, c.Peer.PodCIDR6),
		}},
	}).State
}

// serveGateway is the "gateway" helper: it applies the gateway's state in
// the namespace it runs in, as the gateway does, reports, and runs until
// its stdin closes or it is killed. It
// never closes its Kernel: a userspace device stops with the process.
func serveGateway(cfg string) error {
	var c gatewayConfig
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		return err
	}
	k, err := New(Options{WireGuardMode: testMode()})
	if err != nil {
		return err
	}
	a, want := c.applier(k), c.desired()
	var rep gatewayReport
	changes, err := a.Apply(want)
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	rep.Changes = changes
	l, ok, err := k.Link(c.Dev)
	if err != nil || !ok {
		return fmt.Errorf("link %s after apply: %v, %w", c.Dev, ok, err)
	}
	rep.Kind = l.Kind
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
}

// gatewayProc is a running gateway helper.
type gatewayProc struct {
	cmd    *exec.Cmd
	stdin  io.Closer
	report gatewayReport
}

// startGateway runs the gateway helper for c in ns with WireGuard mode
// mode, and waits for its report. The process is killed, if still running,
// when the test ends.
func startGateway(t *testing.T, ns string, c gatewayConfig, mode WireGuardMode) *gatewayProc {
	t.Helper()
	cfg, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	cmd, stdin, line := startServing(t, ns, helperEnv+"=gateway", helperGatewayEnv+"="+string(cfg), modeEnv+"="+string(mode))
	g := &gatewayProc{cmd: cmd, stdin: stdin}
	t.Cleanup(func() { g.kill() })
	if err := json.Unmarshal(line, &g.report); err != nil {
		t.Fatalf("gateway %s report %q: %v", c.Node, line, err)
	}
	return g
}

// kill ends the gateway as a crash or OOM kill would: SIGKILL, nothing
// cleaned up. It is a no-op once the process has ended.
func (g *gatewayProc) kill() {
	if g.cmd.ProcessState != nil {
		return
	}
	_ = g.cmd.Process.Kill()
	_ = g.cmd.Wait()
	_ = g.stdin.Close()
}

// cluster is one side of a gateway pair: a node namespace holding the
// gateway, and a pod namespace behind it.
type cluster struct {
	node, pod string
	podIP     netip.Addr
	// podIP6 is the pod's IPv6 address in a dual-stack test; else zero.
	podIP6 netip.Addr
	cfg    gatewayConfig
	// gw is the gateway process last started, if any.
	gw *gatewayProc
}

// start runs the cluster's gateway in mode; see startGateway.
func (c *cluster) start(t *testing.T, mode WireGuardMode) *gatewayProc {
	t.Helper()
	c.gw = startGateway(t, c.node, c.cfg, mode)
	return c.gw
}

// gatewayPair builds two clusters whose nodes are joined by a veth pair and
// returns them with matching gateway configurations. Nothing runs yet.
func gatewayPair(t *testing.T) (a, b *cluster) {
	t.Helper()
	nodeA, nodeB := vethPair(t)
	keyA, keyB := mustKey(t), mustKey(t)
	a = &cluster{node: nodeA, cfg: gatewayConfig{
		Cluster: "a", Node: "node-a", Underlay: "va", Dev: devName(), NodeIP: netip.MustParseAddr("192.168.77.1"),
		PodCIDR: netip.MustParsePrefix("10.201.0.0/24"), Key: keyA,
	}}
	b = &cluster{node: nodeB, cfg: gatewayConfig{
		Cluster: "b", Node: "node-b", Underlay: "vb", Dev: devName(), NodeIP: netip.MustParseAddr("192.168.77.2"),
		PodCIDR: netip.MustParsePrefix("10.202.0.0/24"), Key: keyB,
	}}
	for _, pair := range [][2]*cluster{{a, b}, {b, a}} {
		self, peer := pair[0], pair[1]
		self.cfg.Peer = gatewayPeer{Cluster: peer.cfg.Cluster, PublicKey: peer.cfg.Key.PublicKey(),
			Endpoint: netip.AddrPortFrom(peer.cfg.NodeIP, tunnelPort), PodCIDR: peer.cfg.PodCIDR}
		self.pod, self.podIP = addPod(t, self.node, self.cfg.PodCIDR)
	}
	return a, b
}

// addPod makes a pod namespace behind node, joined by a veth pair: the
// node side gets the first address of cidr, the pod the tenth, with a
// default route through the node.
func addPod(t *testing.T, node string, cidr netip.Prefix) (string, netip.Addr) {
	t.Helper()
	pod := newNS(t)
	gw := cidr.Addr().Next()
	ip := cidr.Addr()
	for range 10 {
		ip = ip.Next()
	}
	bits := fmt.Sprintf("/%d", cidr.Bits())
	run(t, "ip", "link", "add", "host0", "netns", node, "type", "veth", "peer", "name", "eth0", "netns", pod)
	inNS(t, node, "ip", "addr", "add", gw.String()+bits, "dev", "host0")
	inNS(t, node, "ip", "link", "set", "host0", "up")
	inNS(t, pod, "ip", "addr", "add", ip.String()+bits, "dev", "eth0")
	inNS(t, pod, "ip", "link", "set", "eth0", "up")
	inNS(t, pod, "ip", "route", "add", "default", "via", gw.String())
	return pod, ip
}

// teardown stops the gateway, removes its state from the node as
// `wirespan-gateway teardown` does, and checks that nothing of it is left.
func (c *cluster) teardown(t *testing.T) {
	t.Helper()
	if c.gw != nil {
		c.gw.kill()
	}
	k := newKernelMode(t, c.node, WireGuardAuto)
	changes, err := c.cfg.applier(k).Apply(dataplane.State{Table: gatewayTable})
	if err != nil {
		t.Fatalf("teardown in %s: %v", c.node, err)
	}
	t.Logf("teardown in %s: %s", c.node, strings.Join(changes, "; "))
	var left []string
	for _, check := range []struct {
		what string
		args []string
	}{
		{"routes", []string{"ip", "route", "show", "table", "all", "proto", "201"}},
		{"nftables", []string{"nft", "list", "table", "inet", FilterTable}},
	} {
		out, _ := runErr("ip", append([]string{"netns", "exec", c.node}, check.args...)...)
		if strings.TrimSpace(out) != "" && !strings.Contains(out, "No such file") {
			left = append(left, check.what+": "+strings.TrimSpace(out))
		}
	}
	// iproute2 6.1 cannot filter rules by protocol.
	for _, family := range []string{"-4", "-6"} {
		if out := inNS(t, c.node, "ip", family, "rule", "show"); strings.Contains(out, fmt.Sprintf("lookup %d", gatewayTable)) {
			left = append(left, "rules: "+strings.TrimSpace(out))
		}
	}
	if _, err := runErr("ip", "netns", "exec", c.node, "ip", "link", "show", "dev", c.cfg.Dev); err == nil {
		left = append(left, "link "+c.cfg.Dev)
	}
	if _, err := os.Stat(socketPath(c.cfg.Dev)); err == nil {
		left = append(left, "socket "+socketPath(c.cfg.Dev))
	}
	if len(left) > 0 {
		t.Errorf("teardown left in %s: %s", c.node, strings.Join(left, "; "))
	}
}
