package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStatusJSONDescribesTheLab(t *testing.T) {
	s := shared
	if s.Version != 1 || !s.Up || len(s.Clusters) != 3 {
		t.Fatalf("version %d, up %v, %d clusters", s.Version, s.Up, len(s.Clusters))
	}
	var ranges []netip.Prefix
	for _, c := range s.Clusters {
		if _, err := os.Stat(c.Kubeconfig); err != nil {
			t.Errorf("%s: kubeconfig: %v", c.Name, err)
		}
		if c.NAT != (c.Name == natCluster) {
			t.Errorf("%s: nat %v", c.Name, c.NAT)
		}
		pods := netip.MustParsePrefix(c.PodCIDRs[0])
		svcs := netip.MustParsePrefix(c.ServiceCIDRs[0])
		ranges = append(ranges, pods, svcs)
		if !svcs.Contains(netip.MustParseAddr(c.ClusterDNS)) {
			t.Errorf("%s: cluster DNS %s outside %s", c.Name, c.ClusterDNS, svcs)
		}
		gateways := 0
		for _, n := range c.Nodes {
			if n.Gateway {
				gateways++
			}
			if _, err := os.Stat(filepath.Join("/var/run/netns", n.Netns)); err != nil {
				t.Errorf("%s: netns: %v", n.Name, err)
			}
		}
		if gateways != 1 {
			t.Errorf("%s: %d gateway nodes", c.Name, gateways)
		}
		for _, p := range c.Pods {
			if !pods.Contains(netip.MustParseAddr(p.IP)) {
				t.Errorf("%s/%s: IP %s outside %s", p.Namespace, p.Name, p.IP, pods)
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
	for _, p := range s.Processes {
		if !p.Running {
			t.Errorf("process %s (pid %d) is not running; see %s", p.Name, p.PID, p.Log)
		}
	}
}

// The real EndpointSlice controller saw the lab's pods, kube-proxy serves
// the Service VIP on every node, and pods reach each other across nodes.
func TestPodsReachEachOtherInsideACluster(t *testing.T) {
	for _, c := range shared.Clusters {
		t.Run(c.Name, func(t *testing.T) {
			var echoes []string
			for _, p := range c.Pods {
				if strings.HasPrefix(p.Name, "echo-") {
					echoes = append(echoes, p.Name)
				}
			}
			podIP := map[string]string{}
			for _, p := range c.Pods {
				podIP[p.Name] = p.IP
			}
			for _, from := range echoes {
				for _, to := range c.Pods {
					if !strings.HasPrefix(to.Name, "echo-") {
						continue
					}
					for _, network := range []string{"tcp", "udp"} {
						got, err := probe(c.Name, from, network, to.IP+":8080")
						want := fmt.Sprintf("cluster=%s pod=default/%s ip=%s client=%s", c.Name, to.Name, to.IP, podIP[from])
						if err != nil || got != want {
							t.Errorf("%s -> %s over %s: %q, %v; want %q", from, to.Name, network, got, err, want)
						}
					}
				}
			}
			// Through the Service VIP, by its DNS name: every backend
			// answers eventually (kube-proxy picks at random).
			seen := map[string]bool{}
			for i := 0; i < 40 && len(seen) < len(echoes); i++ {
				got, err := probe(c.Name, echoes[0], "tcp", "echo.default.svc.cluster.local:8080")
				if err != nil {
					t.Fatalf("echo Service from %s: %v (%s)", echoes[0], err, got)
				}
				seen[got] = true
			}
			if len(seen) != len(echoes) {
				t.Errorf("the echo Service reached %d of %d backends: %v", len(seen), len(echoes), seen)
			}
		})
	}
}

// CoreDNS answers for the cluster's Services with their real ClusterIPs.
func TestClusterDNSResolvesServices(t *testing.T) {
	for _, c := range shared.Clusters {
		ip := strings.TrimSpace(kubectlIn(t, c.Name, "get", "service", "echo", "-n", "default", "-o", "jsonpath={.spec.clusterIP}"))
		got, err := inPod(c.Name, "echo-1", "dig", "+short", "+time=2", "echo.default.svc.cluster.local")
		if err != nil || got != ip {
			t.Errorf("%s: dig echo.default.svc.cluster.local = %q (%v), want the ClusterIP %s", c.Name, got, err, ip)
		}
		// Through the pod's resolv.conf search path, as applications do.
		got, err = inPod(c.Name, "echo-1", "dig", "+short", "+search", "+time=2", "echo")
		if err != nil || got != ip {
			t.Errorf("%s: dig +search echo = %q (%v), want %s", c.Name, got, err, ip)
		}
	}
}

// Before Wirespan peers them, no pod reaches another cluster, although the
// nodes' underlays are routed to each other (where tunnels will go), except
// into the cluster behind NAT.
func TestClustersAreIsolatedBeforePeering(t *testing.T) {
	for _, from := range shared.Clusters {
		for _, to := range shared.Clusters {
			if from.Name == to.Name {
				continue
			}
			target := to.Pods[0]
			if got, err := probe(from.Name, "echo-0", "tcp", target.IP+":8080"); err == nil {
				t.Errorf("%s reached pod %s of %s before peering: %s", from.Name, target.IP, to.Name, got)
			}
			_, err := inPod(from.Name, from.Nodes[0].Name, "ping", "-c", "1", "-W", "1", to.Nodes[0].UnderlayIP)
			if wantReach := !to.NAT; (err == nil) != wantReach {
				t.Errorf("underlay %s -> %s (%s): reached=%v, want %v", from.Nodes[0].Name, to.Nodes[0].Name, to.Nodes[0].UnderlayIP, err == nil, wantReach)
			}
		}
	}
}

type clusterPeerList struct {
	Items []struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			PublicKey string   `json:"publicKey"`
			Endpoints []string `json:"endpoints"`
		} `json:"spec"`
		Status struct {
			Role         string   `json:"role"`
			PublicKey    string   `json:"publicKey"`
			PodCIDRs     []string `json:"podCIDRs"`
			ServiceCIDRs []string `json:"serviceCIDRs"`
			Conditions   []struct {
				Type   string `json:"type"`
				Status string `json:"status"`
			} `json:"conditions"`
		} `json:"status"`
	} `json:"items"`
}

// The ClusterPeer folder, applied unchanged to every cluster as from Git,
// reaches every cluster, and each cluster's operator publishes its own
// CIDRs and key on its own ClusterPeer. It is applied as a user outside
// the checkout would, naming only the lab's folder: the lab runs the
// kubectl it was brought up with.
func TestClusterPeersFromGitReachEveryCluster(t *testing.T) {
	apply := exec.Command(labBin, "apply", "--state-dir", sharedDir, shared.ClusterPeersDir)
	apply.Dir = t.TempDir()
	out, err := apply.CombinedOutput()
	if err != nil {
		t.Fatalf("wirespan-lab apply: %v\n%s", err, out)
	}
	var names []string
	for _, c := range shared.Clusters {
		names = append(names, c.Name)
	}
	for _, c := range shared.Clusters {
		eventually(t, 20*time.Second, c.Name+" publishes itself", func() error {
			var l clusterPeerList
			if err := json.Unmarshal([]byte(kubectlIn(t, c.Name, "get", "clusterpeers", "-o", "json")), &l); err != nil {
				return err
			}
			var got []string
			for _, p := range l.Items {
				got = append(got, p.Metadata.Name)
				if p.Metadata.Name != c.Name {
					if p.Status.Role != "Remote" {
						return fmt.Errorf("%s: role %q", p.Metadata.Name, p.Status.Role)
					}
					continue
				}
				var nodeCIDRs []string
				for _, n := range c.Nodes {
					nodeCIDRs = append(nodeCIDRs, n.PodCIDR)
				}
				if p.Status.Role != "Self" || !slices.Equal(p.Status.ServiceCIDRs, c.ServiceCIDRs) ||
					p.Status.PublicKey != c.PublicKey || p.Spec.PublicKey != c.PublicKey || !covers(p.Status.PodCIDRs, nodeCIDRs) {
					return fmt.Errorf("self status %+v; want pod CIDRs covering %v, service CIDRs %v, key %s", p.Status, nodeCIDRs, c.ServiceCIDRs, c.PublicKey)
				}
				keyMatches := "absent"
				for _, cond := range p.Status.Conditions {
					if cond.Type == "KeyMatches" {
						keyMatches = cond.Status
					}
				}
				if keyMatches != "True" {
					return fmt.Errorf("KeyMatches is %s, want True", keyMatches)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, names) {
				return fmt.Errorf("ClusterPeers %v, want %v", got, names)
			}
			return nil
		})
	}
	fmt.Println(kubectlIn(t, shared.Clusters[0].Name, "get", "clusterpeers"))
}

// covers says whether the summarised ranges hold exactly the addresses of
// the nodes' ranges (the lab's node ranges are adjacent, so the summary
// must not stretch past them).
func covers(summary, parts []string) bool {
	size := func(ps []string) (n uint64) {
		for _, s := range ps {
			p := netip.MustParsePrefix(s)
			n += 1 << (32 - p.Bits())
		}
		return n
	}
	for _, part := range parts {
		in := false
		for _, s := range summary {
			if netip.MustParsePrefix(s).Contains(netip.MustParsePrefix(part).Addr()) {
				in = true
			}
		}
		if !in {
			return false
		}
	}
	return size(summary) == size(parts)
}

func TestUpOverARunningLabRefuses(t *testing.T) {
	out, err := labCmd(sharedDir, sharedInstance, "up").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already up") {
		t.Fatalf("up over a running lab: %v\n%s", err, out)
	}
	// And it touched nothing: the lab still answers.
	if _, err := probe("c1", "echo-0", "tcp", shared.Clusters[0].Pods[1].IP+":8080"); err != nil {
		t.Errorf("lab damaged by a refused up: %v", err)
	}
}

// trace is what a lab leaves on the machine: network namespaces, host
// links, /etc/netns folders and processes naming its state folder.
func trace(t *testing.T, prefix, stateDir string) []string {
	t.Helper()
	var found []string
	for _, dir := range []string{"/var/run/netns", "/sys/class/net", "/etc/netns"} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), prefix+"-") {
				found = append(found, filepath.Join(dir, e.Name()))
			}
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		raw, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(raw), stateDir) {
			found = append(found, p+": "+strings.ReplaceAll(string(raw), "\x00", " "))
		}
	}
	if _, err := os.Stat(stateDir); err == nil {
		found = append(found, stateDir)
	}
	return found
}

