package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/internal/testenv"
)

// The commands against a real API server, through a kubeconfig as a user
// has one: the objects are written with their status subresource, read
// back by the plugin's own client, and judged.

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.Options{}, func(e *testenv.Env) error {
		env = e
		return nil
	}))
}

// kubeconfig writes a kubeconfig whose contexts east and west both reach
// the test API server, east current.
func kubeconfig(t *testing.T) string {
	t.Helper()
	kc, err := clientcmd.LoadFromFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cur := kc.Contexts[kc.CurrentContext]
	for _, name := range []string{"east", "west"} {
		c := *cur
		kc.Contexts[name] = &c
	}
	kc.CurrentContext = "east"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(args, &out, &errOut)
	return out.String(), errOut.String(), code
}

// peer creates a ClusterPeer and writes its status.
func peer(t *testing.T, name string, spec wirespanv1alpha1.ClusterPeerSpec, st wirespanv1alpha1.ClusterPeerStatus) {
	t.Helper()
	ctx := context.Background()
	p := &wirespanv1alpha1.ClusterPeer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
	if err := env.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), p) })
	for i := range st.Conditions {
		st.Conditions[i].LastTransitionTime = metav1.Now()
	}
	p.Status = st
	if err := env.Client.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
}

const keyEast = "MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE="

func cond(typ string, st metav1.ConditionStatus, reason string) metav1.Condition {
	return metav1.Condition{Type: typ, Status: st, Reason: reason, Message: reason}
}

func TestStatusAndDiagnoseReadARealAPIServer(t *testing.T) {
	peer(t, "east", wirespanv1alpha1.ClusterPeerSpec{PublicKey: keyEast, AllowedCIDRs: []string{"10.1.0.0/16"}},
		wirespanv1alpha1.ClusterPeerStatus{Role: wirespanv1alpha1.RoleSelf, PublicKey: keyEast, PodCIDRs: []string{"10.1.0.0/16"},
			Conditions: []metav1.Condition{
				cond(wirespanv1alpha1.ConditionReady, metav1.ConditionTrue, wirespanv1alpha1.ReasonReady),
				cond(wirespanv1alpha1.ConditionKeyMatches, metav1.ConditionTrue, wirespanv1alpha1.ReasonKeyMatches),
			}})
	peer(t, "west", wirespanv1alpha1.ClusterPeerSpec{AllowedCIDRs: []string{"10.2.0.0/16"}, Endpoints: []string{"192.0.2.2:51820"}},
		wirespanv1alpha1.ClusterPeerStatus{Role: wirespanv1alpha1.RoleRemote, PodCIDRs: []string{"10.2.0.0/16", "10.9.0.0/16"},
			Conditions: []metav1.Condition{
				cond(wirespanv1alpha1.ConditionConnected, metav1.ConditionFalse, wirespanv1alpha1.ReasonNoPublicKey),
			}})
	kc := kubeconfig(t)

	out, stderr, code := run(t, "--kubeconfig", kc, "--contexts", "east,west", "status", "-o", "json")
	if code != exitOK {
		t.Fatalf("status: exit %d: %s", code, stderr)
	}
	var r struct {
		Clusters []struct {
			Context, Cluster string
			Errors           map[string]string
			Peers            []struct {
				Name, Role string
				Refused    []struct{ Range, Reason string }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(r.Clusters) != 2 || r.Clusters[0].Context != "east" || r.Clusters[1].Context != "west" || r.Clusters[0].Cluster != "east" {
		t.Fatalf("clusters: %+v", r.Clusters)
	}
	if len(r.Clusters[0].Errors) != 0 {
		t.Errorf("read errors: %v", r.Clusters[0].Errors)
	}
	west := r.Clusters[0].Peers[1]
	if west.Name != "west" || len(west.Refused) != 1 || west.Refused[0].Range != "10.9.0.0/16" || west.Refused[0].Reason != "OutsideAllowedCIDRs" {
		t.Errorf("west as east sees it: %+v", west)
	}

	// west claims 10.9.0.0/16 outside its allowedCIDRs, and has no key:
	// allowed-cidrs fails (exit 1); the tunnel is down for no cause
	// another check reports, so handshake fails too.
	out, _, code = run(t, "--kubeconfig", kc, "diagnose", "--probe=false", "--check", "allowed-cidrs,handshake,dns-endpoint,coredns-forward", "-o", "json")
	if code != exitFailed {
		t.Errorf("diagnose exit %d, want %d:\n%s", code, exitFailed, out)
	}
	var results []struct{ Check, Status, Summary string }
	if err := json.Unmarshal([]byte(out), &results); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"allowed-cidrs": "FAIL", "handshake": "FAIL", "dns-endpoint": "FAIL", "coredns-forward": "WARN"}
	for _, res := range results {
		if want[res.Check] != res.Status {
			t.Errorf("%s = %s (%s), want %s", res.Check, res.Status, res.Summary, want[res.Check])
		}
	}
}

func TestDiagnoseFindsTheDNSServiceAndCorefile(t *testing.T) {
	ctx := context.Background()
	for _, ns := range []string{"wirespan-system"} {
		n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
		if err := env.Client.Create(ctx, n); client.IgnoreAlreadyExists(err) != nil {
			t.Fatal(err)
		}
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "wirespan-system", Name: "wirespan-dns"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}}}}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "coredns"}}
	if err := env.Client.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), svc) })
	cm.Data = map[string]string{"Corefile": ".:53 {\n  errors\n}\nclusterset.local:53 {\n  forward . " + svc.Spec.ClusterIP + "\n}\n"}
	if err := env.Client.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), cm) })
	peer(t, "north", wirespanv1alpha1.ClusterPeerSpec{}, wirespanv1alpha1.ClusterPeerStatus{Role: wirespanv1alpha1.RoleSelf})

	out, _, _ := run(t, "--kubeconfig", kubeconfig(t), "diagnose", "--check", "coredns-forward,dns-endpoint", "-v")
	out = strings.Join(strings.Fields(out), " ") // the table's spacing aside
	for _, want := range []string{
		"PASS coredns-forward north", "forwards to the DNS Service " + svc.Spec.ClusterIP,
		"FAIL dns-endpoint north", "has no ready endpoint",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("diagnose output lacks %q:\n%s", want, out)
		}
	}
}

func TestFlagsAreChecked(t *testing.T) {
	kc := kubeconfig(t)
	for _, args := range [][]string{
		{"--kubeconfig", kc, "--context", "nowhere", "status"},
		{"--kubeconfig", kc, "--context", "east", "--all-contexts", "status"},
		{"--kubeconfig", kc, "--contexts", "east,east", "status"},
		{"--kubeconfig", kc, "status", "-o", "xml"},
		{"--kubeconfig", kc, "graph", "-o", "png"},
		{"--kubeconfig", kc, "diagnose", "--check", "nonsense"},
		{"--kubeconfig", kc, "--coredns-configmap", "coredns", "status"},
	} {
		if _, stderr, code := run(t, args...); code != exitError || stderr == "" {
			t.Errorf("%v: exit %d, stderr %q; want %d and a message", args, code, stderr, exitError)
		}
	}
	if out, _, code := run(t, "--help"); code != exitOK || !strings.Contains(out, "kubectl wirespan status --contexts") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
	if out, _, code := run(t, "completion", "bash"); code != exitOK || !strings.Contains(out, "bash completion") {
		t.Errorf("completion bash: exit %d\n%.200s", code, out)
	}
}
