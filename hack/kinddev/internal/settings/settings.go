// Package settings reads tilt-settings.yaml, the developer's choices for the
// kind clusters of the Tilt loop, and derives everything else from them:
// kube contexts, address ranges, file locations. It is the one place that
// holds the defaults: the Tiltfile reads the result as JSON (`kinddev
// settings`), so Starlark and Go never disagree about them.
package settings

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"

	"sigs.k8s.io/yaml"
)

// Limits. Every kind cluster costs about 1 GiB of memory per node, so the
// node counts stay small; nine clusters is what the address plan below has
// room for.
const (
	MaxClusters     = 9
	MaxGatewayNodes = 3
	MaxWorkerNodes  = 3
)

// Fixed names the chart, the operator and the Tiltfile agree on.
const (
	// Namespace is where the chart is installed in every cluster.
	Namespace = "wirespan-system"
	// KeySecret is the cluster key Secret `kinddev prepare` creates in
	// Namespace, passed to the chart as clusterKey.existingSecret.
	KeySecret = "wirespan-cluster-key"
	// StateDir holds what the loop generates: kind configs and the
	// ClusterPeer folder. It is under the git-ignored .cache.
	StateDir = ".cache/tilt"
	// BinDir is where the loop compiles the binaries, inside the build
	// context of the dev image (build/tilt); git-ignored.
	BinDir = "build/tilt/bin"
)

// File is tilt-settings.yaml as a developer writes it: every field is
// optional and unknown fields are refused, so a typo is an error, never a
// silently ignored setting.
type File struct {
	// Clusters names the kind clusters; each name is also that cluster's
	// Wirespan cluster ID (its ClusterPeer's name). The first is the one
	// Tilt itself deploys to.
	Clusters []string `json:"clusters,omitempty"`
	// GatewayNodes is the number of workers per cluster labeled
	// wirespan.io/gateway=true.
	GatewayNodes *int `json:"gateway_nodes,omitempty"`
	// WorkerNodes is the number of other workers (node agents) per cluster.
	WorkerNodes *int `json:"worker_nodes,omitempty"`
	// KindNodeImage overrides kind's default node image (kindest/node:...).
	KindNodeImage string `json:"kind_node_image,omitempty"`
	// DefaultRegistry, when set, is where images are pushed (Tilt's
	// default_registry) instead of being loaded into the kind nodes.
	DefaultRegistry string `json:"default_registry,omitempty"`
	// HelmValuesFiles are extra values files for the chart, in every cluster.
	HelmValuesFiles []string `json:"helm_values_files,omitempty"`
	// HelmSet are extra --set key=value pairs for the chart, in every cluster.
	HelmSet []string `json:"helm_set,omitempty"`
	// GOARCH is the architecture of the kind nodes; default: this machine's
	// Go architecture, which is the Docker VM's on Docker Desktop.
	GOARCH string `json:"goarch,omitempty"`
}

// Settings are the effective settings: File with defaults applied, plus
// what follows from them. The Tiltfile reads this as JSON.
type Settings struct {
	Clusters        []Cluster `json:"clusters"`
	GatewayNodes    int       `json:"gateway_nodes"`
	WorkerNodes     int       `json:"worker_nodes"`
	KindNodeImage   string    `json:"kind_node_image"`
	DefaultRegistry string    `json:"default_registry"`
	HelmValuesFiles []string  `json:"helm_values_files"`
	HelmSet         []string  `json:"helm_set"`
	GOARCH          string    `json:"goarch"`
	Namespace       string    `json:"namespace"`
	KeySecret       string    `json:"key_secret"`
	BinDir          string    `json:"bin_dir"`
	StateDir        string    `json:"state_dir"`
	// ClusterPeersDir is the ClusterPeer folder `kinddev prepare` writes and
	// the loop applies to every cluster.
	ClusterPeersDir string `json:"cluster_peers_dir"`
}

// Cluster is one kind cluster of the loop.
type Cluster struct {
	// Name is the kind cluster's name and the Wirespan cluster ID.
	Name string `json:"name"`
	// Context is the kube context kind writes for it: kind-<name>.
	Context string `json:"context"`
	// Index is 1-based; it picks the address ranges.
	Index int `json:"index"`
	// PodSubnet and ServiceSubnet are the cluster's ranges. They overlap
	// neither each other nor those of the other clusters, nor the lab's
	// (docs/lab.md), so clusters can be peered without NAT.
	PodSubnet     netip.Prefix `json:"pod_subnet"`
	ServiceSubnet netip.Prefix `json:"service_subnet"`
	// DNSServiceIP is the fixed ClusterIP of the chart's clusterset DNS
	// Service, so that the cluster's CoreDNS can be told to forward
	// clusterset.local there before the Service exists: .53 of
	// ServiceSubnet.
	DNSServiceIP netip.Addr `json:"dns_service_ip"`
	// KindConfig is where `kinddev up` writes the cluster's kind config.
	KindConfig string `json:"kind_config"`
}

