package gitops

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	serializerjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
)

// document is one YAML document of a file under examples/gitops.
type document struct {
	// File is the file's path relative to examples/gitops.
	File string
	// Raw is the document's YAML; Object is the same, decoded.
	Raw    []byte
	Object map[string]any
	// Meta is the decoded apiVersion, kind and metadata.
	Meta topLevel
}

func (d document) String() string {
	return fmt.Sprintf("%s: %s %s", d.File, d.Meta.Kind, d.Meta.Metadata.Name)
}

// topLevel is the part of every object the tests read.
type topLevel struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	// A Secret's fields.
	Data       map[string][]byte `json:"data,omitempty"`
	StringData map[string]string `json:"stringData,omitempty"`
}

// topLevelFields are all the top-level fields an example object may have,
// and metadataFields all of metadata's. A document with any other (names
// are case-sensitive, as for the API server) fails to parse, so a
// misindented or misspelled field is caught even in objects whose schema
// this package does not know.
var (
	topLevelFields = []string{"apiVersion", "kind", "metadata", "spec", "type", "data", "stringData"}
	metadataFields = jsonFields(reflect.TypeFor[metav1.ObjectMeta]())
)

// jsonFields lists the JSON names of a struct's fields.
func jsonFields(t reflect.Type) []string {
	var names []string
	for f := range t.Fields() {
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

// strict decodes YAML into Kubernetes types as the API server does with
// strict field validation: unknown and duplicate fields are errors, and
// names are case-sensitive.
var strict = func() runtime.Decoder {
	scheme := runtime.NewScheme()
	utilruntime.Must(corev1.AddToScheme(scheme))
	utilruntime.Must(wirespanv1alpha1.AddToScheme(scheme))
	return serializerjson.NewSerializerWithOptions(serializerjson.DefaultMetaFactory, scheme, scheme,
		serializerjson.SerializerOptions{Yaml: true, Strict: true})
}()

// parseDocuments splits a multi-document YAML file and decodes each
// document strictly. Documents that hold only comments are left out.
func parseDocuments(name string, content []byte) ([]document, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(content)))
	var docs []document
	for i := 0; ; i++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		d, err := parseDocument(name, raw)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		if d != nil {
			docs = append(docs, *d)
		}
	}
}

// parseDocument decodes one document; nil if it holds only comments.
func parseDocument(name string, raw []byte) (*document, error) {
	var object map[string]any
	// UnmarshalStrict refuses a key given twice.
	if err := yaml.UnmarshalStrict(raw, &object); err != nil {
		return nil, err
	}
	if object == nil {
		return nil, nil
	}
	if err := onlyFields(object, topLevelFields, ""); err != nil {
		return nil, err
	}
	metadata, ok := object["metadata"].(map[string]any)
	if !ok {
		return nil, errors.New("no metadata")
	}
	if err := onlyFields(metadata, metadataFields, "metadata."); err != nil {
		return nil, err
	}
	d := &document{File: name, Raw: raw, Object: object}
	if err := yaml.Unmarshal(raw, &d.Meta); err != nil {
		return nil, err
	}
	if d.Meta.APIVersion == "" || d.Meta.Kind == "" || d.Meta.Metadata.Name == "" {
		return nil, errors.New("lacks apiVersion, kind or metadata.name")
	}
	// The kinds with Go types in this module are checked field by field
	// here already, before any API server.
	if _, _, err := strict.Decode(raw, nil, nil); err != nil && !runtime.IsNotRegisteredError(err) {
		return nil, fmt.Errorf("%s %s: %w", d.Meta.Kind, d.Meta.Metadata.Name, err)
	}
	return d, nil
}

// onlyFields fails if m has a key not in allowed.
func onlyFields(m map[string]any, allowed []string, prefix string) error {
	for k := range m {
		if !slices.Contains(allowed, k) {
			return fmt.Errorf("unknown field %s%s (known: %s)", prefix, k, strings.Join(allowed, ", "))
		}
	}
	return nil
}

