package gitops

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/wirespan/wirespan/internal/testenv"
)

// release is one installation of the chart that the example asks for.
type release struct {
	// from names the object that asks for it.
	from            string
	name, namespace string
	values          map[string]any
}

// helmReleases are the example's Flux HelmReleases as chart installations.
func helmReleases(t *testing.T, docs []document) []release {
	t.Helper()
	var out []release
	for _, d := range ofKind(docs, "HelmRelease", "") {
		var hr struct {
			Metadata struct{ Name, Namespace string } `json:"metadata"`
			Spec     struct {
				ReleaseName     string         `json:"releaseName"`
				TargetNamespace string         `json:"targetNamespace"`
				Values          map[string]any `json:"values"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(d.Raw, &hr); err != nil {
			t.Fatal(err)
		}
		// helm-controller's defaults: the release goes to targetNamespace,
		// else the HelmRelease's own, and is named after the HelmRelease
		// (prefixed by targetNamespace when set).
		r := release{from: d.String(), name: hr.Spec.ReleaseName, namespace: hr.Spec.TargetNamespace, values: hr.Spec.Values}
		if r.namespace == "" {
			r.namespace = hr.Metadata.Namespace
		}
		if r.name == "" {
			r.name = hr.Metadata.Name
			if hr.Spec.TargetNamespace != "" {
				r.name = hr.Spec.TargetNamespace + "-" + hr.Metadata.Name
			}
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		t.Fatal("no HelmRelease in the examples")
	}
	return out
}

// argoReleases are the chart installations of the Applications the
// example's ApplicationSets generate.
func argoReleases(t *testing.T, docs []document) []release {
	t.Helper()
	var out []release
	for _, app := range generatedApplications(t, docs) {
		a := decode[application](t, app)
		if a.Spec.Source.Chart == "" {
			continue // not a chart: the ClusterPeer folder
		}
		if a.Spec.Source.Chart != "wirespan" {
			t.Fatalf("%s: chart %q", app, a.Spec.Source.Chart)
		}
		values := map[string]any{}
		if a.Spec.Source.Helm.Values != "" {
			if err := yaml.Unmarshal([]byte(a.Spec.Source.Helm.Values), &values); err != nil {
				t.Fatalf("%s: helm.values: %v", app, err)
			}
		}
		// valuesObject wins over values, key by key at the top.
		for k, v := range a.Spec.Source.Helm.ValuesObject {
			values[k] = v
		}
		name := a.Spec.Source.Helm.ReleaseName
		if name == "" {
			name = a.Metadata.Name // Argo CD's default
		}
		out = append(out, release{from: app.File, name: name, namespace: a.Spec.Destination.Namespace, values: values})
	}
	if len(out) == 0 {
		t.Fatal("no ApplicationSet of the examples installs the chart")
	}
	return out
}

// helmTemplate renders the repository's chart with r's values, with the
// chart's schema checked, and returns the manifests or helm's error.
func helmTemplate(t *testing.T, r release) (string, error) {
	t.Helper()
	helm, err := testenv.Binary("helm")
	if err != nil {
		t.Fatal(err)
	}
	values, err := yaml.Marshal(r.values)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(file, values, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(helm, "template", r.name, filepath.Join(repo, "charts", "wirespan"), "--namespace", r.namespace, "--values", file)
	// helm keeps a cache and config under $HOME; keep the test's apart.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", &helmError{err: err, stderr: stderr.String()}
	}
	return string(out), nil
}

type helmError struct {
	err    error
	stderr string
}

func (e *helmError) Error() string { return e.err.Error() + ": " + e.stderr }

// Every set of values the example gives the chart, through Flux or Argo
// CD, is accepted by the chart's schema and renders an operator and
// gateways for that cluster.
func TestChartAcceptsTheExampleValues(t *testing.T) {
	needEnv(t)
	docs := loadExamples(t)
	releases := append(helmReleases(t, docs), argoReleases(t, docs)...)
	for _, r := range releases {
		t.Run(r.from, func(t *testing.T) {
			id, _ := r.values["clusterID"].(string)
			if id == "" {
				t.Fatalf("no clusterID in the values: %v", r.values)
			}
			out, err := helmTemplate(t, r)
			if err != nil {
				t.Fatalf("helm template: %v", err)
			}
			for _, want := range []string{"kind: Deployment", "kind: DaemonSet", `"--cluster-id=` + id + `"`} {
				if !strings.Contains(out, want) {
					t.Errorf("the rendered chart lacks %s", want)
				}
			}
		})
	}
	// The schema is really checked: a misspelled value fails the render.
	bad := releases[0]
	bad.values = map[string]any{"clusterID": "east", "clusterKey": map[string]any{"existingSecrets": "x"}}
	if _, err := helmTemplate(t, bad); err == nil || !strings.Contains(err.Error(), "existingSecrets") {
		t.Errorf("a misspelled value: want a schema error naming it, got %v", err)
	}
}
