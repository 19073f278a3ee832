package e2e

// A dual-stack clusterset with one IPv4-only cluster, in a lab of its own
// (instance dualInstance): c1 and c2 are dual-stack, c3 is IPv4 only.
// Every pair talks over every family both have, through gateways and node
// agents (VXLAN on both sides), with source addresses kept; Services and
// MCS names work in each family; a family one side lacks is reported, not
// attempted; and restarts change nothing in the kernel.

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wirespan/wirespan/test/internal/lab/echo"
)

const dualInstance = "6"

// familyLab is a lab other than the shared one, driven the same way.
type familyLab struct {
	dir, instance string
	status        *labStatus
	ips           map[string]podIPs // by cluster/pod, from status --json
}

// podIPs are a pod's addresses of each family its cluster has.
type podIPs []netip.Addr

func (ips podIPs) of(is6 bool) netip.Addr {
	for _, ip := range ips {
		if ip.Is6() == is6 {
			return ip
		}
	}
	return netip.Addr{}
}

func TestDualStackClustersetWithAnIPv4OnlyCluster(t *testing.T) {
	l := upFamilyLab(t, dualInstance, "--clusters", "3", "--ip-family", "dual", "--cluster-ip-family", "c3=ipv4")
	if out, err := l.cmd("apply", l.status.ClusterPeersDir).CombinedOutput(); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	l.waitConnected(t)
	t.Run("every pair in every shared family", l.testPairs)
	t.Run("IPv6 is reported between c1 and c3, not attempted", l.testUnsharedFamily)
	t.Run("a Service VIP of each family", l.testServiceVIPs)
	t.Run("MCS names answer A and AAAA", l.testMCS)
	t.Run("restart changes nothing in the kernel", l.testRestart)
	if refused := forbiddenInLogs(l.dir); len(refused) > 0 {
		t.Errorf("the API server refused Wirespan a request:\n%s", strings.Join(refused, "\n"))
	}
}

