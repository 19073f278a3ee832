package chart

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/wirespan/wirespan/internal/testenv"
)

var (
	env *testenv.Env
	// helmBin is the pinned helm; chartDir the chart under test.
	helmBin, chartDir, repo string
)

// release is what the tests install as: the release name and namespace
// docs/helm.md uses.
const (
	releaseName = "wirespan"
	namespace   = "wirespan-system"
)

func TestMain(m *testing.M) {
	code := testenv.Main(m, testenv.Options{ExtraCRDPaths: []string{
		// A real ServiceMonitor schema, so that the chart's is checked.
		"testdata/monitoring.coreos.com_servicemonitors.yaml",
		// And the PrometheusRule's, for the chart's alerts.
		"testdata/monitoring.coreos.com_prometheusrules.yaml",
		// The KEP-2149 ClusterProperty API: the operator then reads the
		// property at start, which needs its RBAC rule.
		"../../operator/testdata/clusterproperty-crd.yaml",
	}}, func(e *testenv.Env) error {
		env = e
		var err error
		if repo, err = testenv.RepoRoot(); err != nil {
			return err
		}
		if helmBin, err = testenv.Binary("helm"); err != nil {
			return err
		}
		chartDir = filepath.Join(repo, "charts", "wirespan")
		_, err = env.Kubectl("", "create", "namespace", namespace)
		return err
	})
	os.Exit(code)
}

// helm runs the pinned helm and returns its stdout, or an error with its
// stderr.
func helm(args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(helmBin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// template renders the chart as release "wirespan" in wirespan-system
// with more helm arguments (--set, -f, --api-versions).
func template(args ...string) (string, error) {
	return helm(append([]string{"template", releaseName, chartDir, "--namespace", namespace}, args...)...)
}

// rendered is a rendered chart, split into objects.
type rendered struct {
	yaml    string
	objects []*unstructured.Unstructured
}

// render renders the chart and fails the test if that fails.
func render(t *testing.T, args ...string) *rendered {
	t.Helper()
	out, err := template(args...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode(out)
	if err != nil {
		t.Fatal(err)
	}
	return &rendered{yaml: out, objects: objs}
}

func decode(stream string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	reader := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(stream)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			return nil, fmt.Errorf("rendered YAML: %w\n%s", err, doc)
		}
		if len(obj) > 0 {
			out = append(out, &unstructured.Unstructured{Object: obj})
		}
	}
}

// kinds counts the rendered objects by kind.
func (r *rendered) kinds() map[string]int {
	out := map[string]int{}
	for _, o := range r.objects {
		out[o.GetKind()]++
	}
	return out
}

// get returns the object of kind named name (any namespace), or nil.
func (r *rendered) get(kind, name string) *unstructured.Unstructured {
	for _, o := range r.objects {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// into converts the object of kind named name into out, failing the test
// if there is none.
func (r *rendered) into(t *testing.T, kind, name string, out any) {
	t.Helper()
	o := r.get(kind, name)
	if o == nil {
		t.Fatalf("no %s %s rendered; got %v", kind, name, r.kinds())
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, out); err != nil {
		t.Fatalf("%s %s: %v", kind, name, err)
	}
}

// without returns the rendered stream without the objects of kinds.
func (r *rendered) without(t *testing.T, kinds ...string) string {
	t.Helper()
	var b strings.Builder
	for _, o := range r.objects {
		skip := false
		for _, k := range kinds {
			skip = skip || o.GetKind() == k
		}
		if skip {
			continue
		}
		raw, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(raw)
	}
	return b.String()
}
