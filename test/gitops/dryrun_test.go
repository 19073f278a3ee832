package gitops

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// dryRun runs `kubectl apply --dry-run=server` with args (and stdin) and
// checks that the API server accepted every one of want objects. kubectl
// asks for strict field validation by default, so an unknown or misplaced
// field is a refusal, as is anything the CRD's schema or CEL rules refuse.
func dryRun(t *testing.T, stdin string, want int, args ...string) {
	t.Helper()
	out, err := env.Kubectl(stdin, append([]string{"apply", "--dry-run=server"}, args...)...)
	if err != nil {
		t.Fatalf("kubectl apply --dry-run=server %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	accepted := strings.Count(out, "(server dry run)")
	if accepted != want || strings.Contains(strings.ToLower(out), "warning") {
		t.Fatalf("kubectl apply --dry-run=server %s: %d of %d objects accepted, or warnings:\n%s", strings.Join(args, " "), accepted, want, out)
	}
	t.Logf("%s", strings.TrimSpace(out))
}

// refused checks that the API server refuses doc with field added to its
// spec: proof that the CRD is installed and its schema enforced, so that
// the acceptance above means something.
func refused(t *testing.T, d document) {
	t.Helper()
	spec, ok := d.Object["spec"].(map[string]any)
	if !ok {
		t.Fatalf("%s: no spec", d)
	}
	bad := map[string]any{}
	for k, v := range d.Object {
		bad[k] = v
	}
	badSpec := map[string]any{"notAField": true}
	for k, v := range spec {
		badSpec[k] = v
	}
	bad["spec"] = badSpec
	manifest, err := yaml.Marshal(bad)
	if err != nil {
		t.Fatal(err)
	}
	out, err := env.Kubectl(string(manifest), "apply", "--dry-run=server", "-f", "-")
	if err == nil || !strings.Contains(out, `unknown field "spec.notAField"`) {
		t.Errorf("%s with spec.notAField: want a refusal naming the field, got %v:\n%s", d, err, out)
	}
}

// countIn counts the documents under dir (relative to examples/gitops).
func countIn(docs []document, dir string) int {
	n := 0
	for _, d := range docs {
		if d.File == dir || strings.HasPrefix(d.File, dir+string(filepath.Separator)) {
			n++
		}
	}
	return n
}

// firstOfKind returns the first document of each kind under dir.
func firstOfKind(docs []document, dir string) []document {
	seen := map[string]bool{}
	var out []document
	for _, d := range docs {
		if strings.HasPrefix(d.File, dir+string(filepath.Separator)) && !seen[d.Meta.Kind] {
			seen[d.Meta.Kind] = true
			out = append(out, d)
		}
	}
	return out
}

// The ClusterPeer folder, as a user or Flux applies it, passes Wirespan's
// admission rules (schema and CEL).
func TestClusterPeersAcceptedByAPIServer(t *testing.T) {
	needEnv(t)
	docs := loadExamples(t)
	peers := ofKind(docs, "ClusterPeer", "")
	dryRun(t, "", countIn(docs, "clusterpeers"), "--recursive", "-f", filepath.Join(examples, "clusterpeers"))
	// And the admission rules are really there: a broken copy is refused.
	broken := strings.Replace(string(peers[0].Raw), "allowedCIDRs:", "allowedCIDRs:\n    - 10.16.0.1/16", 1)
	out, err := env.Kubectl(broken, "apply", "--dry-run=server", "-f", "-")
	if err == nil || !strings.Contains(out, "must have no host bits set") {
		t.Errorf("%s with a CIDR with host bits: want a refusal, got %v:\n%s", peers[0], err, out)
	}
}

// Every Flux object of the example (Kustomizations, OCIRepositories,
// HelmReleases, and the namespace and key Secret they bring) is accepted
// by an API server with Flux's own CRDs.
func TestFluxObjectsAcceptedByAPIServer(t *testing.T) {
	needEnv(t)
	docs := loadExamples(t)
	installCRDs(t, fluxModules...)
	ensureNamespaces(t, "flux-system", "wirespan-system")
	dryRun(t, "", countIn(docs, "flux"), "--recursive", "-f", filepath.Join(examples, "flux"))
	for _, d := range firstOfKind(docs, "flux") {
		if _, ok := d.Object["spec"]; ok {
			refused(t, d)
		}
	}
}

// Every Argo CD object of the example, and every Application its
// ApplicationSets generate for the example's clusters, is accepted by an
// API server with Argo CD's own CRDs.
func TestArgoCDObjectsAcceptedByAPIServer(t *testing.T) {
	needEnv(t)
	docs := loadExamples(t)
	installCRDs(t, argoCDModule)
	ensureNamespaces(t, "argocd")
	dryRun(t, "", countIn(docs, "argocd"), "--recursive", "-f", filepath.Join(examples, "argocd"))
	for _, d := range firstOfKind(docs, "argocd") {
		refused(t, d)
	}
	apps := generatedApplications(t, docs)
	var stream strings.Builder
	for _, app := range apps {
		manifest, err := yaml.Marshal(app.Object)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&stream, "---\n%s", manifest)
	}
	dryRun(t, stream.String(), len(apps), "-f", "-")
	refused(t, apps[0])
}