// upFamilyLab brings up a lab with the given up flags, and takes it down
// (keeping its logs if the test failed) when the test ends.
func upFamilyLab(t *testing.T, instance string, args ...string) *familyLab {
	t.Helper()
	l := &familyLab{dir: filepath.Join(repo, ".cache", "e2e-lab-"+instance), instance: instance, ips: map[string]podIPs{}}
	down := func() {
		if out, err := l.cmd("down").CombinedOutput(); err != nil {
			t.Errorf("down: %v\n%s", err, out)
		}
	}
	down() // what a run killed with -9 left
	t.Cleanup(func() {
		if t.Failed() {
			keepLogs(l.dir)
		}
		down()
	})
	if out, err := l.cmd(append([]string{"up", "--keep-on-failure"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("up %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	out, err := l.cmd("status", "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Clusters []struct {
			Name string `json:"name"`
			Pods []struct {
				Name string   `json:"name"`
				IPs  []string `json:"ips"`
			} `json:"pods"`
		} `json:"clusters"`
	}
	l.status = &labStatus{}
	if err := json.Unmarshal(out, l.status); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatal(err)
	}
	for _, c := range raw.Clusters {
		for _, p := range c.Pods {
			for _, ip := range p.IPs {
				l.ips[c.Name+"/"+p.Name] = append(l.ips[c.Name+"/"+p.Name], netip.MustParseAddr(ip))
			}
		}
	}
	return l
}

func (l *familyLab) cmd(args ...string) *exec.Cmd { return labCmd(l.dir, l.instance, args...) }

// exec runs a command in a pod or node of the lab.
func (l *familyLab) exec(cluster, pod string, argv ...string) (string, error) {
	out, err := l.cmd(append([]string{"exec", cluster, pod, "--"}, argv...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (l *familyLab) kubectl(t *testing.T, cluster string, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(kubectl, append([]string{"--kubeconfig", filepath.Join(l.dir, cluster, "admin.kubeconfig")}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s in %s: %v\n%s", strings.Join(args, " "), cluster, err, out)
	}
	return string(out)
}

// waitConnected waits until every cluster reports every other Connected.
func (l *familyLab) waitConnected(t *testing.T) {
	t.Helper()
	for _, c := range l.status.Clusters {
		for _, o := range l.status.Clusters {
			if c.Name == o.Name {
				continue
			}
			eventually(t, 60*time.Second, fmt.Sprintf("%s sees %s connected", c.Name, o.Name), func() error {
				var p remotePeer
				if err := json.Unmarshal([]byte(l.kubectl(t, c.Name, "", "get", "clusterpeer", o.Name, "-o", "json")), &p); err != nil {
					return err
				}
				if st, reason, msg := p.condition("Connected"); st != "True" {
					return fmt.Errorf("Connected=%s (%s): %s", st, reason, msg)
				}
				return nil
			})
		}
	}
}

// probe asks an echo server who it is and who it saw, over TCP.
func (l *familyLab) probe(cluster, pod string, to netip.AddrPort) (echo.Identity, error) {
	out, err := l.exec(cluster, pod, filepath.Join(l.dir, "bin", "wirespan-lab"), "probe", "--timeout", "2s", "tcp", to.String())
	if err != nil {
		return echo.Identity{}, fmt.Errorf("%w: %s", err, out)
	}
	return echo.ParseReply(out)
}

// testPairs: from each echo pod (echo-0 on the gateway node, echo-1 behind
// a node agent) of each cluster to each echo pod of each other cluster,
// in each family both clusters have: ICMP answers, and a TCP connection
// arrives with the client's own address.
func (l *familyLab) testPairs(t *testing.T) {
	checked := 0
	defer func() {
		// c1-c2 in two families, c1-c3 and c2-c3 in one; both ways, 2 x 2 pods.
		if want := (2 + 1 + 1) * 2 * 4; checked != want {
			t.Errorf("checked %d paths, want %d", checked, want)
		}
	}()
	for _, from := range l.status.Clusters {
		for _, to := range l.status.Clusters {
			if from.Name == to.Name {
				continue
			}
			for _, is6 := range []bool{false, true} {
				for _, src := range []string{"echo-0", "echo-1"} {
					for _, dst := range []string{"echo-0", "echo-1"} {
						s, d := l.ips[from.Name+"/"+src].of(is6), l.ips[to.Name+"/"+dst].of(is6)
						if !s.IsValid() || !d.IsValid() {
							continue // a family one of the two lacks
						}
						l.checkPath(t, from.Name, src, to.Name, s, d)
						checked++
					}
				}
			}
		}
	}
}

func (l *familyLab) checkPath(t *testing.T, from, src, to string, s, d netip.Addr) {
	t.Helper()
	if out, err := l.exec(from, src, "ping", "-c", "1", "-W", "2", d.String()); err != nil {
		t.Errorf("%s/%s %s -> %s %s: ping: %v\n%s", from, src, s, to, d, err, out)
	}
	id, err := l.probe(from, src, netip.AddrPortFrom(d, 8080))
	switch {
	case err != nil:
		t.Errorf("%s/%s -> %s %s: tcp: %v", from, src, to, d, err)
	case id.Cluster != to || id.Client != s.String():
		t.Errorf("%s/%s %s -> %s %s: answered by %s, which saw the client as %s (want %s: no NAT)", from, src, s, to, d, id.Cluster, id.Client, s)
	}
}

// testUnsharedFamily: c1's IPv6 ranges are refused by c3, with the reason
// in c3's status of c1, and neither gateway holds an IPv6 route or
// AllowedIP towards the other.
func (l *familyLab) testUnsharedFamily(t *testing.T) {
	var p remotePeer
	if err := json.Unmarshal([]byte(l.kubectl(t, "c3", "", "get", "clusterpeer", "c1", "-o", "json")), &p); err != nil {
		t.Fatal(err)
	}
	if _, _, msg := p.condition("Connected"); !strings.Contains(msg, "IPv6 is not routed: cluster c3 has no IPv6") {
		t.Errorf("c3's Connected condition of c1 does not report c1's IPv6 ranges: %q", msg)
	}
	for _, c := range []string{"c1", "c3"} {
		node := c + "-n0"
		out, err := l.exec(c, node, "ip", "-6", "route", "show", "table", "all", "proto", "201")
		if err != nil {
			t.Fatal(err)
		}
		if c == "c3" && strings.TrimSpace(out) != "" {
			t.Errorf("the IPv4-only c3 has IPv6 routes:\n%s", out)
		}
		if c == "c1" && strings.Contains(out, "fd00:10:3") {
			t.Errorf("c1 routes IPv6 to c3:\n%s", out)
		}
		wg, err := l.exec(c, node, "wg", "show", "wsl"+l.instance+"-"+node, "allowed-ips")
		if err != nil {
			t.Fatalf("wg show: %v\n%s", err, wg)
		}
		for _, line := range strings.Split(wg, "\n") {
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			for _, ip := range f[1:] {
				if strings.Contains(ip, ":") && (c == "c3" || strings.HasPrefix(ip, "fd00:10:3")) {
					t.Errorf("%s's WireGuard peer %s holds %s: no IPv6 between c1 and c3", c, f[0], ip)
				}
			}
		}
	}
}

// testServiceVIPs: c1's pods reach c2's echo Service at its ClusterIP of
// each family, and c3's at its IPv4 one; the answer comes from the
// Service's cluster.
func (l *familyLab) testServiceVIPs(t *testing.T) {
	for _, to := range []string{"c2", "c3"} {
		vips := strings.Fields(l.kubectl(t, to, "", "get", "service", "echo", "-o", "jsonpath={.spec.clusterIPs[*]}"))
		if want := map[string]int{"c2": 2, "c3": 1}[to]; len(vips) != want {
			t.Fatalf("%s's echo Service has ClusterIPs %v, want %d", to, vips, want)
		}
		for _, vip := range vips {
			for _, src := range []string{"echo-0", "echo-1"} {
				id, err := l.probe("c1", src, netip.AddrPortFrom(netip.MustParseAddr(vip), 8080))
				if err != nil || id.Cluster != to {
					t.Errorf("c1/%s -> %s's echo Service %s: %+v %v", src, to, vip, id, err)
				}
			}
		}
	}
}

// testMCS: the dual-stack echo Service exported from c2 is imported in
// c1 with a VIP of each family and in c3 with an IPv4 one; its clusterset
// name answers A and AAAA in c1, only A in c3, and both VIPs connect.
func (l *familyLab) testMCS(t *testing.T) {
	l.kubectl(t, "c2", "apiVersion: multicluster.x-k8s.io/v1beta1\nkind: ServiceExport\nmetadata:\n  name: echo\n  namespace: default\n", "apply", "-f", "-")
	name := "echo.default.svc.clusterset.local"
	for _, tc := range []struct {
		cluster string
		a, aaaa bool
	}{{"c1", true, true}, {"c3", true, false}} {
		for _, qtype := range []string{"A", "AAAA"} {
			want := map[string]bool{"A": tc.a, "AAAA": tc.aaaa}[qtype]
			var answers []string
			eventually(t, 30*time.Second, fmt.Sprintf("%s %s in %s", name, qtype, tc.cluster), func() error {
				out, err := l.exec(tc.cluster, "echo-0", "dig", "+time=1", "+tries=2", "+short", name, qtype)
				if err != nil {
					return fmt.Errorf("dig: %w: %s", err, out)
				}
				answers = strings.Fields(out)
				if (len(answers) > 0) != want {
					return fmt.Errorf("answers %v", answers)
				}
				return nil
			})
			for _, a := range answers {
				ip, err := netip.ParseAddr(a)
				if err != nil || ip.Is6() != (qtype == "AAAA") {
					t.Errorf("%s %s in %s: answer %q", name, qtype, tc.cluster, a)
					continue
				}
				eventually(t, 30*time.Second, fmt.Sprintf("%s's import %s connects", tc.cluster, ip), func() error {
					id, err := l.probe(tc.cluster, "echo-1", netip.AddrPortFrom(ip, 8080))
					if err == nil && id.Cluster != "c2" {
						err = fmt.Errorf("answered by %s", id.Cluster)
					}
					return err
				})
			}
		}
	}
}

// kernelState is the shared lab's kernelState with the IPv6 side: addresses, routes,
// rules and forwarding.
func (l *familyLab) kernelState(t *testing.T, cluster, node string) string {
	t.Helper()
	// The kernel's duplicate address detection on the link-local address
	// it gives a new link (" tentative" for a second or two) is its own
	// doing, like a TUN's operational state, not configuration; a link
	// made again shows as a new index anyway.
	script := `ip -o link show | grep -E 'wirespan|wsl' | sed -e 's/link\/ether.*//' -e 's/ state [A-Z]* / /'; ` +
		`ip -o addr show | sed -e 's/ tentative / /'; ` +
		`ip route show table all proto 201; ip -6 route show table all proto 201; ip rule show; ip -6 rule show; ` +
		`ip neigh show nud permanent; ip -6 neigh show nud permanent; nft list table inet wirespan; ` +
		`sysctl net.ipv4.ip_forward net.ipv6.conf.all.forwarding`
	out, err := l.exec(cluster, node, "bash", "-c", script)
	if err != nil {
		t.Fatalf("kernel state of %s: %v\n%s", node, err, out)
	}
	return out
}

// testRestart: restarting the gateway and the node agent of a dual-stack
// cluster leaves the kernel as it was, in both families, and IPv6
// traffic flows again through both.
func (l *familyLab) testRestart(t *testing.T) {
	for _, node := range []string{"c1-n0", "c1-n1"} {
		before := l.kernelState(t, "c1", node)
		if out, err := l.cmd("restart", node+"-wirespan-gateway").CombinedOutput(); err != nil {
			t.Fatalf("restart: %v\n%s", err, out)
		}
		l.waitConnected(t)
		s, d := l.ips["c1/echo-1"].of(true), l.ips["c2/echo-1"].of(true)
		eventually(t, 30*time.Second, "IPv6 after restarting "+node, func() error {
			_, err := l.probe("c1", "echo-1", netip.AddrPortFrom(d, 8080))
			return err
		})
		l.checkPath(t, "c1", "echo-1", "c2", s, d)
		if after := l.kernelState(t, "c1", node); after != before {
			t.Errorf("restarting %s changed the kernel:\n--- before\n%s\n--- after\n%s", node, before, after)
		}
	}
}
