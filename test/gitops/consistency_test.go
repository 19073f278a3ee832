package gitops

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
)

// The example's files refer to each other by cluster ID, path, name and
// address. An API server checks none of that; these tests do, so that
// what a user copies works together.

type fluxKustomization struct {
	Metadata struct{ Name, Namespace string } `json:"metadata"`
	Spec     struct {
		Path      string `json:"path"`
		Prune     bool   `json:"prune"`
		DependsOn []struct {
			Name, Namespace string
		} `json:"dependsOn"`
		Decryption *struct {
			Provider string `json:"provider"`
		} `json:"decryption"`
		HealthChecks []struct {
			APIVersion string `json:"apiVersion"`
			Kind, Name string
		} `json:"healthChecks"`
	} `json:"spec"`
}

type ociRepository struct {
	Spec struct {
		Ref struct {
			Semver string `json:"semver"`
		} `json:"ref"`
	} `json:"spec"`
}

type helmRelease struct {
	Metadata struct{ Name, Namespace string } `json:"metadata"`
	Spec     struct {
		ChartRef struct{ Kind, Name, Namespace string } `json:"chartRef"`
		Values   struct {
			ClusterID  string `json:"clusterID"`
			ClusterKey struct {
				ExistingSecret string `json:"existingSecret"`
			} `json:"clusterKey"`
			Operator struct {
				PodCIDRs     []string `json:"podCIDRs"`
				ServiceCIDRs []string `json:"serviceCIDRs"`
			} `json:"operator"`
			DNSService struct {
				ClusterIP string `json:"clusterIP"`
			} `json:"dnsService"`
			CoreDNS struct {
				Forward []string `json:"forward"`
			} `json:"coredns"`
		} `json:"values"`
	} `json:"spec"`
}

func decode[T any](t *testing.T, d document) T {
	t.Helper()
	var v T
	if err := yaml.Unmarshal(d.Raw, &v); err != nil {
		t.Fatalf("%s: %v", d, err)
	}
	return v
}

