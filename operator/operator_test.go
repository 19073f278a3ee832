package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wirespan/wirespan/internal/poll"
	"github.com/wirespan/wirespan/internal/syncbuf"
	"github.com/wirespan/wirespan/internal/testenv"
)

// These tests run the real operator binary, as a Deployment would, against a
// real apiserver.

var (
	env *testenv.Env
	bin string
)

// stampedVersion is the version the test binary is built with.
const stampedVersion = "v0.0.0-operator-test"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wirespan-operator-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := testenv.Main(m, testenv.Options{ExtraCRDPaths: []string{"testdata/clusterproperty-crd.yaml"}}, func(e *testenv.Env) error {
		env = e
		bin = filepath.Join(dir, "wirespan-operator")
		// Stamped as `make build` stamps it, so the tests see the version
		// reach the log, the metric and the status.
		ldflags := "-X github.com/wirespan/wirespan/internal/version.Version=" + stampedVersion
		if out, err := exec.Command("go", "build", "-ldflags", ldflags, "-o", bin, ".").CombinedOutput(); err != nil {
			return fmt.Errorf("build operator: %w\n%s", err, out)
		}
		return env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "wirespan-system"}})
	})
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

type operator struct {
	cmd    *exec.Cmd
	out    *syncbuf.Buffer
	probes string
	metric string
	done   chan error
}

// start runs the operator binary with the test kubeconfig and free ports.
func start(t *testing.T, args ...string) *operator {
	t.Helper()
	o := &operator{out: &syncbuf.Buffer{}, probes: freeAddr(t), metric: freeAddr(t), done: make(chan error, 1)}
	o.cmd = exec.Command(bin, append([]string{"--kubeconfig", env.Kubeconfig,
		"--health-probe-bind-address", o.probes, "--metrics-bind-address", o.metric}, args...)...)
	o.cmd.Stdout, o.cmd.Stderr = o.out, o.out
	// If the test binary dies, the operator dies with it.
	o.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := o.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { o.done <- o.cmd.Wait() }()
	t.Cleanup(func() {
		_ = o.cmd.Process.Kill()
		exitErr := <-o.done
		if t.Failed() {
			t.Logf("operator (%v) output:\n%s", exitErr, o.out.String())
		}
	})
	return o
}

// exit waits for the operator to exit by itself and returns its output.
func (o *operator) exit(t *testing.T) (string, error) {
	t.Helper()
	select {
	case err := <-o.done:
		o.done <- err // for the cleanup
		return o.out.String(), err
	case <-time.After(30 * time.Second):
		t.Fatalf("operator did not exit:\n%s", o.out.String())
		return "", nil
	}
}

