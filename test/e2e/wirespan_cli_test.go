package e2e

// kubectl-wirespan against the shared lab, as a new user would run it:
// one kubeconfig holding a context per cluster, status, graph and
// diagnose over all of them; then each diagnose check's subject broken on
// purpose, through the API as Git or an admin would, to see that check,
// and only that one, fail. Runs after the other files (name order), on a
// peered lab, and puts back everything it changes.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/wirespan/wirespan/internal/testreq"
)

// cli is kubectl-wirespan, built by TestMain with the lab's binaries.
func cli() string { return filepath.Join(binDir, "kubectl-wirespan") }

// mergedKubeconfig writes one kubeconfig with a context per lab cluster,
// named after it. The lab's files all call their user lab-admin, so
// KUBECONFIG=a:b:c would give every context the first cluster's
// credentials: each cluster, user and context is renamed, as a user
// merging them would.
func mergedKubeconfig(t *testing.T) string {
	t.Helper()
	merged := clientcmdapi.NewConfig()
	for _, c := range shared.Clusters {
		kc, err := clientcmd.LoadFromFile(c.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		ctx := kc.Contexts[kc.CurrentContext]
		merged.Clusters[c.Name] = kc.Clusters[ctx.Cluster]
		merged.AuthInfos[c.Name+"-admin"] = kc.AuthInfos[ctx.AuthInfo]
		merged.Contexts[c.Name] = &clientcmdapi.Context{Cluster: c.Name, AuthInfo: c.Name + "-admin"}
	}
	merged.CurrentContext = shared.Clusters[0].Name
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*merged, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeCorefiles puts back each lab cluster's Corefile in its ConfigMap
// kube-system/coredns (where the lab keeps it, as a real cluster does, and
// where coredns-forward reads it) from the file the lab's CoreDNS reads.
func writeCorefiles(t *testing.T) {
	t.Helper()
	for _, c := range shared.Clusters {
		corefile, err := os.ReadFile(filepath.Join(sharedDir, c.Name, "Corefile"))
		if err != nil {
			t.Fatal(err)
		}
		setCorefile(t, c.Name, string(corefile))
	}
}

// exportEchoFromC1 exports c1's echo Service, so that the checks about
// imports and DNS answers have a name to judge, and withdraws it when the
// test ends, waiting until no cluster imports it any more.
func exportEchoFromC1(t *testing.T) {
	t.Helper()
	c1 := shared.Clusters[0].Name
	exportIn(t, c1, "default", "echo")
	t.Cleanup(func() {
		kubectlIn(t, c1, "delete", "serviceexport", "-n", "default", "echo", "--ignore-not-found")
		eventually(t, 60*time.Second, "no cluster imports echo", func() error {
			for _, c := range shared.Clusters {
				if out := kubectlIn(t, c.Name, "get", "serviceimports", "-A", "-o", "name"); strings.TrimSpace(out) != "" {
					return fmt.Errorf("%s still has %s", c.Name, out)
				}
			}
			return nil
		})
	})
}

func setCorefile(t *testing.T, cluster, corefile string) {
	t.Helper()
	cm := map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "coredns", "namespace": "kube-system"}, "data": map[string]any{"Corefile": corefile}}
	raw, err := json.Marshal(cm)
	if err != nil {
		t.Fatal(err)
	}
	applyIn(t, cluster, string(raw))
}

