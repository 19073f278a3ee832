package devchart

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestWritable(t *testing.T) {
	in := `
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
data: {readOnlyRootFilesystem: "true"}
---
# an empty document, as helm leaves between templates
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  template:
    spec:
      containers:
        - name: a
          securityContext: {readOnlyRootFilesystem: true, runAsUser: 65532}
        - name: b
`
	out, err := Writable([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(strings.TrimPrefix(string(out), "---\n"), "---\n")
	if len(docs) != 2 {
		t.Fatalf("%d documents:\n%s", len(docs), out)
	}
	var cm map[string]any
	if err := yaml.Unmarshal([]byte(docs[0]), &cm); err != nil || cm["data"].(map[string]any)["readOnlyRootFilesystem"] != "true" {
		t.Errorf("the ConfigMap changed: %v %v", cm, err)
	}
	var d struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						SecurityContext map[string]any `json:"securityContext"`
					} `json:"containers"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal([]byte(docs[1]), &d); err != nil {
		t.Fatal(err)
	}
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 2 || cs[0].SecurityContext["readOnlyRootFilesystem"] != false || cs[0].SecurityContext["runAsUser"] != float64(65532) ||
		cs[1].SecurityContext["readOnlyRootFilesystem"] != false {
		t.Errorf("containers %+v", cs)
	}
	if _, err := Writable([]byte("kind: DaemonSet\nspec: {}\n")); err == nil {
		t.Error("a workload without containers passed")
	}
}
