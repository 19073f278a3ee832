package gitops

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"text/template"

	"sigs.k8s.io/yaml"
)

// application is the part of an Argo CD Application the tests read.
type application struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Project string `json:"project"`
		Source  struct {
			RepoURL        string `json:"repoURL"`
			Path           string `json:"path"`
			Chart          string `json:"chart"`
			TargetRevision string `json:"targetRevision"`
			Helm           struct {
				ReleaseName  string         `json:"releaseName"`
				ValuesObject map[string]any `json:"valuesObject"`
				Values       string         `json:"values"`
			} `json:"helm"`
		} `json:"source"`
		Destination struct {
			Server    string `json:"server"`
			Namespace string `json:"namespace"`
		} `json:"destination"`
	} `json:"spec"`
}

// clusterParams are the parameters Argo CD's cluster generator gives a
// goTemplate for one cluster: its name and server, and the labels and
// annotations of its cluster Secret. The example labels every cluster with
// wirespan.io/cluster-id; argocd cluster add adds the secret-type label.
func clusterParams(id string) map[string]any {
	return map[string]any{
		"name":           id + "-admin@" + id,
		"nameNormalized": id + "-admin-" + id,
		"server":         "https://" + id + ".k8s.example.com",
		"project":        "",
		"metadata": map[string]any{
			"labels": map[string]any{
				"argocd.argoproj.io/secret-type": "cluster",
				"wirespan.io/cluster-id":         id,
			},
		},
	}
}

// renderTemplate executes every string in v (maps and lists are walked) as
// a Go template over params, the way an ApplicationSet with goTemplate
// renders its template for each generated set of parameters.
func renderTemplate(v any, params map[string]any, options []string) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range v {
			r, err := renderTemplate(e, params, options)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			r, err := renderTemplate(e, params, options)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = r
		}
		return out, nil
	case string:
		tmpl, err := template.New("").Option(options...).Parse(v)
		if err != nil {
			return nil, err
		}
		var b strings.Builder
		if err := tmpl.Execute(&b, params); err != nil {
			return nil, err
		}
		return b.String(), nil
	default:
		return v, nil
	}
}

// exampleClusters are the cluster IDs of the example: its ClusterPeers.
func exampleClusters(t *testing.T, docs []document) []string {
	t.Helper()
	var ids []string
	for _, d := range ofKind(docs, "ClusterPeer", "") {
		ids = append(ids, d.Meta.Metadata.Name)
	}
	slices.Sort(ids)
	if len(ids) == 0 {
		t.Fatal("no ClusterPeer in the examples")
	}
	return ids
}

// generatedApplications renders every ApplicationSet of the example for
// every example cluster, as Argo CD would once each cluster is added with
// its label, and returns the Applications.
func generatedApplications(t *testing.T, docs []document) []document {
	t.Helper()
	sets := ofKind(docs, "ApplicationSet", "")
	if len(sets) == 0 {
		t.Fatal("no ApplicationSet in the examples")
	}
	var apps []document
	for _, set := range sets {
		var s struct {
			Spec struct {
				GoTemplate        bool           `json:"goTemplate"`
				GoTemplateOptions []string       `json:"goTemplateOptions"`
				Template          map[string]any `json:"template"`
				Generators        []struct {
					Clusters map[string]any `json:"clusters"`
				} `json:"generators"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(set.Raw, &s); err != nil {
			t.Fatal(err)
		}
		// The renderer here is Go templates only, and the parameters the
		// cluster generator's.
		if !s.Spec.GoTemplate || len(s.Spec.Generators) != 1 || s.Spec.Generators[0].Clusters == nil {
			t.Fatalf("%s: this test renders goTemplate ApplicationSets with one cluster generator", set)
		}
		for _, id := range exampleClusters(t, docs) {
			rendered, err := renderTemplate(s.Spec.Template, clusterParams(id), s.Spec.GoTemplateOptions)
			if err != nil {
				t.Fatalf("%s for cluster %s: %v", set, id, err)
			}
			tmpl := rendered.(map[string]any)
			metadata, _ := tmpl["metadata"].(map[string]any)
			metadata["namespace"] = set.Meta.Metadata.Namespace
			app := map[string]any{
				"apiVersion": "argoproj.io/v1alpha1",
				"kind":       "Application",
				"metadata":   metadata,
				"spec":       tmpl["spec"],
			}
			raw, err := yaml.Marshal(app)
			if err != nil {
				t.Fatal(err)
			}
			d, err := parseDocument(fmt.Sprintf("%s (cluster %s)", set.File, id), raw)
			if err != nil {
				t.Fatalf("%s for cluster %s: %v", set, id, err)
			}
			apps = append(apps, *d)
		}
	}
	return apps
}

// The renderer must fail where Argo CD's would: a missing key with
// missingkey=error, a template that does not parse.
func TestApplicationSetRendererRefusesBadTemplates(t *testing.T) {
	params := clusterParams("east")
	opts := []string{"missingkey=error"}
	got, err := renderTemplate(map[string]any{"a": []any{`x-{{ index .metadata.labels "wirespan.io/cluster-id" }}`}}, params, opts)
	if err != nil || got.(map[string]any)["a"].([]any)[0] != "x-east" {
		t.Fatalf("good template: %v, %v", got, err)
	}
	for _, bad := range []string{`{{ .nosuch }}`, `{{ .metadata.nosuch.x }}`, `{{ index .metadata.labels "wirespan.io/cluster-id" `} {
		if _, err := renderTemplate(bad, params, opts); err == nil {
			t.Errorf("%s: rendered without error", bad)
		}
	}
}
