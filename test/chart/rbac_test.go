package chart

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/internal/poll"
	"github.com/wirespan/wirespan/internal/syncbuf"
)

// The real operator runs with exactly the chart's RBAC: the objects the
// chart renders are applied (except the workloads), and the operator, with
// the Deployment's arguments, authenticates with a token of the chart's
// ServiceAccount. A verb the chart lacks shows as a "forbidden" error in
// its log, or as a write that never happens; both fail the test. The
// gateway's RBAC is tested in the lab (test/e2e), where gateways can run.

// corefile is a kubeadm-style Corefile with the reload plugin.
const corefile = `.:53 {
    errors
    health
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
    }
    forward . /etc/resolv.conf
    cache 30
    reload
}
`

var (
	buildOnce   sync.Once
	operatorBin string
	buildErr    error
)

// buildOperator builds wirespan-operator once per test binary.
func buildOperator(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wirespan-chart-test-")
		if err != nil {
			buildErr = err
			return
		}
		env.Cleanup(func() { _ = os.RemoveAll(dir) })
		operatorBin = filepath.Join(dir, "wirespan-operator")
		cmd := exec.Command("go", "build", "-o", operatorBin, "./operator")
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build the operator: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return operatorBin
}

// install applies what the chart renders for release in ns, except the
// workloads, and returns the operator's Deployment.
func install(t *testing.T, release, ns string, args ...string) (*rendered, *appsv1.Deployment) {
	t.Helper()
	if _, err := env.Kubectl("", "create", "namespace", ns); err != nil && ns != namespace {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
	out, err := helm(append([]string{"template", release, chartDir, "--namespace", ns, "--set", "crds.install=false"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode(out)
	if err != nil {
		t.Fatal(err)
	}
	r := &rendered{yaml: out, objects: objs}
	if out, err := env.Kubectl(r.without(t, "Deployment", "DaemonSet"), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply the chart's objects: %v\n%s", err, out)
	}
	var d *appsv1.Deployment
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			d = &appsv1.Deployment{}
			r.into(t, "Deployment", o.GetName(), d)
		}
	}
	if d == nil {
		t.Fatal("no operator Deployment rendered")
	}
	return r, d
}

// operatorProc is the operator, running as a process with a Pod's
// arguments and credentials.
type operatorProc struct {
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	done chan error
	// stopped is set by stop, which records the exit in exitErr.
	stopped bool
	exitErr error
}

// runOperator starts the operator with d's arguments, authenticated as d's
// ServiceAccount, on free local ports.
func runOperator(t *testing.T, d *appsv1.Deployment) *operatorProc {
	t.Helper()
	bin := buildOperator(t)
	kubeconfig := tokenKubeconfig(t, d.Namespace, d.Spec.Template.Spec.ServiceAccountName)
	args := append(slices.Clone(d.Spec.Template.Spec.Containers[0].Args), "--kubeconfig", kubeconfig,
		"--metrics-bind-address", freeAddr(t), "--health-probe-bind-address", freeAddr(t))
	o := &operatorProc{out: &syncbuf.Buffer{}, done: make(chan error, 1)}
	o.cmd = exec.Command(bin, args...)
	o.cmd.Stdout, o.cmd.Stderr = o.out, o.out
	o.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := o.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { o.done <- o.cmd.Wait() }()
	t.Cleanup(func() {
		o.stop()
		if t.Failed() {
			t.Logf("operator (%v) output:\n%s", o.exitErr, o.out.String())
		}
	})
	return o
}

// stop ends the operator with SIGTERM, as the kubelet would, and waits.
func (o *operatorProc) stop() {
	if o.stopped {
		return
	}
	o.stopped = true
	_ = o.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case o.exitErr = <-o.done:
	case <-time.After(15 * time.Second):
		_ = o.cmd.Process.Kill()
		o.exitErr = <-o.done
	}
}

// forbidden returns the lines of the operator's output where the API
// server refused it something.
func (o *operatorProc) forbidden() []string {
	var out []string
	for _, line := range strings.Split(o.out.String(), "\n") {
		if strings.Contains(strings.ToLower(line), "forbidden") {
			out = append(out, line)
		}
	}
	return out
}

// tokenKubeconfig writes a kubeconfig for the test API server that
// authenticates with a token of the ServiceAccount, as a Pod's would.
func tokenKubeconfig(t *testing.T, ns, sa string) string {
	t.Helper()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for ServiceAccount %s/%s: %v", ns, sa, err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: env.Config.Host, CertificateAuthorityData: env.Config.CAData}
	kc.AuthInfos[sa] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: sa}
	kc.CurrentContext = "test"
	path := filepath.Join(t.TempDir(), sa+".kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// With the default values plus coredns.forward: the operator creates the
// cluster key Secret, publishes it, holds its Lease and writes the CoreDNS
// block, with nothing refused.
func TestOperatorRunsWithTheChartsRBAC(t *testing.T) {
	ctx := context.Background()
	c := env.Client
	const id = "east"
	r, d := install(t, releaseName, namespace, "--set", "clusterID="+id, "--set", "coredns.forward=10.0.0.53")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "coredns"}, Data: map[string]string{"Corefile": corefile}}
	if err := c.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	self := &wirespanv1alpha1.ClusterPeer{ObjectMeta: metav1.ObjectMeta{Name: id}}
	if err := c.Create(ctx, self); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Delete(ctx, cm)
		_ = c.Delete(ctx, self)
	})

	o := runOperator(t, d)
	var key corev1.Secret
	poll.Until(t, 30*time.Second, "the operator creates the cluster key Secret", func() error {
		return c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "wirespan-cluster-key"}, &key)
	})
	t.Cleanup(func() { _ = c.Delete(ctx, &key) })
	poll.Until(t, 30*time.Second, "the self ClusterPeer shows the key", func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(self), self); err != nil {
			return err
		}
		if want := string(key.Data[wirespanv1alpha1.KeySecretPublicKey]); self.Status.PublicKey != want || want == "" {
			return fmt.Errorf("status.publicKey %q, want %q", self.Status.PublicKey, want)
		}
		return nil
	})
	poll.Until(t, 30*time.Second, "the Corefile forwards clusterset.local", func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(cm), cm); err != nil {
			return err
		}
		if !strings.Contains(cm.Data["Corefile"], "forward . 10.0.0.53:53") {
			return fmt.Errorf("Corefile:\n%s", cm.Data["Corefile"])
		}
		return nil
	})
	var lease coordinationv1.Lease
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "wirespan-operator"}, &lease); err != nil ||
		lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Errorf("Lease wirespan-operator: %+v %v", lease.Spec, err)
	}
	o.stop()
	if refused := o.forbidden(); len(refused) > 0 {
		t.Errorf("the API server refused the operator with the chart's RBAC:\n%s", strings.Join(refused, "\n"))
	}

	// The check bites: without the rule for leader election's Events (one
	// is recorded at every start), the operator is refused at once.
	var role rbacv1.Role
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: d.Spec.Template.Spec.ServiceAccountName}, &role); err != nil {
		t.Fatal(err)
	}
	role.Rules = slices.DeleteFunc(role.Rules, func(rule rbacv1.PolicyRule) bool { return slices.Contains(rule.Resources, "events") })
	if err := c.Update(ctx, &role); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The next test's install restores it; do it now regardless.
		if out, err := env.Kubectl(r.without(t, "Deployment", "DaemonSet"), "apply", "-f", "-"); err != nil {
			t.Errorf("restore the chart's objects: %v\n%s", err, out)
		}
	})
	o = runOperator(t, d)
	poll.Until(t, 30*time.Second, "the operator is refused its Event", func() error {
		if len(o.forbidden()) == 0 {
			return fmt.Errorf("nothing refused yet")
		}
		return nil
	})
}