// A lab killed half-way through `up` (the lab command itself crashing) is
// still removed completely by `down`, even with its record deleted.
func TestDownRemovesEverythingAfterACrashedUp(t *testing.T) {
	const instance, prefix = "2", "wsl2"
	dir := filepath.Join(t.TempDir(), "lab")
	t.Cleanup(func() { _ = labCmd(dir, instance, "down").Run() })
	if left := trace(t, prefix, dir); len(left) > 0 {
		t.Fatalf("instance %s is not clean before the test: %v", instance, left)
	}
	// Kill it once the API server is ready: namespaces, links, etcd and
	// the apiserver exist, and the lab has not finished.
	up := startUpUntil(t, dir, instance, "controller managers")
	_ = up.Process.Signal(syscall.SIGKILL)
	_ = up.Wait()
	left := trace(t, prefix, dir)
	procs := 0
	for _, l := range left {
		if strings.HasPrefix(l, "/proc/") {
			procs++
		}
	}
	if procs < 2 {
		t.Fatalf("the killed up left %d processes (%v); the test kills it too early to mean anything", procs, left)
	}
	if err := os.Remove(filepath.Join(dir, "state.json")); err != nil {
		t.Fatal(err)
	}
	out, err := labCmd(dir, instance, "down").CombinedOutput()
	if err != nil {
		t.Fatalf("down: %v\n%s", err, out)
	}
	t.Logf("down said: %s", out)
	if left := trace(t, prefix, dir); len(left) > 0 {
		t.Errorf("down left behind: %s", strings.Join(left, "\n"))
	}
	// A second down has nothing to do and says so without failing.
	if out, err := labCmd(dir, instance, "down").CombinedOutput(); err != nil {
		t.Errorf("second down: %v\n%s", err, out)
	}
}

