package settings

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/wirespan/wirespan/internal/testenv"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tilt-settings.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	s, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), "arm64")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Clusters) != 2 || s.Clusters[0].Name != "wirespan-1" || s.Clusters[1].Context != "kind-wirespan-2" {
		t.Errorf("clusters %+v", s.Clusters)
	}
	if s.GatewayNodes != 1 || s.WorkerNodes != 1 || s.GOARCH != "arm64" || s.Namespace != "wirespan-system" {
		t.Errorf("settings %+v", s)
	}
	if got := s.Clusters[1].PodSubnet.String() + " " + s.Clusters[1].ServiceSubnet.String(); got != "10.202.0.0/16 10.212.0.0/16" {
		t.Errorf("cluster 2 ranges %s", got)
	}
	if s.ClusterPeersDir != ".cache/tilt/clusterpeers" || s.Clusters[0].KindConfig != ".cache/tilt/kind/wirespan-1.yaml" {
		t.Errorf("state paths %s, %s", s.ClusterPeersDir, s.Clusters[0].KindConfig)
	}
}

// TestExampleIsTheDefaults keeps tilt-settings.example.yaml, which
// documents the settings, true: loading it gives the defaults.
func TestExampleIsTheDefaults(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	example, err := Load(filepath.Join(root, "tilt-settings.example.yaml"), "amd64")
	if err != nil {
		t.Fatal(err)
	}
	defaults, err := File{}.Resolve("amd64")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(example, defaults) {
		t.Errorf("tilt-settings.example.yaml gives\n%+v\nthe defaults are\n%+v", example, defaults)
	}
}

func TestSettingsFile(t *testing.T) {
	s, err := Load(write(t, `
clusters: [east, west, north]
gateway_nodes: 2
worker_nodes: 0
kind_node_image: kindest/node:v1.36.0
default_registry: localhost:5001
helm_values_files: [dev.yaml]
helm_set: [a=b]
goarch: amd64
`), "arm64")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Clusters) != 3 || s.Clusters[2].Name != "north" || s.Clusters[2].Index != 3 {
		t.Errorf("clusters %+v", s.Clusters)
	}
	if s.GatewayNodes != 2 || s.WorkerNodes != 0 || s.GOARCH != "amd64" || s.DefaultRegistry != "localhost:5001" ||
		s.KindNodeImage != "kindest/node:v1.36.0" || s.HelmValuesFiles[0] != "dev.yaml" || s.HelmSet[0] != "a=b" {
		t.Errorf("settings %+v", s)
	}
}

func TestRefused(t *testing.T) {
	for body, want := range map[string]string{
		"gateway_node: 2\n":                          `unknown field "gateway_node"`,
		"clusters: [Wirespan]\n":                     "RFC 1123",
		"clusters: [a, a]\n":                         "named twice",
		"clusters: [a_b]\n":                          "RFC 1123",
		"clusters: [a, b, c, d, e, f, g, h, i, j]\n": "at most 9",
		"gateway_nodes: 0\n":                         "gateway_nodes 0",
		"worker_nodes: 4\n":                          "worker_nodes 4",
		"goarch: riscv64\n":                          "goarch",
		"clusters: a\n":                              "clusters",
	} {
		_, err := Load(write(t, body), "amd64")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", body, err, want)
		}
	}
}

// TestRangesAreDistinct: no two ranges of the largest settings overlap
// (test/tilt checks them against the lab's too).
func TestRangesAreDistinct(t *testing.T) {
	s, err := File{Clusters: []string{"a", "b", "c", "d", "e", "f", "g", "h", "i"}}.Resolve("amd64")
	if err != nil {
		t.Fatal(err)
	}
	var all []netip.Prefix
	for _, c := range s.Clusters {
		all = append(all, c.PodSubnet, c.ServiceSubnet)
	}
	for i, a := range all {
		for _, b := range all[i+1:] {
			if a.Overlaps(b) {
				t.Errorf("%s overlaps %s", a, b)
			}
		}
	}
}