// subdirs lists the folders in examples/gitops/dir.
func subdirs(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(examples, dir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// allowedRanges are each ClusterPeer's allowedCIDRs, by cluster ID.
func allowedRanges(t *testing.T, docs []document) map[string][]netip.Prefix {
	t.Helper()
	out := map[string][]netip.Prefix{}
	for _, d := range ofKind(docs, "ClusterPeer", "") {
		cp := decode[wirespanv1alpha1.ClusterPeer](t, d)
		for _, c := range cp.Spec.AllowedCIDRs {
			out[cp.Name] = append(out[cp.Name], netip.MustParsePrefix(c))
		}
	}
	return out
}

// inside says whether an address or prefix lies in one of the ranges.
func inside(s string, ranges []netip.Prefix) bool {
	if !strings.Contains(s, "/") {
		s += "/32"
		if strings.Contains(s, ":") {
			s = strings.TrimSuffix(s, "/32") + "/128"
		}
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return false
	}
	for _, r := range ranges {
		if r.Bits() <= p.Bits() && r.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// Every cluster of the ClusterPeer folder has a Flux folder and a
// HelmRelease with its ID, and nothing else does.
func TestFluxClustersMatchTheClusterPeers(t *testing.T) {
	docs := loadExamples(t)
	ids := exampleClusters(t, docs)
	if got := subdirs(t, "flux/clusters"); !slices.Equal(got, ids) {
		t.Errorf("flux/clusters has %v, the ClusterPeers are %v", got, ids)
	}
	if got := subdirs(t, "flux/wirespan"); !slices.Equal(got, ids) {
		t.Errorf("flux/wirespan has %v, the ClusterPeers are %v", got, ids)
	}
	allowed := allowedRanges(t, docs)
	for _, id := range ids {
		dir := filepath.Join("flux", "wirespan", id)
		releases := ofKind(docs, "HelmRelease", dir)
		if len(releases) != 1 {
			t.Errorf("%s: %d HelmReleases, want 1", dir, len(releases))
			continue
		}
		hr := decode[helmRelease](t, releases[0])
		v := hr.Spec.Values
		if v.ClusterID != id {
			t.Errorf("%s: clusterID %q in cluster %s's folder", releases[0], v.ClusterID, id)
		}
		// The chart comes from a source in the same folder and namespace.
		found := false
		for _, s := range append(ofKind(docs, "OCIRepository", dir), ofKind(docs, "HelmRepository", dir)...) {
			found = found || (s.Meta.Kind == hr.Spec.ChartRef.Kind && s.Meta.Metadata.Name == hr.Spec.ChartRef.Name &&
				s.Meta.Metadata.Namespace == hr.Metadata.Namespace)
		}
		if !found {
			t.Errorf("%s: chartRef %+v is not in %s", releases[0], hr.Spec.ChartRef, dir)
		}
		// Addresses the values give are the cluster's own, as Git says.
		addrs := append(append(append([]string{}, v.Operator.PodCIDRs...), v.Operator.ServiceCIDRs...), v.CoreDNS.Forward...)
		if v.DNSService.ClusterIP != "" {
			addrs = append(addrs, v.DNSService.ClusterIP)
		}
		for _, a := range addrs {
			if !inside(a, allowed[id]) {
				t.Errorf("%s: %s is outside the allowedCIDRs of ClusterPeer %s %v", releases[0], a, id, allowed[id])
			}
		}
		// A key brought along is a Secret in the same folder, which the
		// Kustomization applying the folder decrypts.
		if name := v.ClusterKey.ExistingSecret; name != "" {
			ok := false
			for _, s := range ofKind(docs, "Secret", dir) {
				ok = ok || (s.Meta.Metadata.Name == name && s.Meta.Metadata.Namespace == hr.Metadata.Namespace)
			}
			if !ok {
				t.Errorf("%s: clusterKey.existingSecret %s/%s is not in %s", releases[0], hr.Metadata.Namespace, name, dir)
			}
			for _, d := range ofKind(docs, "Kustomization", filepath.Join("flux", "clusters", id)) {
				k := decode[fluxKustomization](t, d)
				if filepath.Clean(k.Spec.Path) == dir && (k.Spec.Decryption == nil || k.Spec.Decryption.Provider != "sops") {
					t.Errorf("%s applies %s, which holds the key Secret, without SOPS decryption", d, dir)
				}
			}
		}
	}
}

// Each cluster's Flux Kustomizations apply the cluster's chart folder and
// then the ClusterPeer folder, in that order: the second depends on the
// first, whose health check is the ClusterPeer CRD. Paths exist.
func TestFluxKustomizationsApplyTheChartThenTheClusterPeers(t *testing.T) {
	docs := loadExamples(t)
	for _, id := range exampleClusters(t, docs) {
		dir := filepath.Join("flux", "clusters", id)
		byName := map[string]fluxKustomization{}
		var chart, peers *fluxKustomization
		for _, d := range ofKind(docs, "Kustomization", dir) {
			k := decode[fluxKustomization](t, d)
			byName[k.Metadata.Name] = k
			path := filepath.Clean(k.Spec.Path)
			if info, err := os.Stat(filepath.Join(examples, path)); err != nil || !info.IsDir() {
				t.Errorf("%s: path %s is not a folder of the example", d, k.Spec.Path)
			}
			switch path {
			case filepath.Join("flux", "wirespan", id):
				chart = &k
			case "clusterpeers":
				peers = &k
			}
		}
		if chart == nil || peers == nil {
			t.Errorf("%s: want a Kustomization of ./flux/wirespan/%s and one of ./clusterpeers", dir, id)
			continue
		}
		crd := false
		for _, h := range chart.Spec.HealthChecks {
			crd = crd || (h.Kind == "CustomResourceDefinition" && h.Name == "clusterpeers.wirespan.io")
		}
		if !crd {
			t.Errorf("%s: Kustomization %s does not wait for the ClusterPeer CRD", dir, chart.Metadata.Name)
		}
		deps := false
		for _, dep := range peers.Spec.DependsOn {
			_, exists := byName[dep.Name]
			if !exists {
				t.Errorf("%s: Kustomization %s depends on %s, which %s does not define", dir, peers.Metadata.Name, dep.Name, dir)
			}
			deps = deps || dep.Name == chart.Metadata.Name
		}
		if !deps {
			t.Errorf("%s: Kustomization %s does not depend on %s", dir, peers.Metadata.Name, chart.Metadata.Name)
		}
		if !peers.Spec.Prune {
			t.Errorf("%s: Kustomization %s must prune: deleting a ClusterPeer from Git is how a cluster leaves", dir, peers.Metadata.Name)
		}
	}
}

// The chart version the example asks for is the chart in this repository.
func TestExampleFollowsTheChartVersion(t *testing.T) {
	docs := loadExamples(t)
	raw, err := os.ReadFile(filepath.Join(repo, "charts", "wirespan", "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct{ Version string }
	if err := yaml.Unmarshal(raw, &chart); err != nil {
		t.Fatal(err)
	}
	major, minor, _ := strings.Cut(chart.Version, ".")
	minor, _, _ = strings.Cut(minor, ".")
	for _, d := range ofKind(docs, "OCIRepository", "") {
		s := decode[ociRepository](t, d)
		if want := major + "." + minor + ".x"; s.Spec.Ref.Semver != want {
			t.Errorf("%s: semver %q, want %q for chart %s", d, s.Spec.Ref.Semver, want, chart.Version)
		}
	}
	for _, app := range generatedApplications(t, docs) {
		a := decode[application](t, app)
		if a.Spec.Source.Chart != "" && a.Spec.Source.TargetRevision != chart.Version {
			t.Errorf("%s: targetRevision %q, the chart is %s", app, a.Spec.Source.TargetRevision, chart.Version)
		}
	}
}

// The Argo CD Applications stay inside their AppProject: its sources, its
// destinations, and a Git path that exists in the example.
func TestArgoCDApplicationsFitTheirProject(t *testing.T) {
	docs := loadExamples(t)
	type project struct {
		Spec struct {
			SourceRepos  []string `json:"sourceRepos"`
			Destinations []struct {
				Server, Namespace string
			} `json:"destinations"`
		} `json:"spec"`
	}
	projects := map[string]project{}
	for _, d := range ofKind(docs, "AppProject", "") {
		projects[d.Meta.Metadata.Name] = decode[project](t, d)
	}
	for _, app := range generatedApplications(t, docs) {
		a := decode[application](t, app)
		p, ok := projects[a.Spec.Project]
		if !ok {
			t.Errorf("%s: project %q is not in the example", app, a.Spec.Project)
			continue
		}
		if !slices.Contains(p.Spec.SourceRepos, a.Spec.Source.RepoURL) {
			t.Errorf("%s: source %s is not among project %s's sourceRepos %v", app, a.Spec.Source.RepoURL, a.Spec.Project, p.Spec.SourceRepos)
		}
		allowed := false
		for _, dst := range p.Spec.Destinations {
			allowed = allowed || (dst.Server == "*" || dst.Server == a.Spec.Destination.Server) && dst.Namespace == a.Spec.Destination.Namespace
		}
		if !allowed {
			t.Errorf("%s: destination %+v is not among project %s's", app, a.Spec.Destination, a.Spec.Project)
		}
		if a.Spec.Source.Chart == "" {
			if info, err := os.Stat(filepath.Join(examples, a.Spec.Source.Path)); err != nil || !info.IsDir() {
				t.Errorf("%s: path %q is not a folder of the example", app, a.Spec.Source.Path)
			}
		}
	}
}