func TestStartupFailsClearly(t *testing.T) {
	tests := []struct {
		name, property string
		args           []string
		want           string
	}{
		{"no cluster ID", "", nil, "no cluster ID: set --cluster-id, or create the about.k8s.io ClusterProperty cluster.clusterset.k8s.io"},
		{"flag disagrees with ClusterProperty", "north", []string{"--cluster-id", "south"}, `--cluster-id="south" disagrees with ClusterProperty cluster.clusterset.k8s.io, which says "north"`},
		{"cluster ID not a label", "", []string{"--cluster-id", "North_1"}, `cluster ID "North_1" is not usable as a ClusterPeer name`},
		{"bad --pod-cidrs", "", []string{"--cluster-id", "x", "--pod-cidrs", "10.0.0.1/8"}, `--pod-cidrs: "10.0.0.1/8" has host bits set (did you mean 10.0.0.0/8?)`},
		{"bad --service-cidrs", "", []string{"--cluster-id", "x", "--service-cidrs", "10.96.0.0/12,nope"}, `--service-cidrs: "nope" is not a CIDR`},
		{"bad --key-secret", "", []string{"--cluster-id", "x", "--key-secret", "just-a-name"}, `--key-secret: "just-a-name" is not namespace/name`},
		{"bad --coredns-forward", "", []string{"--cluster-id", "x", "--coredns-forward", "10.0.0.11:5353,dns.example"}, `--coredns-forward: "dns.example" is not ip or ip:port`},
		{"bad --coredns-configmap", "", []string{"--cluster-id", "x", "--coredns-configmap", "coredns"}, `--coredns-configmap: "coredns" is not namespace/name`},
		{"--coredns-forward without a ConfigMap", "", []string{"--cluster-id", "x", "--coredns-forward", "10.0.0.11", "--coredns-configmap", ""}, "--coredns-forward needs --coredns-configmap"},
		{"bad --clusterset-zone", "", []string{"--cluster-id", "x", "--clusterset-zone", "clusterset_local"}, `--clusterset-zone: zone "clusterset_local": label "clusterset_local" is not 1-63 letters, digits and dashes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.property != "" {
				setClusterProperty(t, tt.property)
			}
			out, err := start(t, tt.args...).exit(t)
			if err == nil {
				t.Fatalf("operator exited 0; want a startup error:\n%s", out)
			}
			if !strings.Contains(out, tt.want) {
				t.Fatalf("output lacks %q:\n%s", tt.want, out)
			}
		})
	}
}

func TestOperatorPublishesSelf(t *testing.T) {
	setClusterProperty(t, "north")
	for _, n := range []struct{ name, cidr string }{{"n1", "10.60.0.0/24"}, {"n2", "10.60.1.0/24"}} {
		if out, err := env.Kubectl(fmt.Sprintf("apiVersion: v1\nkind: Node\nmetadata:\n  name: %s\nspec:\n  podCIDR: %s\n  podCIDRs: [%s]\n", n.name, n.cidr, n.cidr), "apply", "-f", "-"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		t.Cleanup(func() { _, _ = env.Kubectl("", "delete", "node", n.name) })
	}
	o := start(t, "--cluster-id", "north", "--service-cidrs", "10.61.0.0/16,fd00:61::/108")

	// Without its ClusterPeer the operator runs but is not ready.
	eventually(t, "operator healthy", func() error { return probe(o.probes, "/healthz", http.StatusOK) })
	eventually(t, "not ready without self ClusterPeer", func() error { return probe(o.probes, "/readyz", http.StatusInternalServerError) })
	eventually(t, "metric says self missing", func() error { return metricHas(o.metric, "wirespan_operator_self_clusterpeer_present 0") })
	eventually(t, "operator logs what to apply", func() error {
		if !strings.Contains(o.out.String(), "no ClusterPeer describes this cluster yet") {
			return fmt.Errorf("not logged")
		}
		return nil
	})

	if out, err := env.Kubectl("apiVersion: wirespan.io/v1alpha1\nkind: ClusterPeer\nmetadata:\n  name: north\nspec:\n  endpoints: ['gw.north.example:51820']\n", "apply", "-f", "-"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = env.Kubectl("", "delete", "clusterpeer", "north") })
	eventually(t, "ready with self ClusterPeer", func() error { return probe(o.probes, "/readyz", http.StatusOK) })
	eventually(t, "kubectl get shows the published CIDRs", func() error {
		out, err := env.Kubectl("", "get", "clusterpeers")
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		for _, want := range []string{"ROLE", "POD CIDRS", "SERVICE CIDRS", "READY", "AGE", "Self", "10.60.0.0/23", "10.61.0.0/16", "fd00:61::/108"} {
			if !strings.Contains(out, want) {
				return fmt.Errorf("no %q in\n%s", want, out)
			}
		}
		t.Logf("kubectl get clusterpeers:\n%s", out)
		return nil
	})
	pub, err := env.Kubectl("", "get", "clusterpeer", "north", "-o", "jsonpath={.status.publicKey}")
	if err != nil || len(pub) != 44 {
		t.Fatalf("status.publicKey %q: %v", pub, err)
	}
	if strings.Contains(o.out.String(), "privateKey") {
		t.Error("the operator's log mentions the private key")
	}
	eventually(t, "metric says self present", func() error { return metricHas(o.metric, "wirespan_operator_self_clusterpeer_present 1") })

	// The version it was stamped with: in its log at start, its metrics,
	// and the self ClusterPeer's status, where kubectl wirespan reads it.
	if !strings.Contains(o.out.String(), `"msg":"wirespan-operator starting","version":"`+stampedVersion+`"`) &&
		!strings.Contains(o.out.String(), `wirespan-operator starting	{"version": "`+stampedVersion+`"}`) {
		t.Errorf("the log does not start with the version %s:\n%.500s", stampedVersion, o.out.String())
	}
	if err := metricHas(o.metric, `wirespan_build_info{component="operator",version="`+stampedVersion+`"} 1`); err != nil {
		t.Error(err)
	}
	if v, err := env.Kubectl("", "get", "clusterpeer", "north", "-o", "jsonpath={.status.operatorVersion}"); err != nil || v != stampedVersion {
		t.Errorf("status.operatorVersion %q (%v), want %s", v, err, stampedVersion)
	}

	// SIGTERM: a clean exit that hands the Lease back.
	if err := o.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if out, err := o.exit(t); err != nil {
		t.Fatalf("operator exit after SIGTERM: %v\n%s", err, out)
	}
	holder, _ := env.Kubectl("", "get", "lease", "-n", "wirespan-system", "wirespan-operator", "-o", "jsonpath={.spec.holderIdentity}")
	if holder != "" {
		t.Errorf("Lease still held by %q after shutdown", holder)
	}
}

// TestOperatorEditsCorefile runs the binary with --coredns-forward, then
// without: the forwarding block comes, then goes, leaving the Corefile as
// it was.
func TestOperatorEditsCorefile(t *testing.T) {
	const corefile = ".:53 {\n    errors\n    kubernetes cluster.local in-addr.arpa ip6.arpa\n    forward . /etc/resolv.conf\n    reload\n}\n"
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "coredns-operator-test"}, Data: map[string]string{"Corefile": corefile}}
	if err := env.Client.Create(context.Background(), cm); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), cm) })
	args := []string{"--cluster-id", "north", "--leader-elect=false", "--coredns-configmap", "kube-system/coredns-operator-test"}
	get := func() string {
		out, _ := env.Kubectl("", "get", "configmap", "-n", "kube-system", cm.Name, "-o", "jsonpath={.data.Corefile}")
		return out
	}

	o := start(t, append(args, "--coredns-forward", "10.0.0.11:5353,10.0.0.12:5353")...)
	eventually(t, "forwarding block added", func() error {
		got := get()
		for _, want := range []string{corefile + "\n# wirespan: begin clusterset.local", "clusterset.local:53 {", "forward . 10.0.0.11:5353 10.0.0.12:5353 {"} {
			if !strings.Contains(got, want) {
				return fmt.Errorf("no %q in\n%s", want, got)
			}
		}
		return nil
	})
	if err := o.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if out, err := o.exit(t); err != nil {
		t.Fatalf("operator exit after SIGTERM: %v\n%s", err, out)
	}

	start(t, args...)
	eventually(t, "forwarding block removed", func() error {
		if got := get(); got != corefile {
			return fmt.Errorf("Corefile is\n%s", got)
		}
		return nil
	})
}

func setClusterProperty(t *testing.T, value string) {
	t.Helper()
	if out, err := env.Kubectl(fmt.Sprintf("apiVersion: about.k8s.io/v1alpha1\nkind: ClusterProperty\nmetadata:\n  name: cluster.clusterset.k8s.io\nspec:\n  value: %s\n", value), "apply", "-f", "-"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = env.Kubectl("", "delete", "clusterproperty", "cluster.clusterset.k8s.io") })
}

func probe(addr, path string, want int) error {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s: %d %s", path, resp.StatusCode, body)
	}
	return nil
}

func metricHas(addr, line string) error {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !bytes.Contains(body, []byte(line)) {
		return fmt.Errorf("no %q in /metrics", line)
	}
	return nil
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

func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	poll.Until(t, 30*time.Second, what, check)
}
