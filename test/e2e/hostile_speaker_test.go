package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wirespan/wirespan/internal/syncbuf"
)

// The moves c2's admin makes with c2's key, through hostilepeer
// (gateway/internal/gossip/hostilepeer), a gossip speaker that holds the
// key and sends what no honest gateway would, from c2's active gateway
// node:
//
//  1. beside c2's real gateway, on another port of c2's tunnel address:
//     c1 and c3 answer to the gossip port of the address derived from c2's
//     key, which the real gateway holds, so the speaker never learns their
//     epochs, and every message of it is refused as unproven
//     (wirespan_gossip_messages_received_total{result="unproven"});
//  2. in place of c2's real gateway, what c2's root can do on its own node:
//     a stateless rule in the node's namespace hands the gossip port to the
//     speaker (the real gateway keeps the tunnel: the lab's WireGuard is in
//     its process). c1 and c3 then take the speaker for c2's new boot and
//     refuse the real gateway's messages as a replay of a retired epoch.
//     The speaker publishes a backdated export of c3's echo (headless, a
//     year 2000 creation), records the API server would refuse (101 ports,
//     1,001 endpoints, the metadata address, a record naming another
//     service, JSON that is no export, an unknown type), an export from a
//     namespace c1 does not allow, and a flood of 80 records of 233 KB,
//     over the 16 MiB a cluster may make another hold. Each is refused and
//     counted; c3's echo stays a ClusterSetIP service with its VIP.
//
// The cleanup stops the speaker, removes the rule and restarts c2's
// gateway: its new epoch is then c2 again everywhere.
func hostileSpeakerMoves(t *testing.T) {
	c1, c2, c3 := shared.Clusters[0], shared.Clusters[1], shared.Clusters[2]
	gw1, gw3 := c1.Nodes[0].Name, c3.Nodes[0].Name
	tunnel2, gossipPort := gossipTarget(t, c2.Name, c2.Nodes[0].Name)
	const speakerPort = 17946

	// Registered first, so it runs last: c2's gateway restarts once the
	// speaker is gone and the rule removed.
	t.Cleanup(func() {
		if out, err := labCmd(sharedDir, sharedInstance, "restart", c2.Nodes[0].Name+"-wirespan-gateway").CombinedOutput(); err != nil {
			t.Errorf("restart c2's gateway: %v\n%s", err, out)
		}
	})
	before1 := scrapeAll(t, c1.Name, gw1)
	before3 := scrapeAll(t, c3.Name, gw3)
	sp := startSpeaker(t, speakerPort, gossipPort, hostileRecords(t))

	// 1. Beside the real gateway: heard by nobody, refused as unproven.
	time.Sleep(4 * time.Second)
	if line := sp.last("members"); line != "members " {
		t.Errorf("a second speaker on another port was heard by %q", line)
	}
	if d := delta(scrape(t, c1.Name, gw1, "wirespan_gossip_messages_received_total"), before1["wirespan_gossip_messages_received_total"], "result", "unproven"); d < 2 {
		t.Errorf("c1 counted %v unproven messages from the second speaker, want at least 2", d)
	}

	// 2. In place of the real gateway.
	takeOver(t, c2.Nodes[0].Netns, tunnel2, gossipPort, speakerPort)
	eventually(t, 30*time.Second, "the speaker is heard and publishes", func() error {
		if line := sp.last("published"); line == "" {
			return fmt.Errorf("not yet: %s", sp.last("members"))
		}
		return nil
	})
	t.Logf("speaker: %s; %s", sp.last("published"), sp.last("refused"))
	want1 := map[string]float64{`result="replay"`: 1}
	wantMCS1 := map[string]float64{`reason="ports"`: 1, `reason="endpoints"`: 2, `reason="name"`: 1, `reason="json"`: 1, `reason="type"`: 1, `reason="namespace"`: 1}
	wantMCS3 := map[string]float64{`reason="ports"`: 1, `reason="endpoints"`: 60, `reason="name"`: 1, `reason="json"`: 1, `reason="type"`: 1}
	eventually(t, 60*time.Second, "c1 and c3 refuse and count every hostile record", func() error {
		now1, now3 := scrapeAll(t, c1.Name, gw1), scrapeAll(t, c3.Name, gw3)
		checks := []struct {
			cluster, metric string
			now, before     map[string]map[string]float64
			want            map[string]float64
		}{
			{c1.Name, "wirespan_gossip_messages_received_total", now1, before1, want1},
			{c1.Name, "wirespan_mcs_unusable_records_total", now1, before1, wantMCS1},
			{c1.Name, "wirespan_gossip_refused_total", now1, before1, map[string]float64{`reason="over_cap"`: 1}},
			{c3.Name, "wirespan_mcs_unusable_records_total", now3, before3, wantMCS3},
			{c3.Name, "wirespan_gossip_refused_total", now3, before3, map[string]float64{`reason="over_cap"`: 1}},
		}
		for _, c := range checks {
			for labels, min := range c.want {
				if d := c.now[c.metric][labels] - c.before[c.metric][labels]; d < min {
					return fmt.Errorf("%s: %s{%s} rose by %v, want at least %v", c.cluster, c.metric, labels, d, min)
				}
			}
		}
		t.Logf("c1 counted %s", countsSince(now1, before1))
		t.Logf("c3 counted %s", countsSince(now3, before3))
		return nil
	})
	// The backdated export joined c3's echo in c1 without winning it.
	eventually(t, 30*time.Second, "c1 merges c2's backdated echo", func() error {
		if got := importClusters(t, c1.Name, "default", "echo"); got != c2.Name+" "+c3.Name {
			return fmt.Errorf("echo imported from %q", got)
		}
		return nil
	})
	if typ := kubectlIn(t, c1.Name, "get", "serviceimports.multicluster.x-k8s.io", "-n", "default", "echo", "-o", "jsonpath={.spec.type}"); typ != "ClusterSetIP" {
		t.Errorf("a backdated headless export turned c3's echo into %s", typ)
	}
	if log := gatewayLog(t, c1.Nodes[0].Name); !strings.Contains(log, "An export claims to be older than when this cluster first saw it") {
		t.Errorf("c1 did not log the backdated export")
	}
	for _, c := range []string{c1.Name, c3.Name} {
		for _, base := range []string{"hostile-ports", "hostile-many", "hostile-meta", "hostile-name", "hostile-json", "hostile-type"} {
			if got := importClusters(t, c, "default", hostile(base)); got != "" {
				t.Errorf("%s imported the hostile default/%s from %s", c, hostile(base), got)
			}
		}
	}
	if got := importClusters(t, c1.Name, "kube-system", hostile("hostile-gossip")); got != "" {
		t.Errorf("c1 imported kube-system/%s from %s, outside c2's exportNamespaces", hostile("hostile-gossip"), got)
	}
}

