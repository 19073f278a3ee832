package gitops

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/wirespan/wirespan/internal/testreq"
)

// crdModule is a Go module, at a pinned version, that ships CRDs: Flux's
// controllers and Argo CD publish theirs in their source, and the Go module
// proxy serves the source. go mod download verifies it against the
// checksum database and caches it in the module cache, so only the first
// run downloads anything.
type crdModule struct {
	path, version string
	// crds are the files to install, relative to the module's root.
	crds []string
}

// The Flux release these follow is v2.9.5 (its go.mod pins the same
// controller APIs). Bump them together, with the example's apiVersions.
var fluxModules = []crdModule{
	{"github.com/fluxcd/source-controller", "v1.9.5", []string{
		"config/crd/bases/source.toolkit.fluxcd.io_ocirepositories.yaml",
		"config/crd/bases/source.toolkit.fluxcd.io_helmrepositories.yaml",
		"config/crd/bases/source.toolkit.fluxcd.io_gitrepositories.yaml",
	}},
	{"github.com/fluxcd/kustomize-controller", "v1.9.5", []string{
		"config/crd/bases/kustomize.toolkit.fluxcd.io_kustomizations.yaml",
	}},
	{"github.com/fluxcd/helm-controller", "v1.6.4", []string{
		"config/crd/bases/helm.toolkit.fluxcd.io_helmreleases.yaml",
	}},
}

// argoCDModule is Argo CD's whole source: 54 MB to download and about
// 210 MB in the module cache (mostly its docs), once per machine; about
// 10 s here. There is no smaller module with its CRDs. v3.6 needs Go 1.27.
var argoCDModule = crdModule{"github.com/argoproj/argo-cd/v3", "v3.5.7", []string{
	"manifests/crds/application-crd.yaml",
	"manifests/crds/applicationset-crd.yaml",
	"manifests/crds/appproject-crd.yaml",
}}

// moduleDir downloads m (or finds it in the module cache) and returns its
// folder. It skips the test if the module proxy cannot be reached and the
// module is not cached; any other failure fails it.
func moduleDir(t *testing.T, m crdModule) string {
	t.Helper()
	start := time.Now()
	cmd := exec.Command("go", "mod", "download", "-json", m.path+"@"+m.version)
	// Outside the repository's module: nothing here may touch go.mod or
	// go.sum. GOTOOLCHAIN=local: a module needing a newer Go must fail
	// here, not fetch a toolchain.
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOFLAGS=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, runErr := cmd.Output()
	var res struct{ Dir, Error string }
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("go mod download %s@%s: %v; output %q, stderr %q", m.path, m.version, runErr, out, stderr.String())
	}
	if res.Error != "" || runErr != nil {
		msg := res.Error + " " + stderr.String()
		if proxyUnreachable(msg) {
			// `make test` fetches the modules first (make crd-modules) and
			// requires them: there, a missing module is a failure.
			testreq.CannotRun(t, testreq.Modules, fmt.Sprintf("the Go module proxy is unreachable and %s@%s is not in the module cache, so its CRDs are not available: %s", m.path, m.version, msg))
		}
		t.Fatalf("go mod download %s@%s: %v: %s", m.path, m.version, runErr, msg)
	}
	if d := time.Since(start); d > time.Second {
		t.Logf("go mod download %s@%s: %v", m.path, m.version, d.Round(time.Millisecond))
	}
	return res.Dir
}

// proxyUnreachable says whether go's error means the network or the proxy
// was not there, rather than that the module or version does not exist.
func proxyUnreachable(msg string) bool {
	for _, s := range []string{"dial tcp", "no such host", "connection refused", "i/o timeout",
		"network is unreachable", "TLS handshake timeout", "GOPROXY=off", "proxyconnect", "server misbehaving"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

var (
	installMu sync.Mutex
	installed = map[string]bool{}
)

// installCRDs installs the modules' CRDs into the test's API server, once
// per module, and waits until they are served.
func installCRDs(t *testing.T, modules ...crdModule) {
	t.Helper()
	installMu.Lock()
	defer installMu.Unlock()
	for _, m := range modules {
		if installed[m.path] {
			continue
		}
		dir := moduleDir(t, m)
		var paths []string
		for _, f := range m.crds {
			paths = append(paths, filepath.Join(dir, f))
		}
		start := time.Now()
		// Argo CD's ApplicationSet CRD is 1.4 MB of schema: the API server
		// takes a while to serve it.
		opts := envtest.CRDInstallOptions{Paths: paths, ErrorIfPathMissing: true, MaxTime: 2 * time.Minute}
		if _, err := envtest.InstallCRDs(env.Config, opts); err != nil {
			t.Fatalf("install the CRDs of %s@%s: %v", m.path, m.version, err)
		}
		t.Logf("installed the CRDs of %s@%s in %v", m.path, m.version, time.Since(start).Round(time.Millisecond))
		installed[m.path] = true
	}
}

// ensureNamespaces creates namespaces for real: a server dry-run of an
// object in a namespace that does not exist fails.
func ensureNamespaces(t *testing.T, names ...string) {
	t.Helper()
	for _, ns := range names {
		manifest := fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", ns)
		if out, err := env.Kubectl(manifest, "apply", "-f", "-"); err != nil {
			t.Fatalf("create namespace %s: %v\n%s", ns, err, out)
		}
	}
}

// TestCRDModulesAvailable fetches every module whose CRDs the suite
// installs (or finds it in the module cache). It needs no control plane,
// so `make crd-modules` runs it alone, with -short, as the set-up step of
// `make test` that makes the fetch happen before the suites need it.
func TestCRDModulesAvailable(t *testing.T) {
	for _, m := range append(slices.Clone(fluxModules), argoCDModule) {
		dir := moduleDir(t, m)
		for _, f := range m.crds {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("%s@%s has no %s: %v", m.path, m.version, f, err)
			}
		}
	}
}
