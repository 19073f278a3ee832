package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"text/template"

	"sigs.k8s.io/yaml"
)

// The krew manifest, rendered as the release bot would, is a krew Plugin
// whose every platform installs this binary.
func TestKrewManifest(t *testing.T) {
	raw, err := os.ReadFile("krew.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const tag = "v0.0.1"
	tpl, err := template.New("krew").Funcs(template.FuncMap{
		"addURIAndSha": func(url, tag string) string {
			url = strings.ReplaceAll(url, "{{ .TagName }}", tag)
			return fmt.Sprintf("uri: %s\n      sha256: %s", url, strings.Repeat("ab", 32))
		},
	}).Parse(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := tpl.Execute(&out, map[string]string{"TagName": tag}); err != nil {
		t.Fatal(err)
	}
	var p struct {
		APIVersion, Kind string
		Metadata         struct{ Name string }
		Spec             struct {
			Version, ShortDescription string
			Platforms                 []struct {
				URI, Sha256, Bin string
				Selector         struct {
					MatchLabels map[string]string `json:"matchLabels"`
				}
			}
		}
	}
	if err := yaml.Unmarshal([]byte(out.String()), &p); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if p.Kind != "Plugin" || p.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || p.Metadata.Name != "wirespan" ||
		p.Spec.Version != tag || p.Spec.ShortDescription == "" || len(p.Spec.Platforms) == 0 {
		t.Fatalf("not a krew Plugin named wirespan: %+v", p)
	}
	for _, pl := range p.Spec.Platforms {
		if pl.Bin != "kubectl-wirespan" || !strings.Contains(pl.URI, tag) || len(pl.Sha256) != 64 ||
			pl.Selector.MatchLabels["os"] == "" || pl.Selector.MatchLabels["arch"] == "" {
			t.Errorf("platform %+v", pl)
		}
	}
}