// hostileRecords writes the speaker's records to a file and returns its
// path.
func hostileRecords(t *testing.T) string {
	c2 := shared.Clusters[1]
	rec := func(ns, name string) map[string]any {
		return map[string]any{
			"cluster": c2.Name, "service": map[string]string{"namespace": ns, "name": name},
			"created": time.Now().UTC().Format(time.RFC3339), "type": "ClusterSetIP",
			"ports": []map[string]any{{"name": "tcp", "port": 8080, "protocol": "TCP"}},
		}
	}
	slice := func(addrs ...string) []map[string]any {
		eps := make([]map[string]any, len(addrs))
		for i, a := range addrs {
			eps[i] = map[string]any{"addresses": []string{a}, "ready": true}
		}
		return []map[string]any{{"addressType": "IPv4", "ports": []map[string]any{{"name": "tcp", "port": 8080, "protocol": "TCP"}}, "endpoints": eps}}
	}
	inRange := func(n int) []string { // n addresses in c2's pod range
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("10.2.%d.%d", i/250%2, i%250+1)
		}
		return out
	}
	records := map[string]any{}
	put := func(ns, base string, r any) { records[ns+"/"+hostile(base)] = r }
	backdated := rec("default", "echo")
	backdated["created"], backdated["type"] = "2000-01-01T00:00:00Z", "Headless"
	records["default/echo"] = backdated
	ports := rec("default", hostile("hostile-ports"))
	var many []map[string]any
	for i := range 101 {
		many = append(many, map[string]any{"name": fmt.Sprintf("p%d", i), "port": 9000 + i, "protocol": "TCP"})
	}
	ports["ports"] = many
	put("default", "hostile-ports", ports)
	crowd := rec("default", hostile("hostile-many"))
	crowd["slices"] = slice(inRange(1001)...)
	put("default", "hostile-many", crowd)
	meta := rec("default", hostile("hostile-meta"))
	meta["slices"] = slice("169.254.169.254")
	put("default", "hostile-meta", meta)
	put("default", "hostile-name", rec("default", "echo")) // filed under another name
	put("default", "hostile-json", []string{"no", "export"})
	typ := rec("default", hostile("hostile-type"))
	typ["type"] = "LoadBalancer"
	put("default", "hostile-type", typ)
	put("kube-system", "hostile-gossip", rec("kube-system", hostile("hostile-gossip")))
	// 80 records of about 233 KB (5,600 endpoints each, under the 256 KiB
	// a record may have): 18 MB, over the 16 MiB c2 may make others hold.
	for i := range 80 {
		name := fmt.Sprintf("flood-%02d", i)
		flood := rec("zz-flood", hostile(name))
		flood["slices"] = slice(inRange(5600)...)
		put("zz-flood", name, flood)
	}
	raw, err := json.Marshal(records)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "records.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// speaker is what a running hostilepeer printed.
type speaker struct{ out syncbuf.Buffer }

// last returns the last line the speaker printed that starts with prefix.
func (s *speaker) last(prefix string) string {
	lines := strings.Split(s.out.String(), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], prefix) {
			return lines[i]
		}
	}
	return ""
}

