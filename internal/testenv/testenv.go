// Package testenv starts a real kube-apiserver and etcd (controller-runtime's
// envtest over the binaries `make bins` builds) with Wirespan's CRDs
// installed, for the tests of every package that talks to Kubernetes.
//
// It never downloads anything: when the binaries are missing it fails with
// the command that builds them.
package testenv

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
)

// Env is a running control plane.
type Env struct {
	Config *rest.Config
	Client client.Client
	Scheme *runtime.Scheme
	// Kubeconfig is the path of an admin kubeconfig file for kubectl and for
	// binaries under test. It is removed by Stop.
	Kubeconfig string
	// KubectlPath is the pinned kubectl built with the control plane.
	KubectlPath string

	env      *envtest.Environment
	dir      string
	root     string
	cleanups []func()
	// servingCertDir is the folder envtest made for webhook certificates,
	// already removed; kept so a test can check that it is gone.
	servingCertDir string
}

// Cleanup registers f to run when Stop is called, before the control plane
// stops, last registered first. Stop anything that talks to the apiserver
// here: an apiserver with open watches is slow to stop.
func (e *Env) Cleanup(f func()) {
	e.cleanups = append(e.cleanups, f)
}

// Options add to what every Env has.
type Options struct {
	// ExtraCRDPaths are more CRD files or folders to install, such as test
	// fixtures of third-party APIs.
	ExtraCRDPaths []string
}

// Start starts etcd and kube-apiserver, installs the CRDs from the chart and
// waits until they are served. Call Stop when done; Start also stops the
// control plane if the test binary is interrupted.
func Start(opts Options) (*Env, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets, err := AssetsDir(root)
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := wirespanv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     append([]string{filepath.Join(root, "charts", "wirespan", "files", "crds")}, opts.ExtraCRDPaths...),
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
		// envtest's 20 s is too short for a kube-apiserver started while
		// `make test` runs other packages' control planes and the lab on two
		// cores: it failed there, retried five times. A healthy start takes
		// a few seconds either way.
		ControlPlaneStartTimeout: 90 * time.Second,
	}
	reap(root, assets)
	cfg, err := env.Start()
	if err != nil {
		// Start can fail after etcd and the apiserver are up (a CRD the
		// apiserver refuses, say); they must not outlive the test.
		_ = env.Stop()
		return nil, fmt.Errorf("start control plane from %s: %w", assets, err)
	}
	// envtest writes webhook serving certificates to a new folder in $TMPDIR
	// even when there are no webhooks, and removes it only in Stop: a test
	// binary killed outright would leave it behind. Wirespan has no
	// webhooks, so it goes at once.
	servingCertDir := env.WebhookInstallOptions.LocalServingCertDir
	if servingCertDir != "" {
		_ = os.RemoveAll(servingCertDir)
		env.WebhookInstallOptions.LocalServingCertDir = ""
	}
	e := &Env{Config: cfg, Scheme: scheme, env: env, root: root, KubectlPath: filepath.Join(assets, "kubectl"), servingCertDir: servingCertDir}
	stopOnSignal(e)
	if err := record(root, assets); err != nil {
		_ = e.Stop()
		return nil, fmt.Errorf("record control-plane processes: %w", err)
	}
	if e.Client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		_ = e.Stop()
		return nil, fmt.Errorf("client: %w", err)
	}
	// The kubeconfig lives beside this binary's record, so that reap removes
	// it too if the binary dies without cleaning up.
	if e.dir, err = os.MkdirTemp(ledgerDir(root), strconv.Itoa(os.Getpid())+"-"); err != nil {
		_ = e.Stop()
		return nil, err
	}
	e.Kubeconfig = filepath.Join(e.dir, "kubeconfig")
	if err := os.WriteFile(e.Kubeconfig, env.KubeConfig, 0o600); err != nil {
		_ = e.Stop()
		return nil, err
	}
	return e, nil
}

// Stop stops the control plane and removes its files.
func (e *Env) Stop() error {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
	e.cleanups = nil
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
	err := e.env.Stop()
	if err == nil && e.root != "" {
		forget(e.root)
	}
	return err
}

// Kubectl runs the pinned kubectl against the control plane with stdin as its
// input and returns its combined output.
func (e *Env) Kubectl(stdin string, args ...string) (string, error) {
	cmd := exec.Command(e.KubectlPath, append([]string{"--kubeconfig", e.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// stopOnSignal stops the control plane when the test binary gets SIGINT or
// SIGTERM, so an interrupted `go test` leaves no apiserver or etcd behind.
func stopOnSignal(e *Env) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-ch
		fmt.Fprintf(os.Stderr, "testenv: %v: stopping control plane\n", sig)
		_ = e.Stop()
		os.Exit(130)
	}()
}

// RepoRoot finds the root of the repository by walking up to go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// AssetsDir returns the folder with kube-apiserver, etcd and kubectl:
// $KUBEBUILDER_ASSETS if set, else the one `make bins` fills. It checks that
// the binaries are there and are the pinned versions' builds.
func AssetsDir(root string) (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = filepath.Join(root, ".cache", "bins", "assets")
	}
	for _, bin := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return "", fmt.Errorf("control-plane binary %s missing in %s: run `make bins` first (it builds them from the Go module proxy)", bin, dir)
		}
	}
	return dir, nil
}

// Binary returns the path of a pinned binary `make bins` builds (helm,
// coredns, kubectl, ...) in the checkout's assets folder, or an error that
// says how to get it.
func Binary(name string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	dir, err := AssetsDir(root)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, name)
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("%s is missing in %s: run `make bins` first (it builds the pinned binaries from the Go module proxy)", name, dir)
	}
	return bin, nil
}

// Versions reads hack/versions.env: the pinned control-plane versions.
func Versions(root string) (map[string]string, error) {
	f, err := os.Open(filepath.Join(root, "hack", "versions.env"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			out[k] = v
		}
	}
	return out, sc.Err()
}