// runCLI runs kubectl-wirespan with the merged kubeconfig and returns its
// standard output and exit status.
func runCLI(t *testing.T, kubeconfig string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(cli(), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		if exit.ExitCode() == 2 {
			t.Fatalf("kubectl-wirespan %s could not run: %s", strings.Join(args, " "), stderr.String())
		}
		return stdout.String(), exit.ExitCode()
	case err != nil:
		t.Fatalf("kubectl-wirespan %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), 0
}

// cliStatus is the part of `status -o json` the test reads.
type cliStatus struct {
	Clusters []struct {
		Context string `json:"context"`
		Cluster string `json:"cluster"`
		Peers   []struct {
			Name         string   `json:"name"`
			Role         string   `json:"role"`
			Connected    string   `json:"connected"`
			Endpoint     string   `json:"endpoint"`
			HandshakeAge string   `json:"handshakeAge"`
			RxBytes      int64    `json:"rxBytes"`
			Routed       []string `json:"routed"`
			Refused      []any    `json:"refused"`
		} `json:"peers"`
	} `json:"clusters"`
}

func peeredLab(t *testing.T) string {
	t.Helper()
	if out, err := labCmd(sharedDir, sharedInstance, "apply", shared.ClusterPeersDir).CombinedOutput(); err != nil {
		t.Fatalf("wirespan-lab apply: %v\n%s", err, out)
	}
	waitConnected(t, 90*time.Second)
	return mergedKubeconfig(t)
}

func TestCLIStatusAndGraphShowTheLab(t *testing.T) {
	kc := peeredLab(t)
	out, code := runCLI(t, kc, "status", "--all-contexts", "-o", "json")
	if code != 0 {
		t.Fatalf("status exit %d", code)
	}
	var st cliStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	if len(st.Clusters) != len(shared.Clusters) {
		t.Fatalf("%d clusters in status, want %d", len(st.Clusters), len(shared.Clusters))
	}
	for i, c := range st.Clusters {
		if c.Context != shared.Clusters[i].Name || c.Cluster != shared.Clusters[i].Name || len(c.Peers) != len(shared.Clusters) {
			t.Errorf("context %s: cluster %q with %d peers", c.Context, c.Cluster, len(c.Peers))
		}
		for _, p := range c.Peers {
			if p.Name == c.Cluster {
				if p.Role != "Self" || len(p.Routed) == 0 {
					t.Errorf("%s sees itself as %s with ranges %v", c.Cluster, p.Role, p.Routed)
				}
				continue
			}
			if p.Role != "Remote" || p.Connected != "True" || p.HandshakeAge == "" || p.RxBytes == 0 || len(p.Routed) == 0 || len(p.Refused) != 0 {
				t.Errorf("%s sees %s: %+v", c.Cluster, p.Name, p)
			}
			// The NAT cluster has no endpoint in Git: the others learn
			// where it dials in from, and status shows that.
			if p.Name == natCluster && p.Endpoint == "" {
				t.Errorf("%s shows no endpoint for the NAT cluster %s", c.Cluster, p.Name)
			}
		}
	}
	table, _ := runCLI(t, kc, "status", "--contexts", "c1,c3", "-o", "wide")
	t.Logf("kubectl wirespan status --contexts c1,c3 -o wide:\n%s", table)
	for _, want := range []string{"Context c1, cluster c1", "Context c3, cluster c3", "HANDSHAKE", "ROUTED", "versions: operator " + builtVersion + ", gateway c1-n0 " + builtVersion} {
		if !strings.Contains(table, want) {
			t.Errorf("status -o wide lacks %q:\n%s", want, table)
		}
	}

	dot, code := runCLI(t, kc, "graph", "--all-contexts")
	if code != 0 {
		t.Fatalf("graph exit %d", code)
	}
	pairs := len(shared.Clusters) * (len(shared.Clusters) - 1) / 2
	if n := strings.Count(dot, "fontcolor=darkgreen"); n != pairs {
		t.Errorf("%d tunnels up in the graph, want %d:\n%s", n, pairs, dot)
	}
	for _, c := range shared.Clusters {
		if gw := fmt.Sprintf("%q", c.Name+"/"+c.Nodes[0].Name); !strings.Contains(dot, gw+" -> ") && !strings.Contains(dot, "-> "+gw) {
			t.Errorf("no tunnel ends at %s's active gateway %s:\n%s", c.Name, gw, dot)
		}
	}
	if strings.Contains(dot, "color=red") {
		t.Errorf("a healthy lab's graph has something red:\n%s", dot)
	}
	if _, err := exec.LookPath("dot"); err != nil {
		testreq.CannotRun(t, testreq.Privileged, "graph -o svg needs Graphviz's dot (make deps installs graphviz)")
		return
	}
	if svg, code := runCLI(t, kc, "graph", "--all-contexts", "-o", "svg"); code != 0 || !strings.Contains(svg, "<svg") {
		t.Errorf("graph -o svg: exit %d\n%.300s", code, svg)
	}
}

// diagnoseResult is one row of `diagnose -o json`.
type diagnoseResult struct {
	Check, Cluster, Status, Summary, Hint string
	Evidence                              []string
}

// diagnose runs every check on every context and returns the checks that
// failed and those that warned.
func diagnose(t *testing.T, kc string) (failed, warned []string, results []diagnoseResult, code int) {
	t.Helper()
	out, code := runCLI(t, kc, "diagnose", "--all-contexts", "-o", "json")
	if err := json.Unmarshal([]byte(out), &results); err != nil {
		t.Fatalf("diagnose -o json: %v\n%s", err, out)
	}
	f, w := map[string]bool{}, map[string]bool{}
	for _, r := range results {
		switch r.Status {
		case "FAIL":
			f[r.Check] = true
		case "WARN":
			w[r.Check] = true
		}
	}
	return slices.Sorted(maps.Keys(f)), slices.Sorted(maps.Keys(w)), results, code
}

// The lab as `up` leaves it, the Corefile in its ConfigMap included, is
// what a healthy cluster looks like to diagnose.
func TestCLIDiagnosePassesOnAHealthyLab(t *testing.T) {
	kc := peeredLab(t)
	exportEchoFromC1(t)
	eventually(t, 60*time.Second, "diagnose passes", func() error {
		failed, warned, results, code := diagnose(t, kc)
		if len(failed) > 0 || len(warned) > 0 || code != 0 {
			return fmt.Errorf("exit %d, failed %v, warned %v: %+v", code, failed, warned, notPassing(results))
		}
		// Every check judged, the node's too: the clusterset name is
		// asked from every cluster, every tunnel measured.
		for _, check := range []string{"dns-answer", "exports-imported", "path-mtu", "rp-filter", "gossip-members"} {
			for _, r := range results {
				if r.Check == check && r.Status != "PASS" {
					return fmt.Errorf("%s on %s: %s %q, want PASS", check, r.Cluster, r.Status, r.Summary)
				}
			}
		}
		// The lab runs the binaries outside pods: versions passes on what
		// the operator and the active gateway report themselves, no image.
		return versionsPass(results, t.Logf)
	})
	// diagnose deleted the ProbeRequests it made.
	for _, c := range shared.Clusters {
		if left := strings.TrimSpace(kubectlIn(t, c.Name, "get", "proberequests", "-n", "wirespan-system", "-o", "name")); left != "" {
			t.Errorf("%s: diagnose left ProbeRequests behind: %s", c.Name, left)
		}
	}
}

// versionsPass checks that the versions check passed in every lab cluster
// on the operator's and the active gateway's own version, the one TestMain
// stamped.
func versionsPass(results []diagnoseResult, logf func(string, ...any)) error {
	seen := 0
	for _, r := range results {
		if r.Check != "versions" {
			continue
		}
		seen++
		if r.Status == "PASS" {
			logf("diagnose: %s versions %s %s", r.Status, r.Cluster, r.Summary)
		}
		if r.Status != "PASS" || !strings.Contains(r.Summary, "operator "+builtVersion) || !strings.Contains(r.Summary, "-n0 "+builtVersion) {
			return fmt.Errorf("versions on %s: %s %q, want PASS naming the operator and the gateway at %s", r.Cluster, r.Status, r.Summary, builtVersion)
		}
	}
	if seen != len(shared.Clusters) {
		return fmt.Errorf("versions judged %d clusters, want %d", seen, len(shared.Clusters))
	}
	return nil
}

func notPassing(results []diagnoseResult) []diagnoseResult {
	return slices.DeleteFunc(slices.Clone(results), func(r diagnoseResult) bool { return r.Status == "PASS" || r.Status == "SKIP" })
}

// clusterPeerFromGit reads a ClusterPeer of the lab's Git folder.
func clusterPeerFromGit(t *testing.T, name string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(shared.ClusterPeersDir, name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := yaml.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func manifest(t *testing.T, obj map[string]any) string {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// breakCase breaks one check's subject and says what diagnose must then
// report.
type breakCase struct {
	name, check, hint string
	// warns are checks that must warn too, the consequence seen and put
	// down to the broken check; the break waits for them.
	warns        []string
	breakIt, fix func(t *testing.T)
}

// breaks are the breaks, each of the lab's c2 unless it says otherwise.
func breaks(t *testing.T) []breakCase {
	target := shared.Clusters[1] // c2
	orig := clusterPeerFromGit(t, target.Name)
	spec := func(p map[string]any) map[string]any { return p["spec"].(map[string]any) }
	applyOrig := func(t *testing.T) {
		for _, c := range shared.Clusters {
			applyIn(t, c.Name, manifest(t, orig))
		}
	}
	cases := []breakCase{{
		name: "wrong key in Git", check: "key-matches", hint: "put publicKey: " + target.PublicKey, warns: []string{"handshake"},
		breakIt: func(t *testing.T) {
			p := clusterPeerFromGit(t, target.Name)
			spec(p)["publicKey"] = "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk="
			for _, c := range shared.Clusters {
				applyIn(t, c.Name, manifest(t, p))
			}
		},
	}, {
		name: "allowed range missing", check: "allowed-cidrs", hint: "add " + target.ServiceCIDRs[0] + " to spec.allowedCIDRs",
		breakIt: func(t *testing.T) {
			p := clusterPeerFromGit(t, target.Name)
			allowed := spec(p)["allowedCIDRs"].([]any)
			spec(p)["allowedCIDRs"] = slices.DeleteFunc(slices.Clone(allowed), func(v any) bool { return v == target.ServiceCIDRs[0] })
			for _, c := range shared.Clusters {
				applyIn(t, c.Name, manifest(t, p))
			}
		},
	}, {
		name: "ClusterPeer drifted in one cluster", check: "git-drift", hint: "apply the same ClusterPeer folder",
		breakIt: func(t *testing.T) {
			// An extra, unused allowed range in c3's copy only: harmless
			// to traffic, but not what Git says.
			p := clusterPeerFromGit(t, target.Name)
			spec(p)["allowedCIDRs"] = append(spec(p)["allowedCIDRs"].([]any), "10.250.0.0/16")
			applyIn(t, shared.Clusters[2].Name, manifest(t, p))
		},
	}, {
		// c2 gets a Node whose pod range is one of c1's, and Git allows it:
		// no claim is refused for being outside allowedCIDRs, but the two
		// clusters overlap, so that range is routed nowhere.
		name: "ranges overlap", check: "overlaps", hint: "give each cluster its own pod and Service ranges",
		breakIt: func(t *testing.T) {
			stolen := shared.Clusters[0].Nodes[len(shared.Clusters[0].Nodes)-1].PodCIDR
			p := clusterPeerFromGit(t, target.Name)
			spec(p)["allowedCIDRs"] = append(spec(p)["allowedCIDRs"].([]any), stolen)
			for _, c := range shared.Clusters {
				applyIn(t, c.Name, manifest(t, p))
			}
			applyIn(t, target.Name, fmt.Sprintf("apiVersion: v1\nkind: Node\nmetadata:\n  name: overlapping\nspec:\n  podCIDR: %s\n  podCIDRs: [%s]\n", stolen, stolen))
		},
		fix: func(t *testing.T) {
			kubectlIn(t, target.Name, "delete", "node", "overlapping", "--ignore-not-found")
			applyOrig(t)
		},
	}, {
		name: "CoreDNS block removed", check: "coredns-forward", hint: "add the block",
		breakIt: func(t *testing.T) {
			corefile, err := os.ReadFile(filepath.Join(sharedDir, target.Name, "Corefile"))
			if err != nil {
				t.Fatal(err)
			}
			// The lab's block for the zone is the file's first.
			_, rest, ok := strings.Cut(string(corefile), "}\n")
			if !ok || strings.Contains(rest, "clusterset.local") {
				t.Fatalf("the lab's Corefile has changed shape:\n%s", corefile)
			}
			setCorefile(t, target.Name, rest)
		},
		fix: func(t *testing.T) { writeCorefiles(t) },
	}, {
		// A firewall on c2's gateway nodes drops WireGuard's UDP: no
		// handshake either way. The probes tell it from a closed port, and
		// gossip and the MTU probes put what they miss down to handshake.
		name: "UDP port blocked", check: "handshake", hint: fmt.Sprintf("open UDP %d", wireGuardPort),
		warns: []string{"path-mtu", "gossip-members"},
		breakIt: func(t *testing.T) {
			for _, n := range gatewayNodes(target) {
				inNetns(t, n, "nft", fmt.Sprintf("add table inet wstest-block; add chain inet wstest-block in { type filter hook input priority -10; }; add rule inet wstest-block in udp dport %d drop", wireGuardPort))
			}
		},
		fix: func(t *testing.T) {
			for _, n := range gatewayNodes(target) {
				inNetns(t, n, "nft", "delete", "table", "inet", "wstest-block")
			}
		},
	}, {
		// The router's side of c2's underlay carries 1400 bytes: full
		// tunnel packets to c2 (1420 + 60) no longer fit. c1's and c3's
		// gateways find it by echoes to c2's endpoint; c2's traffic out
		// is not narrowed.
		name: "underlay MTU too small", check: "path-mtu", hint: "raise the underlay path MTU towards " + target.Name + " to at least 1480",
		breakIt: func(t *testing.T) {
			inNetns(t, shared.Router, "ip", "link", "set", target.Bridge, "mtu", "1400")
		},
		fix: func(t *testing.T) {
			inNetns(t, shared.Router, "ip", "link", "set", target.Bridge, "mtu", "1500")
		},
	}}
	// The ClusterPeer breaks are undone by applying Git's folder again.
	for i := range cases {
		if cases[i].fix == nil {
			cases[i].fix = applyOrig
		}
	}
	return cases
}

// wireGuardPort is the gateways' WireGuard port in the lab: the chart's
// default --listen-port.
const wireGuardPort = 51820

// gatewayNodes are the network namespaces of a cluster's gateway nodes.
func gatewayNodes(c clusterStatus) []string {
	var out []string
	for _, n := range c.Nodes {
		if n.Gateway {
			out = append(out, n.Netns)
		}
	}
	return out
}

// inNetns runs a command in one of the shared lab's network namespaces.
func inNetns(t *testing.T, netns string, argv ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"netns", "exec", netns}, argv...)...).CombinedOutput(); err != nil {
		t.Fatalf("%s in %s: %v: %s", strings.Join(argv, " "), netns, err, out)
	}
}

// TestCLIDiagnoseSeesEachBreak breaks one check's subject at a time and
// waits until diagnose fails that check and no other, then puts it back
// and waits until everything passes again.
func TestCLIDiagnoseSeesEachBreak(t *testing.T) {
	kc := peeredLab(t)
	t.Cleanup(func() { writeCorefiles(t) }) // also after a failed break
	exportEchoFromC1(t)
	eventually(t, 60*time.Second, "diagnose passes before any break", func() error {
		failed, warned, results, code := diagnose(t, kc)
		if len(failed) > 0 || len(warned) > 0 || code != 0 {
			return fmt.Errorf("exit %d, failed %v, warned %v: %+v", code, failed, warned, notPassing(results))
		}
		return nil
	})
	for _, tc := range breaks(t) {
		t.Run(tc.name, func(t *testing.T) { seeBreak(t, kc, tc) })
	}
}

// seeBreak breaks, waits for diagnose to fail tc.check alone, fixes, and
// waits for diagnose to pass.
func seeBreak(t *testing.T, kc string, tc breakCase) {
	fix := tc.fix
	tc.breakIt(t)
	broken := true
	defer func() {
		if broken {
			fix(t)
		}
	}()
	eventually(t, 240*time.Second, "diagnose fails "+tc.check+" only", func() error {
		failed, warned, results, code := diagnose(t, kc)
		if !slices.Equal(failed, []string{tc.check}) || code != 1 {
			return fmt.Errorf("exit %d, failed %v, want [%s]: %+v", code, failed, tc.check, notPassing(results))
		}
		for _, w := range tc.warns {
			if !slices.Contains(warned, w) {
				return fmt.Errorf("%s does not warn yet: %+v", w, notPassing(results))
			}
		}
		for _, r := range results {
			if r.Status == "FAIL" && !strings.Contains(r.Hint, tc.hint) {
				return fmt.Errorf("%s on %s hints %q, want it to say %q", r.Check, r.Cluster, r.Hint, tc.hint)
			}
		}
		return nil
	})
	fix(t)
	broken = false
	t.Logf("diagnose fails %s alone", tc.check)
	eventually(t, 120*time.Second, "diagnose passes again", func() error {
		failed, warned, results, code := diagnose(t, kc)
		if len(failed) > 0 || len(warned) > 0 || code != 0 {
			return fmt.Errorf("exit %d, failed %v, warned %v: %+v", code, failed, warned, notPassing(results))
		}
		return nil
	})
}