// startSpeaker builds hostilepeer and runs it in c2's active gateway node
// with c2's key, read from c2's own API server (its key Secret), and the
// other clusters' public keys, as in Git. It stops when the test ends.
func startSpeaker(t *testing.T, port, peerPort int, records string) *speaker {
	c2 := shared.Clusters[1]
	bin := filepath.Join(binDir, "hostilepeer")
	build := exec.Command("go", "build", "-o", bin, "./gateway/internal/gossip/hostilepeer")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build hostilepeer: %v\n%s", err, out)
	}
	key, err := base64.StdEncoding.DecodeString(kubectlIn(t, c2.Name, "get", "secret", "-n", "wirespan-system", "wirespan-cluster-key", "-o", "jsonpath={.data.privateKey}"))
	if err != nil {
		t.Fatalf("c2's key Secret: %v", err)
	}
	keyFile := filepath.Join(t.TempDir(), "c2.key")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	self, err := peerIn(t, c2.Name, c2.Name)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"netns", "exec", c2.Nodes[0].Netns, bin, "--cluster", c2.Name, "--node", c2.Nodes[0].Name,
		"--private-key-file", keyFile, "--port", strconv.Itoa(port), "--peer-port", strconv.Itoa(peerPort),
		"--pod-cidrs", strings.Join(self.Status.PodCIDRs, ","), "--service-cidrs", strings.Join(self.Status.ServiceCIDRs, ","),
		"--records", records}
	for _, c := range shared.Clusters {
		if c.Name != c2.Name {
			args = append(args, "--peer", c.Name+"="+c.PublicKey)
		}
	}
	sp := &speaker{}
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = &sp.out, &sp.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start hostilepeer: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("hostilepeer: %v\n%s", err, sp.last(""))
		}
	})
	return sp
}

// takeOver hands the gossip port of c2's tunnel address to the speaker:
// stateless rewrites of the port in c2's gateway node, in and out,
// untracked so that the real gateway's flows in conntrack do not keep
// their way.
func takeOver(t *testing.T, netns, addr string, port, speakerPort int) {
	const table = "wirespan-e2e-takeover"
	rules := fmt.Sprintf(`table ip %[1]s {
  chain in {
    type filter hook prerouting priority -300; policy accept;
    ip daddr %[2]s udp dport %[3]d notrack udp dport set %[4]d
    ip daddr %[2]s tcp dport %[3]d notrack tcp dport set %[4]d
  }
  chain out {
    type filter hook output priority -300; policy accept;
    ip saddr %[2]s udp sport %[4]d notrack udp sport set %[3]d
    ip saddr %[2]s tcp sport %[4]d notrack tcp sport set %[3]d
  }
}
`, table, addr, port, speakerPort)
	cmd := exec.Command("ip", "netns", "exec", netns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("take over the gossip port: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "exec", netns, "nft", "delete", "table", "ip", table).CombinedOutput(); err != nil {
			t.Errorf("remove the takeover rule: %v\n%s", err, out)
		}
	})
}

// gatewayLog returns the log of a node's wirespan-gateway.
func gatewayLog(t *testing.T, node string) string {
	for _, p := range shared.Processes {
		if p.Name == node+"-wirespan-gateway" {
			raw, err := os.ReadFile(p.Log)
			if err != nil {
				t.Fatal(err)
			}
			return string(raw)
		}
	}
	t.Fatalf("no gateway log for %s", node)
	return ""
}

var sample = regexp.MustCompile(`(?m)^(wirespan_\w+)\{([^}]*)\} (\S+)$`)

// scrapeAll returns a gateway's wirespan_* counters: metric, then the
// labels as printed (`reason="ports"`), then the value.
func scrapeAll(t *testing.T, cluster, node string) map[string]map[string]float64 {
	t.Helper()
	text, err := inPod(cluster, node, "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3")
	if err != nil {
		t.Fatalf("metrics of %s: %v", node, err)
	}
	out := map[string]map[string]float64{}
	for _, m := range sample.FindAllStringSubmatch(text, -1) {
		if out[m[1]] == nil {
			out[m[1]] = map[string]float64{}
		}
		out[m[1]][m[2]], _ = strconv.ParseFloat(m[3], 64)
	}
	return out
}

// scrape returns one metric of scrapeAll.
func scrape(t *testing.T, cluster, node, metric string) map[string]float64 {
	t.Helper()
	return scrapeAll(t, cluster, node)[metric]
}

// delta is how much the sample with one label rose.
func delta(now, before map[string]float64, label, value string) float64 {
	k := fmt.Sprintf("%s=%q", label, value)
	return now[k] - before[k]
}

// countsSince lists the refusal counters that rose, for the log.
func countsSince(now, before map[string]map[string]float64) string {
	var parts []string
	for _, metric := range []string{"wirespan_gossip_messages_received_total", "wirespan_gossip_export_messages_received_total",
		"wirespan_gossip_refused_total", "wirespan_mcs_unusable_records_total", "wirespan_mcs_refused_endpoints_total"} {
		for labels, v := range now[metric] {
			if d := v - before[metric][labels]; d > 0 && !strings.Contains(labels, "accepted") && !strings.Contains(labels, "duplicate") {
				parts = append(parts, fmt.Sprintf("%s{%s} +%v", metric, labels, d))
			}
		}
	}
	return strings.Join(parts, ", ")
}
