package tilt

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	yamlv3 "go.yaml.in/yaml/v3"
	kindv1alpha4 "sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/kind/pkg/cluster"
	kindlog "sigs.k8s.io/kind/pkg/log"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/internal/testenv"
	"github.com/wirespan/wirespan/test/internal/lab/plan"
)

var update = flag.Bool("update", false, "rewrite hack/kind/cluster-*.yaml from `kinddev kind-config` with the default settings")

// kinddevBin is the dev tool, built once for the package by TestMain.
var kinddevBin string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "kinddev-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		root, err := testenv.RepoRoot()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		kinddevBin = filepath.Join(dir, "kinddev")
		build := exec.Command("go", "build", "-o", kinddevBin, "./hack/kinddev")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build kinddev: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}())
}

// kinddev runs the dev tool as the Makefile and the Tiltfile do, with
// settingsYAML as its settings ("" for none: the defaults).
func kinddev(t *testing.T, settingsYAML string, args ...string) []byte {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "tilt-settings.yaml")
	if settingsYAML != "" {
		if err := os.WriteFile(file, []byte(settingsYAML), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(kinddevBin, append([]string{"-settings", file}, args...)...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kinddev %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// kindConfigs writes the kind config of every cluster of the settings into
// a folder and returns their paths.
func kindConfigs(t *testing.T, settingsYAML string) []string {
	t.Helper()
	var s loopSettings
	if err := json.Unmarshal(kinddev(t, settingsYAML, "settings"), &s); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var paths []string
	for _, c := range s.Clusters {
		p := filepath.Join(dir, c.Name+".yaml")
		if err := os.WriteFile(p, kinddev(t, settingsYAML, "kind-config", c.Name), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// TestCheckedInKindConfigsAreCurrent keeps hack/kind/cluster-N.yaml, the
// configs a developer can also use by hand, what `make kind-up` makes with
// the default settings.
func TestCheckedInKindConfigsAreCurrent(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range kindConfigs(t, "") {
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		checkedIn := filepath.Join(root, "hack", "kind", fmt.Sprintf("cluster-%d.yaml", i+1))
		if *update {
			if err := os.WriteFile(checkedIn, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(checkedIn)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not what kinddev writes with the default settings; run go test ./test/tilt -run CheckedIn -update\nwant:\n%s", checkedIn, want)
		}
	}
}

// fakeDocker puts a docker on PATH that answers what kind asks before it
// creates anything (docker info, the cluster's containers, the node image)
// and fails at the first step that would create something (the network),
// logging every call. So kind's own loader, defaulting and validation run
// for real, on a machine without Docker.
func fakeDocker(t *testing.T) (logPath string) {
	t.Helper()
	dir := t.TempDir()
	logPath = filepath.Join(dir, "calls")
	script := `#!/bin/sh
echo "$*" >>'` + logPath + `'
case "$1" in
info) echo '{"CgroupDriver":"systemd","CgroupVersion":"2","MemoryLimit":true,"PidsLimit":true,"CPUShares":true,"SecurityOptions":["name=seccomp,profile=builtin"]}' ;;
ps) ;;
inspect) ;;
*) echo "fake docker: nothing can be created here" >&2; exit 1 ;;
esac
`
	if err := os.WriteFile(filepath.Join(dir, "docker"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return logPath
}

// kindAccepts runs kind's cluster creation on path until it would create
// the Docker network, and says whether it got there: kind validates the
// whole config before that.
func kindAccepts(t *testing.T, name, path string) error {
	t.Helper()
	calls := fakeDocker(t)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	t.Setenv("KUBECONFIG", kubeconfig)
	provider := cluster.NewProvider(cluster.ProviderWithDocker(), cluster.ProviderWithLogger(kindlog.NoopLogger{}))
	err := provider.Create(name,
		cluster.CreateWithConfigFile(path),
		cluster.CreateWithKubeconfigPath(kubeconfig),
		// Nothing was made, so nothing to delete.
		cluster.CreateWithRetain(true),
		cluster.CreateWithDisplayUsage(false),
		cluster.CreateWithDisplaySalutation(false),
	)
	if err == nil {
		return fmt.Errorf("kind created cluster %s with a fake docker", name)
	}
	log, _ := os.ReadFile(calls)
	if !strings.Contains(string(log), "\nnetwork ") {
		return fmt.Errorf("kind stopped before creating anything: %w (docker calls:\n%s)", err, log)
	}
	return nil
}

// strictKindConfig decodes a kind config the way kind's loader does
// (yaml.v3, unknown fields refused) into kind's v1alpha4 types, defaulted.
func strictKindConfig(t *testing.T, path string) *kindv1alpha4.Cluster {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yamlv3.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var c kindv1alpha4.Cluster
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	kindv1alpha4.SetDefaultsCluster(&c)
	return &c
}

func TestKindAcceptsTheConfigs(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name          string
		paths         []string
		gateways, all int
	}{
		{"checked-in", []string{filepath.Join(root, "hack", "kind", "cluster-1.yaml"), filepath.Join(root, "hack", "kind", "cluster-2.yaml")}, 1, 3},
		{"three clusters, two gateways, no other worker", kindConfigs(t, "clusters: [a, b, c]\ngateway_nodes: 2\nworker_nodes: 0\n"), 2, 3},
		{"node image", kindConfigs(t, "kind_node_image: kindest/node:v1.36.0\n"), 1, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range tc.paths {
				c := strictKindConfig(t, p)
				if err := kindAccepts(t, c.Name, p); err != nil {
					t.Errorf("%s: %v", p, err)
				}
				gws := 0
				for _, n := range c.Nodes {
					if n.Labels[wirespanv1alpha1.LabelGateway] == "true" {
						gws++
						if n.Role != kindv1alpha4.WorkerRole {
							t.Errorf("%s: a %s node is labeled gateway; gateways are workers", p, n.Role)
						}
					}
				}
				if gws != tc.gateways || len(c.Nodes) != tc.all || c.Nodes[0].Role != kindv1alpha4.ControlPlaneRole {
					t.Errorf("%s: %d nodes, %d gateways; want %d nodes (a control plane first), %d gateways", p, len(c.Nodes), gws, tc.all, tc.gateways)
				}
			}
		})
	}
}

// TestKindRefusesABadConfig shows the check above can fail: kind's own
// validation refuses what it must.
func TestKindRefusesABadConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	bad := "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  podSubnet: 10.300.0.0/16\nnodes:\n- role: worker\n"
	if err := os.WriteFile(p, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := kindAccepts(t, "bad", p); err == nil || !strings.Contains(err.Error(), "invalid pod subnet") || !strings.Contains(err.Error(), "control-plane") {
		t.Errorf("a config with an invalid pod subnet and no control plane: %v; want kind's validation errors", err)
	}
	typo := "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworkin:\n  podSubnet: 10.1.0.0/16\n"
	if err := os.WriteFile(p, []byte(typo), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := kindAccepts(t, "typo", p); err == nil || !strings.Contains(err.Error(), "networkin") {
		t.Errorf("a config with an unknown field: %v; want kind's loader to refuse it", err)
	}
}

// TestAddressRangesDoNotOverlap: the clusters of the loop, as many as the
// settings allow, must be routable to each other without NAT, so no range
// may meet another's; nor the lab's (a developer runs both), nor the
// gateways' tunnel range, nor the networks Docker gives kind's nodes.
func TestAddressRangesDoNotOverlap(t *testing.T) {
	names := make([]string, 9)
	for i := range names {
		names[i] = fmt.Sprintf("c%d", i+1)
	}
	type owned struct {
		what string
		p    netip.Prefix
	}
	var ranges []owned
	for _, p := range kindConfigs(t, "clusters: ["+strings.Join(names, ", ")+"]\n") {
		c := strictKindConfig(t, p)
		for what, s := range map[string]string{"pods": c.Networking.PodSubnet, "Services": c.Networking.ServiceSubnet} {
			pfx, err := netip.ParsePrefix(s)
			if err != nil {
				t.Fatalf("%s: %s subnet %q: %v", p, what, s, err)
			}
			ranges = append(ranges, owned{fmt.Sprintf("kind %s %s", c.Name, what), pfx})
		}
	}
	if len(ranges) != 18 {
		t.Fatalf("%d ranges for 9 clusters, want 18", len(ranges))
	}
	lab, err := plan.New(plan.Config{Clusters: plan.MaxClusters, Nodes: 1, Gateways: 1})
	if err != nil {
		t.Fatal(err)
	}
	others := []owned{{"lab host link", lab.HostNet}}
	for _, c := range lab.Clusters {
		others = append(others,
			owned{"lab " + c.Name + " pods", c.PodCIDR},
			owned{"lab " + c.Name + " Services", c.ServiceCIDR},
			owned{"lab " + c.Name + " underlay", c.Underlay})
	}
	others = append(others,
		// wirespan-gateway --tunnel-cidr default.
		owned{"tunnel addresses", netip.MustParsePrefix("100.96.0.0/16")},
		// Docker's default address pools: its bridges and kind's network.
		owned{"Docker networks", netip.MustParsePrefix("172.16.0.0/12")},
		owned{"Docker networks", netip.MustParsePrefix("192.168.0.0/16")})
	for i, a := range ranges {
		for _, b := range append(ranges[i+1:], others...) {
			if a.p.Overlaps(b.p) {
				t.Errorf("%s %s overlaps %s %s", a.what, a.p, b.what, b.p)
			}
		}
	}
}
