package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/hack/kinddev/internal/livesync"
	"github.com/wirespan/wirespan/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.Options{}, func(e *testenv.Env) error {
		env = e
		return nil
	}))
}

// kubeconfig writes a kubeconfig whose contexts kind-<name> all lead to
// the test's apiserver, and points KUBECONFIG at it: `kinddev` finds its
// clusters the way it does after `make kind-up`.
func kubeconfig(t *testing.T, names ...string) {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	var current string
	for name := range cfg.Contexts {
		current = name
	}
	for _, n := range names {
		c := *cfg.Contexts[current]
		cfg.Contexts["kind-"+n] = &c
	}
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", p)
}

// inTempDir runs the test in an empty folder, the "repository root" the
// tool writes its state under, with a settings file.
func inTempDir(t *testing.T, settings string) string {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("tilt-settings.yaml", []byte(settings), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func node(t *testing.T, name, ip string, gateway bool) {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if gateway {
		n.Labels = map[string]string{wirespanv1alpha1.LabelGateway: "true"}
	}
	ctx := context.Background()
	if err := env.Client.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), n) })
	if ip != "" {
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}, {Type: corev1.NodeInternalIP, Address: ip}}
		if err := env.Client.Status().Update(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
}

// deleteKeySecret removes what prepare made. Its namespace stays: without
// a controller manager, a deleted namespace would never finish terminating.
func deleteKeySecret() {
	_ = env.Client.Delete(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "wirespan-system", Name: "wirespan-cluster-key"}})
}

func TestPrepare(t *testing.T) {
	ctx := context.Background()
	kubeconfig(t, "east", "west")
	node(t, "gw-b", "172.18.0.4", true)
	node(t, "gw-a", "172.18.0.3", true)
	node(t, "worker", "172.18.0.5", false)
	inTempDir(t, "clusters: [east, west]\n")
	t.Cleanup(deleteKeySecret)

	var out bytes.Buffer
	if err := run([]string{"prepare"}, &out); err != nil {
		t.Fatalf("prepare: %v\n%s", err, out.String())
	}
	var secret corev1.Secret
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: "wirespan-system", Name: "wirespan-cluster-key"}, &secret); err != nil {
		t.Fatalf("no key Secret: %v", err)
	}
	if strings.Contains(out.String(), string(secret.Data[wirespanv1alpha1.KeySecretPrivateKey])) {
		t.Error("prepare printed the private key")
	}

	// The folder is what a user would keep in Git, and the real API server
	// (with the CRD's validation) takes it.
	dir := filepath.Join(".cache", "tilt", "clusterpeers")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	if !slices.Equal(files, []string{"east.yaml", "west.yaml"}) {
		t.Fatalf("ClusterPeer folder holds %v", files)
	}
	if out, err := env.Kubectl("", "apply", "-f", dir); err != nil {
		t.Fatalf("kubectl apply -f %s: %v\n%s", dir, err, out)
	}
	t.Cleanup(func() {
		for _, n := range []string{"east", "west"} {
			_ = env.Client.Delete(context.Background(), &wirespanv1alpha1.ClusterPeer{ObjectMeta: metav1.ObjectMeta{Name: n}})
		}
	})
	var west wirespanv1alpha1.ClusterPeer
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "west"}, &west); err != nil {
		t.Fatal(err)
	}
	// Both contexts lead to one API server here, so west found the Secret
	// east made and kept it: an existing key is never replaced.
	if west.Spec.PublicKey != string(secret.Data[wirespanv1alpha1.KeySecretPublicKey]) {
		t.Errorf("publicKey %q, the Secret's is %q", west.Spec.PublicKey, secret.Data[wirespanv1alpha1.KeySecretPublicKey])
	}
	if !slices.Equal(west.Spec.Endpoints, []string{"172.18.0.3:51820", "172.18.0.4:51820"}) {
		t.Errorf("endpoints %v, want the gateway nodes' InternalIPs in name order", west.Spec.Endpoints)
	}
	if !slices.Equal(west.Spec.AllowedCIDRs, []string{"10.202.0.0/16", "10.212.0.0/16"}) {
		t.Errorf("allowedCIDRs %v, want cluster 2's ranges", west.Spec.AllowedCIDRs)
	}

	// Again: nothing changes, so Tilt (which watches the folder) has
	// nothing to apply.
	before, err := os.Stat(filepath.Join(dir, "west.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if err := run([]string{"prepare"}, &out); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(filepath.Join(dir, "west.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !after.ModTime().Equal(before.ModTime()) {
		t.Error("a second prepare rewrote an unchanged manifest")
	}

	// A cluster leaves the settings: its manifest leaves the folder.
	if err := os.WriteFile("tilt-settings.yaml", []byte("clusters: [east]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"prepare"}, &out); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "west.yaml")); !os.IsNotExist(err) {
		t.Errorf("west.yaml still in the folder: %v", err)
	}
}

func TestPrepareRefuses(t *testing.T) {
	ctx := context.Background()
	kubeconfig(t, "lone")
	inTempDir(t, "clusters: [lone]\n")
	t.Cleanup(deleteKeySecret)

	// No gateway node: not a cluster of make kind-up.
	var out bytes.Buffer
	err := run([]string{"prepare"}, &out)
	if err == nil || !strings.Contains(err.Error(), "make kind-up") {
		t.Errorf("prepare without gateway nodes: %v", err)
	}

	// A Secret that holds no key is someone's mistake to fix, never
	// overwritten.
	deleteKeySecret()
	bad := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "wirespan-system", Name: "wirespan-cluster-key"},
		Data:       map[string][]byte{wirespanv1alpha1.KeySecretPrivateKey: []byte("not a key")},
	}
	if err := env.Client.Create(ctx, bad); err != nil {
		t.Fatal(err)
	}
	node(t, "gw", "172.18.0.9", true)
	err = run([]string{"prepare"}, &out)
	if err == nil || !strings.Contains(err.Error(), "not a WireGuard private key") || strings.Contains(err.Error(), "not a key") {
		t.Errorf("prepare with a bad Secret: %v; want an error that does not quote it", err)
	}
	var got corev1.Secret
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(bad), &got); err != nil || string(got.Data[wirespanv1alpha1.KeySecretPrivateKey]) != "not a key" {
		t.Errorf("the bad Secret was changed: %v %q", err, got.Data)
	}
}

