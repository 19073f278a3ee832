package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Forged memberlist traffic against c1's active gateway, from the three
// places an attacker can send it from: a pod on c2's gateway node (its
// packets go through the tunnel with the pod's address), c2's gateway node
// itself (with c2's tunnel address as source, as a host-network pod or a
// compromised node has), and a host on c1's node network (c1's other node,
// routing the tunnel address via the gateway, as any host there can). The
// attacks: memberlist dead and suspect messages for c2's gateway with
// incarnation 0xFFFFFFFF (on main, one such packet evicted a cluster), an
// alive message for a ghost member, a push/pull (a join), and a stream
// longer than any message. Each is dropped by the input rule or refused by
// gossip, and counted; c1's view of c2 and c3 and the pods' traffic are
// the same before and after.
func TestForgedGossipIsRefused(t *testing.T) {
	waitConnected(t, 60*time.Second)
	c1, c2 := shared.Clusters[0], shared.Clusters[1]
	gw1, gw2, agent1 := c1.Nodes[0].Name, c2.Nodes[0].Name, c1.Nodes[1].Name
	if !c1.Nodes[0].Gateway || !c2.Nodes[0].Gateway || c1.Nodes[1].Gateway {
		t.Fatalf("the lab's first nodes are not its gateways: %+v %+v", c1.Nodes, c2.Nodes)
	}
	var podOnGW2 string
	for _, p := range c2.Pods {
		if p.Node == gw2 && strings.HasPrefix(p.Name, "echo-") {
			podOnGW2 = p.Name
		}
	}
	if podOnGW2 == "" {
		t.Fatalf("no echo pod on %s", gw2)
	}
	tunnel1, port := gossipTarget(t, c1.Name, gw1)
	before := honestGossipView(t)

	dead := `\x05\x83\xabIncarnation\xce\xff\xff\xff\xff\xa4Node\xa8c2/c2-n0\xa4From\xa5c3/gw`
	suspect := `\x03` + dead[4:]
	alive := `\x04\x86\xabIncarnation\xce\x00\x00\x00\x01\xa4Node\xa8c2/ghost\xa4Addr\xc4\x04\x0a\x00\x00\x01\xa4Port\xcd\x1f\x0a\xa4Meta\xc4\x00\xa3Vsn\x96\x01\x05\x02\x00\x00\x00`
	udp := func(msg string) string { return fmt.Sprintf("printf '%s' > /dev/udp/%s/%d", msg, tunnel1, port) }
	packets := strings.Join([]string{udp(dead), udp(suspect), udp(alive)}, "; ")
	// A push/pull header, then a user message whose header claims 20 MiB,
	// followed by 20 MiB: more than any message.
	pushPull := fmt.Sprintf("timeout 3 bash -c \"printf '\\x06' > /dev/tcp/%s/%d\"", tunnel1, port)
	long := fmt.Sprintf("timeout 10 bash -c \"{ printf '\\x08\\x81\\xaaUserMsgLen\\xce\\x01\\x40\\x00\\x00'; head -c 20971520 /dev/zero; } > /dev/tcp/%s/%d\"", tunnel1, port)

	drops := nftDrops(t, c1.Name, gw1)
	refused := gossipRefusals(t, c1.Name, gw1)
	// From the pod: dropped in c1's kernel.
	_, _ = inPod(c2.Name, podOnGW2, "bash", "-c", packets+"; "+pushPull)
	// From a host on c1's node network: dropped in c1's kernel.
	route := fmt.Sprintf("ip route replace %s/32 via %s", tunnel1, c1.Nodes[0].UnderlayIP)
	_, _ = inPod(c1.Name, agent1, "bash", "-c", route+"; "+packets+"; "+pushPull+fmt.Sprintf("; ip route del %s/32", tunnel1))
	eventually(t, 10*time.Second, "c1's input rule drops what comes from a pod and from the node network", func() error {
		now := nftDrops(t, c1.Name, gw1)
		if now["udp"] < drops["udp"]+6 || now["tcp"] < drops["tcp"]+2 {
			return fmt.Errorf("drops went from %v to %v, want 6 more UDP and 2 more TCP packets", drops, now)
		}
		return nil
	})
	// From c2's gateway node, with c2's tunnel address: past the rule,
	// refused by gossip.
	_, _ = inPod(c2.Name, gw2, "bash", "-c", packets+"; "+pushPull+"; "+long)
	eventually(t, 20*time.Second, "c1's gossip refuses what comes from c2's tunnel address", func() error {
		now := gossipRefusals(t, c1.Name, gw1)
		if now["membership"] < refused["membership"]+4 || now["stream_size"] < refused["stream_size"]+1 {
			return fmt.Errorf("refusals went from %v to %v, want 4 more membership and 1 more stream_size", refused, now)
		}
		return nil
	})

	// Longer than the lab's export TTL (10 s): an eviction would show.
	time.Sleep(12 * time.Second)
	if after := honestGossipView(t); after != before {
		t.Errorf("c1's view changed:\nbefore %s\n after %s", before, after)
	}
	for _, p := range c2.Pods {
		if strings.HasPrefix(p.Name, "echo-") {
			if out, err := probe(c1.Name, "echo-0", "tcp", p.IP+":8080"); err != nil {
				t.Errorf("c1 echo-0 -> c2 %s after the attacks: %v\n%s", p.Name, err, out)
			}
		}
	}
}