// loadExamples parses every file under examples/gitops. The folder holds
// YAML manifests (.yaml) and READMEs only.
func loadExamples(t *testing.T) []document {
	t.Helper()
	var docs []document
	files := 0
	err := filepath.WalkDir(examples, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(examples, path)
		switch filepath.Ext(path) {
		case ".md":
			return nil
		case ".yaml":
		default:
			return fmt.Errorf("%s: only .yaml manifests and .md files belong in examples/gitops", rel)
		}
		content, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		parsed, err := parseDocuments(rel, content)
		if err != nil {
			return err
		}
		if len(parsed) == 0 {
			return fmt.Errorf("%s: no document", rel)
		}
		files++
		docs = append(docs, parsed...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatalf("no YAML under %s", examples)
	}
	return docs
}

// ofKind returns the documents of one kind, optionally only those in dir
// (relative to examples/gitops).
func ofKind(docs []document, kind, dir string) []document {
	var out []document
	for _, d := range docs {
		if d.Meta.Kind == kind && (dir == "" || filepath.Dir(d.File) == dir) {
			out = append(out, d)
		}
	}
	return out
}

// TestExampleFilesParseStrictly reads every file under examples/gitops:
// each YAML document decodes strictly and names itself, and no folder
// (what Flux or Argo CD applies as one) defines an object twice.
func TestExampleFilesParseStrictly(t *testing.T) {
	docs := loadExamples(t)
	seen := map[string]string{}
	for _, d := range docs {
		id := fmt.Sprintf("%s %s/%s %s/%s", filepath.Dir(d.File), d.Meta.APIVersion, d.Meta.Kind, d.Meta.Metadata.Namespace, d.Meta.Metadata.Name)
		if other, ok := seen[id]; ok {
			t.Errorf("%s and %s define the same object", other, d.File)
		}
		seen[id] = d.File
	}
	t.Logf("%d documents", len(docs))
}

// The parser itself must refuse what the test says it refuses.
func TestStrictParserRefusesBadDocuments(t *testing.T) {
	bad := map[string]string{
		"unknown top-level field": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\nspecs: {}\n",
		"misindented metadata":    "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  namespace: b\n  annotation: {}\n",
		"duplicate key":           "apiVersion: v1\nkind: Namespace\nkind: Namespace\nmetadata:\n  name: a\n",
		"no name":                 "apiVersion: v1\nkind: Namespace\nmetadata: {}\n",
		"no kind":                 "apiVersion: v1\nmetadata:\n  name: a\n",
		"bad second document":     "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  nam: b\n",
		"unknown ClusterPeer field": "apiVersion: wirespan.io/v1alpha1\nkind: ClusterPeer\nmetadata:\n  name: a\n" +
			"spec:\n  publicKeys: ZmH/8OIiICb0zxyw3U2GEoAoZgTQ7rQM7/4s1nlmZAY=\n",
		"ClusterPeer field in the wrong case": "apiVersion: wirespan.io/v1alpha1\nkind: ClusterPeer\nmetadata:\n  name: a\n" +
			"spec:\n  PublicKey: ZmH/8OIiICb0zxyw3U2GEoAoZgTQ7rQM7/4s1nlmZAY=\n",
		"Secret field in the wrong case": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\nstringdata:\n  a: b\n",
	}
	for name, content := range bad {
		_, err := parseDocuments(name, []byte(content))
		if err == nil {
			t.Errorf("%s: parsed without error", name)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
	docs, err := parseDocuments("good", []byte("# only a comment\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n"))
	if err != nil || len(docs) != 1 {
		t.Errorf("a comment-only document and a good one: %d documents, %v", len(docs), err)
	}
}

// wireGuardKey matches what could be a WireGuard key: 32 bytes in base64.
var wireGuardKey = regexp.MustCompile(`[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=`)

// TestNoPrivateKeyInExamples checks that every ClusterPeer carries a valid
// public key, that no Secret holds a usable WireGuard key, and that no
// other key-shaped string appears anywhere, comments included: whatever
// looks like a key must be one of the ClusterPeers' public keys.
func TestNoPrivateKeyInExamples(t *testing.T) {
	docs := loadExamples(t)
	public := map[string]bool{}
	for _, d := range ofKind(docs, "ClusterPeer", "") {
		var cp wirespanv1alpha1.ClusterPeer
		if err := yaml.Unmarshal(d.Raw, &cp); err != nil {
			t.Fatal(err)
		}
		if _, err := wgtypes.ParseKey(cp.Spec.PublicKey); err != nil {
			t.Errorf("%s: publicKey %q: %v", d, cp.Spec.PublicKey, err)
		}
		if public[cp.Spec.PublicKey] {
			t.Errorf("%s: publicKey shared with another ClusterPeer", d)
		}
		public[cp.Spec.PublicKey] = true
	}
	if len(public) == 0 {
		t.Fatal("no ClusterPeer in the examples")
	}
	for _, d := range ofKind(docs, "Secret", "") {
		values := map[string]string{}
		for k, v := range d.Meta.StringData {
			values["stringData."+k] = v
		}
		for k, v := range d.Meta.Data {
			values["data."+k] = string(v)
		}
		for k, v := range values {
			if _, err := wgtypes.ParseKey(strings.TrimSpace(v)); err == nil {
				t.Errorf("%s: %s is a WireGuard key: never commit a key, not even an example one", d, k)
			}
			if !strings.Contains(v, "REPLACE-ME") {
				t.Errorf("%s: %s = %q does not say it is a placeholder", d, k, v)
			}
		}
	}
	err := filepath.WalkDir(examples, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		content, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(examples, path)
		for _, k := range wireGuardKey.FindAllString(string(content), -1) {
			if !public[k] {
				t.Errorf("%s: %s looks like a WireGuard key but is no ClusterPeer's public key", rel, k)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(public) < 2 {
		t.Errorf("a clusterset needs at least two clusters; the examples have %d", len(public))
	}
}
