package e2e

// These tests run after lab_test.go (files run in name order): the
// ClusterPeer folder has been applied, and the gateways on each cluster's
// first node bring up the tunnels.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wirespan/wirespan/test/internal/lab/echo"
)

type remotePeer struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Endpoints    []string `json:"endpoints"`
		AllowedCIDRs []string `json:"allowedCIDRs"`
	} `json:"spec"`
	Status struct {
		Role         string   `json:"role"`
		PodCIDRs     []string `json:"podCIDRs"`
		ServiceCIDRs []string `json:"serviceCIDRs"`
		Gateways     []struct {
			Node   string `json:"node"`
			Active bool   `json:"active"`
		} `json:"gateways"`
		Tunnel *struct {
			Endpoint          string `json:"endpoint"`
			LastHandshakeTime string `json:"lastHandshakeTime"`
			RxBytes           int64  `json:"rxBytes"`
			TxBytes           int64  `json:"txBytes"`
			Latency           string `json:"latency"`
		} `json:"tunnel"`
		Conditions []struct {
			Type    string `json:"type"`
			Status  string `json:"status"`
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"conditions"`
	} `json:"status"`
}

func peerIn(t *testing.T, cluster, name string) (remotePeer, error) {
	var p remotePeer
	err := json.Unmarshal([]byte(kubectlIn(t, cluster, "get", "clusterpeer", name, "-o", "json")), &p)
	return p, err
}

func (p remotePeer) condition(typ string) (status, reason, message string) {
	for _, c := range p.Status.Conditions {
		if c.Type == typ {
			return c.Status, c.Reason, c.Message
		}
	}
	return "absent", "", ""
}

// waitConnected waits until every cluster reports every other as Connected
// with the ranges that cluster publishes about itself.
func waitConnected(t *testing.T, timeout time.Duration) {
	t.Helper()
	for _, c := range shared.Clusters {
		for _, o := range shared.Clusters {
			if c.Name == o.Name {
				continue
			}
			eventually(t, timeout, fmt.Sprintf("%s sees %s connected", c.Name, o.Name), func() error {
				p, err := peerIn(t, c.Name, o.Name)
				if err != nil {
					return err
				}
				self, err := peerIn(t, o.Name, o.Name)
				if err != nil {
					return err
				}
				if st, reason, msg := p.condition("Connected"); st != "True" {
					return fmt.Errorf("Connected=%s (%s): %s", st, reason, msg)
				}
				if !slices.Equal(p.Status.PodCIDRs, self.Status.PodCIDRs) || !slices.Equal(p.Status.ServiceCIDRs, self.Status.ServiceCIDRs) {
					return fmt.Errorf("learned %v %v, %s publishes %v %v", p.Status.PodCIDRs, p.Status.ServiceCIDRs, o.Name, self.Status.PodCIDRs, self.Status.ServiceCIDRs)
				}
				if st, _, msg := p.condition("Ready"); st != "True" {
					return fmt.Errorf("Ready=%s: %s", st, msg)
				}
				return nil
			})
		}
	}
}

// Every cluster learns every other's ranges over gossip and reports a live
// tunnel, with its figures, on the remote ClusterPeer; the cluster behind
// NAT, which lists no endpoint, is reached once it dials out.
func TestTunnelsComeUpBetweenEveryPair(t *testing.T) {
	waitConnected(t, 60*time.Second)
	for _, c := range shared.Clusters {
		for _, o := range shared.Clusters {
			if c.Name == o.Name {
				continue
			}
			// Tunnel figures alone are written every --status-period
			// (10 s), and latency needs a gossip probe of that member: they
			// may come a little after Connected.
			var p remotePeer
			eventually(t, 30*time.Second, fmt.Sprintf("%s's view of %s: tunnel figures", c.Name, o.Name), func() error {
				var err error
				if p, err = peerIn(t, c.Name, o.Name); err != nil {
					return err
				}
				tun := p.Status.Tunnel
				if tun == nil || tun.LastHandshakeTime == "" || tun.RxBytes == 0 || tun.TxBytes == 0 || tun.Endpoint == "" || tun.Latency == "" {
					return fmt.Errorf("missing: %+v", tun)
				}
				return nil
			})
			if len(p.Status.Gateways) != 1 || !p.Status.Gateways[0].Active || p.Status.Gateways[0].Node != o.Nodes[0].Name {
				t.Errorf("%s's view of %s: gateways %+v, want %s active", c.Name, o.Name, p.Status.Gateways, o.Nodes[0].Name)
			}
			if o.NAT && len(p.Spec.Endpoints) != 0 {
				t.Errorf("%s is behind NAT but its ClusterPeer lists endpoints %v", o.Name, p.Spec.Endpoints)
			}
		}
	}
	fmt.Println(kubectlIn(t, shared.Clusters[0].Name, "get", "clusterpeers", "-o", "wide"))
}

// A pod on the gateway node and a pod on a node-agent node of every cluster
// reach pods on both nodes of every other cluster, over ICMP and TCP (both
// directions, since every ordered pair is tried), and the receiver sees the
// sender's own pod address: no NAT anywhere on the way.
func TestPodsReachEveryOtherClusterWithoutNAT(t *testing.T) {
	waitConnected(t, 60*time.Second)
	for _, from := range shared.Clusters {
		for _, to := range shared.Clusters {
			if from.Name == to.Name {
				continue
			}
			for _, src := range from.Pods {
				if !strings.HasPrefix(src.Name, "echo-") {
					continue
				}
				for _, dst := range to.Pods {
					if !strings.HasPrefix(dst.Name, "echo-") {
						continue
					}
					what := fmt.Sprintf("%s/%s (%s) -> %s/%s (%s)", from.Name, src.Name, src.IP, to.Name, dst.Name, dst.IP)
					if out, err := inPod(from.Name, src.Name, "ping", "-c", "1", "-W", "2", dst.IP); err != nil {
						t.Errorf("%s: ping: %v\n%s", what, err, out)
					}
					out, err := probe(from.Name, src.Name, "tcp", dst.IP+":8080")
					if err != nil {
						t.Errorf("%s: tcp: %v\n%s", what, err, out)
						continue
					}
					id, err := echo.ParseReply(out)
					switch {
					case err != nil:
						t.Errorf("%s: %v", what, err)
					case id.Cluster != to.Name || id.IP != dst.IP:
						t.Errorf("%s: answered by %s", what, out)
					case id.Client != src.IP:
						t.Errorf("%s: the receiver saw the request come from %s, not the pod's own address", what, id.Client)
					}
				}
			}
		}
	}
}

// A pod reaches another cluster's Service VIP: the gateway routes the
// Service range, and that cluster's kube-proxy picks the backend.
func TestPodReachesAnotherClustersServiceIP(t *testing.T) {
	waitConnected(t, 60*time.Second)
	from, to := shared.Clusters[0], shared.Clusters[1]
	vip := strings.TrimSpace(kubectlIn(t, to.Name, "get", "service", "echo", "-o", "jsonpath={.spec.clusterIP}"))
	seen := map[string]bool{}
	for _, src := range []string{"echo-0", "echo-1"} {
		for range 6 {
			out, err := probe(from.Name, src, "tcp", vip+":8080")
			if err != nil {
				t.Fatalf("%s/%s -> %s's echo Service %s: %v\n%s", from.Name, src, to.Name, vip, err, out)
			}
			id, err := echo.ParseReply(out)
			if err != nil || id.Cluster != to.Name {
				t.Fatalf("%s/%s -> %s: answered %q (%v)", from.Name, src, vip, out, err)
			}
			seen[id.Pod] = true
		}
	}
	t.Logf("%s's echo Service %s answered from %d pods of %s", to.Name, vip, len(seen), to.Name)
}

// gatewayRoutes lists the routes Wirespan installed on a node.
func gatewayRoutes(t *testing.T, cluster, node string) string {
	t.Helper()
	out, err := inPod(cluster, node, "ip", "route", "show", "table", "51820", "proto", "201")
	if err != nil {
		t.Fatalf("routes on %s: %v\n%s", node, err, out)
	}
	return out
}

// A range a peer claims outside the allowedCIDRs its ClusterPeer gives is
// refused: reported as CIDRsAccepted=False and never routed; everything
// else of the peer stays routed. Widening allowedCIDRs again routes it.
func TestClaimOutsideAllowedCIDRsIsRefused(t *testing.T) {
	waitConnected(t, 60*time.Second)
	c, o := shared.Clusters[0], shared.Clusters[1]
	gw := c.Nodes[0].Name
	orig, err := peerIn(t, c.Name, o.Name)
	if err != nil {
		t.Fatal(err)
	}
	published, err := peerIn(t, o.Name, o.Name)
	if err != nil {
		t.Fatal(err)
	}
	service, pods := published.Status.ServiceCIDRs[0], published.Status.PodCIDRs[0]
	// Only the pod range is allowed now, in c only: as if Git had said so.
	patch := func(allowed []string) {
		raw, _ := json.Marshal(map[string]any{"spec": map[string]any{"allowedCIDRs": allowed}})
		kubectlIn(t, c.Name, "patch", "clusterpeer", o.Name, "--type", "merge", "-p", string(raw))
	}
	patch([]string{o.PodCIDRs[0]})
	defer patch(orig.Spec.AllowedCIDRs)
	eventually(t, 20*time.Second, "the Service range is refused", func() error {
		p, err := peerIn(t, c.Name, o.Name)
		if err != nil {
			return err
		}
		if st, reason, msg := p.condition("CIDRsAccepted"); st != "False" || reason != "OutsideAllowedCIDRs" || !strings.Contains(msg, service) {
			return fmt.Errorf("CIDRsAccepted=%s (%s): %s", st, reason, msg)
		}
		for _, node := range c.Nodes {
			routes := gatewayRoutes(t, c.Name, node.Name)
			if strings.Contains(routes, service) {
				return fmt.Errorf("%s still routes %s:\n%s", node.Name, service, routes)
			}
			if !strings.Contains(routes, pods) {
				return fmt.Errorf("%s no longer routes the allowed %s:\n%s", node.Name, pods, routes)
			}
		}
		return nil
	})
	metrics, err := inPod(c.Name, gw, "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3")
	if err != nil || !strings.Contains(metrics, fmt.Sprintf("wirespan_gateway_refused_cidrs{peer=%q,reason=\"OutsideAllowedCIDRs\"} 1", o.Name)) {
		t.Errorf("the refusal is not counted in wirespan_gateway_refused_cidrs: %v\n%s", err, grep(metrics, "wirespan_gateway_refused"))
	}
	patch(orig.Spec.AllowedCIDRs)
	eventually(t, 20*time.Second, "the Service range is routed again", func() error {
		if routes := gatewayRoutes(t, c.Name, gw); !strings.Contains(routes, service) {
			return fmt.Errorf("%s does not route %s:\n%s", gw, service, routes)
		}
		return nil
	})
}

// Every gateway serves Go's profiles on its node's loopback, as the lab
// asks with --pprof-bind-address: the scale benchmark profiles from there.
func TestGatewayServesProfiles(t *testing.T) {
	c := shared.Clusters[0]
	for _, node := range c.Nodes {
		index, err := inPod(c.Name, node.Name, "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/6060; printf 'GET /debug/pprof/ HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3")
		if err != nil || !strings.Contains(index, "200 OK") || !strings.Contains(index, "goroutine") {
			t.Errorf("%s: /debug/pprof/ on 127.0.0.1:6060: %v\n%.300s", node.Name, err, index)
		}
	}
}

func grep(text, what string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, what) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// kernelState is what Wirespan owns in a node's kernel, as the kernel
// prints it, with interface indexes (a recreated link gets a new one).
func kernelState(t *testing.T, cluster, node string) string {
	t.Helper()
	// The operational state of a userspace device's TUN is UP while a
	// process serves it and UNKNOWN in between: the kernel's doing, not a
	// change of configuration, so it is left out.
	script := `ip -o link show | grep -E 'wirespan|wsl' | sed -e 's/link\/ether.*//' -e 's/ state [A-Z]* / /'; ip -o addr show; ` +
		`ip route show table all proto 201; ip rule show; nft list table inet wirespan; ` +
		`sysctl net.ipv4.ip_forward; ls /proc/sys/net/ipv4/conf | while read i; do echo $i $(cat /proc/sys/net/ipv4/conf/$i/rp_filter); done`
	out, err := inPod(cluster, node, "bash", "-c", script)
	if err != nil {
		t.Fatalf("kernel state of %s: %v\n%s", node, err, out)
	}
	return out
}

// A restarted gateway, and a restarted node agent, find the kernel as they
// left it and change nothing in it: same links (same indexes), addresses,
// routes, rules, clamp and sysctls; the tunnel comes back.
func TestRestartChangesNothingInTheKernel(t *testing.T) {
	waitConnected(t, 60*time.Second)
	c := shared.Clusters[0]
	for _, node := range c.Nodes[:2] {
		before := kernelState(t, c.Name, node.Name)
		logPath := filepath.Join(sharedDir, "logs", node.Name+"-wirespan-gateway.log")
		logBefore, _ := os.ReadFile(logPath)
		if out, err := labCmd(sharedDir, sharedInstance, "restart", node.Name+"-wirespan-gateway").CombinedOutput(); err != nil {
			t.Fatalf("restart: %v\n%s", err, out)
		}
		waitConnected(t, 60*time.Second)
		if out, err := inPod(c.Name, "echo-1", "ping", "-c", "1", "-W", "2", shared.Clusters[1].Pods[0].IP); err != nil {
			t.Errorf("no traffic after restarting %s: %v\n%s", node.Name, err, out)
		}
		if after := kernelState(t, c.Name, node.Name); after != before {
			t.Errorf("restarting the gateway on %s changed the kernel:\n--- before\n%s\n--- after\n%s", node.Name, before, after)
		}
		logAfter, _ := os.ReadFile(logPath)
		for _, line := range strings.Split(string(logAfter[len(logBefore):]), "\n") {
			if strings.Contains(line, `"dataplane"`) && !strings.Contains(line, "wireguard") {
				t.Errorf("restart on %s changed: %s", node.Name, line)
			}
		}
	}
}

// Deleting a ClusterPeer (as removing its file from Git does) removes the
// peer, its routes and its state everywhere within seconds; applying the
// folder again brings it back.
func TestPeerDeletedFromGitIsCleanedUp(t *testing.T) {
	waitConnected(t, 60*time.Second)
	gone := shared.Clusters[2]
	start := time.Now()
	for _, c := range shared.Clusters[:2] {
		kubectlIn(t, c.Name, "delete", "clusterpeer", gone.Name)
	}
	for _, c := range shared.Clusters[:2] {
		for _, node := range c.Nodes {
			eventually(t, 10*time.Second, fmt.Sprintf("%s forgets %s", node.Name, gone.Name), func() error {
				routes := gatewayRoutes(t, c.Name, node.Name)
				for _, r := range append(gone.PodCIDRs, gone.ServiceCIDRs...) {
					if strings.Contains(routes, strings.TrimSuffix(r, "/16")) {
						return fmt.Errorf("still routes %s:\n%s", r, routes)
					}
				}
				return nil
			})
		}
		out, err := inPod(c.Name, c.Nodes[0].Name, "wg", "show", c.Nodes[0].WireGuard, "peers")
		if err != nil || strings.Contains(out, gone.PublicKey) {
			t.Errorf("%s's WireGuard device still has %s's key (or wg failed: %v):\n%s", c.Name, gone.Name, err, out)
		}
		if out, err := probe(c.Name, "echo-0", "tcp", gone.Pods[0].IP+":8080"); err == nil {
			t.Errorf("%s still reaches %s after the peer was deleted: %s", c.Name, gone.Name, out)
		}
	}
	t.Logf("peer %s removed from every node in %s", gone.Name, time.Since(start).Round(10*time.Millisecond))
	if out, err := labCmd(sharedDir, sharedInstance, "apply", shared.ClusterPeersDir).CombinedOutput(); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	waitConnected(t, 60*time.Second)
}