// With clusterKey.existingSecret the operator gets no permission to create
// Secrets, and publishes the user's key.
func TestOperatorUsesAnExistingSecret(t *testing.T) {
	ctx := context.Background()
	c := env.Client
	const id, ns, secretName = "west", "wirespan-byo", "west-key"
	_, d := install(t, "byo", ns, "--set", "clusterID="+id, "--set", "clusterKey.existingSecret="+secretName)
	priv, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: secretName},
		Data: map[string][]byte{wirespanv1alpha1.KeySecretPrivateKey: []byte(priv.String())}}
	self := &wirespanv1alpha1.ClusterPeer{ObjectMeta: metav1.ObjectMeta{Name: id}}
	for _, obj := range []client.Object{secret, self} {
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = c.Delete(ctx, self)
		_ = c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	})
	if !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--key-secret="+ns+"/"+secretName) {
		t.Fatalf("operator args %q do not name the existing Secret", d.Spec.Template.Spec.Containers[0].Args)
	}
	o := runOperator(t, d)
	poll.Until(t, 30*time.Second, "the self ClusterPeer shows the user's key", func() error {
		if err := c.Get(ctx, client.ObjectKeyFromObject(self), self); err != nil {
			return err
		}
		if want := priv.PublicKey().String(); self.Status.PublicKey != want {
			return fmt.Errorf("status.publicKey %q, want %q", self.Status.PublicKey, want)
		}
		return nil
	})
	o.stop()
	if refused := o.forbidden(); len(refused) > 0 {
		t.Errorf("the API server refused the operator with the chart's RBAC:\n%s", strings.Join(refused, "\n"))
	}
	var secrets corev1.SecretList
	if err := c.List(ctx, &secrets, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		if s.Name != secretName {
			t.Errorf("the operator made Secret %s beside the user's", s.Name)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