// gossipTarget reads c1's gossip address and port from the input rule on
// its gateway node: it also shows that the rule is in place.
func gossipTarget(t *testing.T, cluster, node string) (addr string, port int) {
	t.Helper()
	out, err := inPod(cluster, node, "nft", "list", "chain", "inet", "wirespan", "gossip-input")
	if err != nil {
		t.Fatalf("no gossip input rule on %s: %v\n%s", node, err, out)
	}
	m := regexp.MustCompile(`"gossip-input drop (\S+) (\d+) udp"`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no drop rule in the gossip input chain:\n%s", out)
	}
	port, _ = strconv.Atoi(m[2])
	return m[1], port
}

// nftDrops returns the packets the gossip input rule dropped, by protocol.
func nftDrops(t *testing.T, cluster, node string) map[string]int {
	t.Helper()
	out, err := inPod(cluster, node, "nft", "list", "chain", "inet", "wirespan", "gossip-input")
	if err != nil {
		t.Fatalf("list the gossip input rule: %v\n%s", err, out)
	}
	drops := map[string]int{}
	for _, m := range regexp.MustCompile(`(tcp|udp) dport \d+ counter packets (\d+)`).FindAllStringSubmatch(out, -1) {
		drops[m[1]], _ = strconv.Atoi(m[2])
	}
	return drops
}

// gossipRefusals returns wirespan_gossip_refused_total by reason.
func gossipRefusals(t *testing.T, cluster, node string) map[string]float64 {
	t.Helper()
	metrics, err := inPod(cluster, node, "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3")
	if err != nil {
		t.Fatalf("metrics of %s: %v", node, err)
	}
	out := map[string]float64{}
	for _, m := range regexp.MustCompile(`wirespan_gossip_refused_total\{reason="(\w+)"\} (\S+)`).FindAllStringSubmatch(metrics, -1) {
		out[m[1]], _ = strconv.ParseFloat(m[2], 64)
	}
	if len(out) == 0 {
		t.Fatalf("no wirespan_gossip_refused_total on %s:\n%s", node, grep(metrics, "wirespan_gossip"))
	}
	return out
}

// honestGossipView is what c1 knows of the other clusters, as text: their
// ranges, active gateway and Connected condition, and how many clusters
// gossip counts present.
func honestGossipView(t *testing.T) string {
	t.Helper()
	c1 := shared.Clusters[0]
	var b strings.Builder
	for _, o := range shared.Clusters[1:] {
		p, err := peerIn(t, c1.Name, o.Name)
		if err != nil {
			t.Fatal(err)
		}
		st, reason, _ := p.condition("Connected")
		fmt.Fprintf(&b, "%s: pods %v services %v gateways %v connected %s (%s); ", o.Name, p.Status.PodCIDRs, p.Status.ServiceCIDRs, p.Status.Gateways, st, reason)
	}
	metrics, err := inPod(c1.Name, c1.Nodes[0].Name, "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3")
	if err != nil {
		t.Fatal(err)
	}
	b.WriteString(grep(metrics, "wirespan_gossip_members "))
	return b.String()
}