// DefaultClusters are the cluster names when the file names none.
var DefaultClusters = []string{"wirespan-1", "wirespan-2"}

// Default node counts.
const (
	DefaultGatewayNodes = 1
	DefaultWorkerNodes  = 1
)

// A cluster name must be a kind cluster name (kind's own rule is
// [a-z0-9.-]+) and a ClusterPeer name (an RFC 1123 label): the stricter of
// the two. kind adds "-control-plane" to name its node containers, and
// "kind-" for the context, so keep it short.
var clusterName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$`)

// Load reads the settings file at path; a missing file means all defaults.
// goarch is the default for GOARCH (the caller passes runtime.GOARCH).
func Load(path, goarch string) (*Settings, error) {
	var f File
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read settings: %w", err)
	default:
		if err := yaml.UnmarshalStrict(raw, &f); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	s, err := f.Resolve(goarch)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Resolve applies the defaults, checks the result, and derives the rest.
func (f File) Resolve(goarch string) (*Settings, error) {
	s := &Settings{
		GatewayNodes:    DefaultGatewayNodes,
		WorkerNodes:     DefaultWorkerNodes,
		KindNodeImage:   f.KindNodeImage,
		DefaultRegistry: f.DefaultRegistry,
		HelmValuesFiles: append([]string{}, f.HelmValuesFiles...),
		HelmSet:         append([]string{}, f.HelmSet...),
		GOARCH:          goarch,
		Namespace:       Namespace,
		KeySecret:       KeySecret,
		BinDir:          BinDir,
		StateDir:        StateDir,
		ClusterPeersDir: filepath.Join(StateDir, "clusterpeers"),
	}
	if f.GatewayNodes != nil {
		s.GatewayNodes = *f.GatewayNodes
	}
	if f.WorkerNodes != nil {
		s.WorkerNodes = *f.WorkerNodes
	}
	if f.GOARCH != "" {
		s.GOARCH = f.GOARCH
	}
	names := f.Clusters
	if len(names) == 0 {
		names = DefaultClusters
	}
	switch {
	case len(names) > MaxClusters:
		return nil, fmt.Errorf("clusters: %d given, at most %d", len(names), MaxClusters)
	case s.GatewayNodes < 1 || s.GatewayNodes > MaxGatewayNodes:
		return nil, fmt.Errorf("gateway_nodes %d: must be 1..%d", s.GatewayNodes, MaxGatewayNodes)
	case s.WorkerNodes < 0 || s.WorkerNodes > MaxWorkerNodes:
		return nil, fmt.Errorf("worker_nodes %d: must be 0..%d", s.WorkerNodes, MaxWorkerNodes)
	case s.GOARCH != "amd64" && s.GOARCH != "arm64":
		return nil, fmt.Errorf("goarch %q: kind nodes are amd64 or arm64", s.GOARCH)
	}
	seen := map[string]bool{}
	for i, name := range names {
		if !clusterName.MatchString(name) {
			return nil, fmt.Errorf("clusters[%d] %q: must be a lowercase RFC 1123 label of at most 32 characters (it names the kind cluster and the ClusterPeer)", i, name)
		}
		if seen[name] {
			return nil, fmt.Errorf("clusters[%d] %q: named twice", i, name)
		}
		seen[name] = true
		s.Clusters = append(s.Clusters, newCluster(name, i+1))
	}
	return s, nil
}

// newCluster lays out cluster number index (1-based):
//
//	pods      10.(200+index).0.0/16   (10.201.0.0/16, 10.202.0.0/16, ...)
//	Services  10.(210+index).0.0/16   (10.211.0.0/16, 10.212.0.0/16, ...)
//
// The lab uses 10.1-10.9 for pods and 10.101-10.109 for Services, kind's
// defaults are 10.244.0.0/16 and 10.96.0.0/16, and Docker's networks are in
// 172.16.0.0/12 and 192.168.0.0/16: none of them meets these.
func newCluster(name string, index int) Cluster {
	return Cluster{
		Name:          name,
		Context:       "kind-" + name,
		Index:         index,
		PodSubnet:     netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(200 + index), 0, 0}), 16),
		ServiceSubnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(210 + index), 0, 0}), 16),
		DNSServiceIP:  netip.AddrFrom4([4]byte{10, byte(210 + index), 0, 53}),
		KindConfig:    filepath.Join(StateDir, "kind", name+".yaml"),
	}
}