// startUpUntil starts `up` of a one-cluster lab and returns once it has
// printed marker (the name of a phase that has begun).
func startUpUntil(t *testing.T, dir, instance, marker string) *exec.Cmd {
	t.Helper()
	up := labCmd(dir, instance, "up", "--clusters", "1")
	stdout, err := up.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var printed strings.Builder
	for !strings.Contains(printed.String(), marker) {
		n, err := stdout.Read(buf)
		printed.Write(buf[:n])
		if err != nil {
			t.Fatalf("up ended before %q: %v\n%s", marker, err, printed.String())
		}
	}
	// Keep draining, so up never blocks on a full pipe.
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return up
}

// Ctrl-C during up: up itself tears down everything it made.
func TestInterruptedUpLeavesNothingBehind(t *testing.T) {
	const instance, prefix = "2", "wsl2"
	dir := filepath.Join(t.TempDir(), "lab")
	t.Cleanup(func() { _ = labCmd(dir, instance, "down").Run() })
	up := startUpUntil(t, dir, instance, "API servers")
	_ = up.Process.Signal(os.Interrupt)
	if err := up.Wait(); err == nil {
		t.Error("an interrupted up exited 0")
	}
	if left := trace(t, prefix, dir); len(left) > 0 {
		t.Errorf("an interrupted up left behind: %s", strings.Join(left, "\n"))
	}
}

// The full cycle for the one-cluster lab a user might start: up, status,
// down, and nothing left.
func TestUpDownLeavesNothingBehind(t *testing.T) {
	const instance, prefix = "3", "wsl3"
	dir := filepath.Join(t.TempDir(), "lab")
	t.Cleanup(func() { _ = labCmd(dir, instance, "down").Run() })
	if before := trace(t, prefix, dir); len(before) > 0 {
		t.Fatalf("instance %s is not clean before the test: %v", instance, before)
	}
	if out, err := labCmd(dir, instance, "up", "--clusters", "1", "--nodes", "1").CombinedOutput(); err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	if s, err := status(dir, instance); err != nil || !s.Up {
		t.Fatalf("status after up: %+v %v", s, err)
	}
	out, err := labCmd(dir, instance, "down").CombinedOutput()
	if err != nil {
		t.Fatalf("down: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "removed 4 network namespaces") {
		t.Errorf("down did not say what it removed: %s", out)
	}
	if left := trace(t, prefix, dir); len(left) > 0 {
		t.Errorf("left behind: %s", strings.Join(left, "\n"))
	}
}