// TestSyncTargets: live update of the other clusters finds the running
// containers of each image, and only those.
func TestSyncTargets(t *testing.T) {
	ctx := context.Background()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "sync-targets"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), ns) })
	// No controller manager makes the default ServiceAccount here.
	if err := env.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "default"}}); err != nil {
		t.Fatal(err)
	}
	pod := func(name string, phase corev1.PodPhase, running bool, images ...string) {
		t.Helper()
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: name}}
		for i, img := range images {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "c" + string(rune('0'+i)), Image: img})
		}
		if err := env.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		p.Status.Phase = phase
		for _, c := range p.Spec.Containers {
			st := corev1.ContainerStatus{Name: c.Name, Image: c.Image}
			if running {
				st.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.Now()}
			} else {
				st.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
			}
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, st)
		}
		if err := env.Client.Status().Update(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	const op, gw = "ghcr.io/wirespan/wirespan-operator", "localhost:5001/wirespan-gateway"
	pod("operator-1", corev1.PodRunning, true, op+":tilt-dev")
	pod("gateway-x", corev1.PodRunning, true, "busybox:1.37.0", gw+":tilt-dev@sha256:0123")
	pod("operator-pending", corev1.PodPending, false, op+":tilt-dev")
	pod("operator-waiting", corev1.PodRunning, false, op+":tilt-dev")
	pod("other", corev1.PodRunning, true, "ghcr.io/wirespan/wirespan-operator-other:tilt-dev")

	bins := []livesync.Binary{{Image: op, Path: "bin/wirespan-operator"}, {Image: gw, Path: "bin/wirespan-gateway"}}
	got, err := livesync.Targets(ctx, cs, ns.Name, bins)
	if err != nil {
		t.Fatal(err)
	}
	want := []livesync.Target{
		{Pod: "gateway-x", Container: "c1", Binary: bins[1]},
		{Pod: "operator-1", Container: "c0", Binary: bins[0]},
	}
	if !slices.Equal(got, want) {
		t.Errorf("targets\n%+v\nwant\n%+v", got, want)
	}

	// A pod being deleted is left alone: it is on its way out.
	p := &corev1.Pod{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "operator-1"}, p); err != nil {
		t.Fatal(err)
	}
	p.Finalizers = []string{"test.wirespan.io/hold"}
	if err := env.Client.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.Client.Patch(context.Background(), p, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`)))
	})
	got, err = livesync.Targets(ctx, cs, ns.Name, bins)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Pod != "gateway-x" {
		t.Errorf("targets with operator-1 terminating: %+v", got)
	}
}

func TestSyncCommands(t *testing.T) {
	got := livesync.Commands("kind-west", "wirespan-system", livesync.Target{
		Pod: "p", Container: "gateway", Binary: livesync.Binary{Image: "x", Path: "build/tilt/bin/wirespan-gateway"},
	})
	want := [][]string{
		{"kubectl", "--context", "kind-west", "--namespace", "wirespan-system", "cp", "--container", "gateway", "build/tilt/bin/wirespan-gateway", "p:/tilt/wirespan-gateway"},
		{"kubectl", "--context", "kind-west", "--namespace", "wirespan-system", "exec", "p", "--container", "gateway", "--", "/tilt/restart.sh"},
	}
	if len(got) != len(want) || !slices.Equal(got[0], want[0]) || !slices.Equal(got[1], want[1]) {
		t.Errorf("commands\n%q\nwant\n%q", got, want)
	}
	for image, repo := range map[string]string{
		"a/b:v1": "a/b", "a/b@sha256:00": "a/b", "localhost:5001/b": "localhost:5001/b", "localhost:5001/b:t@sha256:1": "localhost:5001/b", "b": "b",
	} {
		if got := livesync.Repository(image); got != repo {
			t.Errorf("Repository(%q) = %q, want %q", image, got, repo)
		}
	}
}

func TestUsage(t *testing.T) {
	inTempDir(t, "")
	var out bytes.Buffer
	for _, args := range [][]string{{}, {"frobnicate"}, {"kind-config"}, {"kind-config", "nope"}, {"sync"}} {
		if err := run(args, &out); err == nil {
			t.Errorf("kinddev %v: no error", args)
		}
	}
	out.Reset()
	if err := run([]string{"kind-config", "wirespan-2"}, &out); err != nil || !strings.Contains(out.String(), "name: wirespan-2\n") {
		t.Errorf("kind-config: %v\n%s", err, out.String())
	}
}

// TestDeploy renders the real chart with the pinned helm, as the Tiltfile
// does for the clusters Tilt does not drive, and applies it to a real API
// server: every object is accepted, and the containers can be written to.
func TestDeploy(t *testing.T) {
	ctx := context.Background()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	helm, err := testenv.Binary("helm")
	if err != nil {
		t.Fatal(err)
	}
	assets := filepath.Dir(helm)
	t.Setenv("PATH", assets+string(os.PathListSeparator)+os.Getenv("PATH")) // the pinned kubectl
	kubeconfig(t, "east")
	inTempDir(t, "clusters: [east]\n")
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "wirespan-system"}}
	if err := env.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	render := []string{"--", helm, "template", "wirespan", filepath.Join(root, "charts", "wirespan"), "--include-crds",
		"--namespace", "wirespan-system", "--set", "clusterID=east", "--set", "clusterKey.existingSecret=wirespan-cluster-key"}
	var out bytes.Buffer
	for range 2 { // the second deploy updates what the first made
		out.Reset()
		if err := run(append([]string{"deploy", "-context", "kind-east"}, render...), &out); err != nil {
			t.Fatalf("deploy: %v\n%s", err, out.String())
		}
	}
	for _, obj := range []client.Object{&appsv1.Deployment{}, &appsv1.DaemonSet{}} {
		name := "wirespan-gateway"
		if isDeployment(obj) {
			name = "wirespan-operator"
		}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "wirespan-system", Name: name}, obj); err != nil {
			t.Fatalf("%s not deployed: %v\n%s", name, err, out.String())
		}
		for _, c := range podSpec(obj).Containers {
			if ro := c.SecurityContext.ReadOnlyRootFilesystem; ro == nil || *ro {
				t.Errorf("%s container %s: root filesystem not writable", name, c.Name)
			}
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), obj) })
	}
}

func isDeployment(o client.Object) bool {
	_, ok := o.(*appsv1.Deployment)
	return ok
}

func podSpec(o client.Object) corev1.PodSpec {
	switch o := o.(type) {
	case *appsv1.Deployment:
		return o.Spec.Template.Spec
	case *appsv1.DaemonSet:
		return o.Spec.Template.Spec
	}
	return corev1.PodSpec{}
}
