package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/internal/poll"
	"github.com/wirespan/wirespan/internal/testenv"
)

// The ProbeRequest's round trip against a real API server: the plugin
// creates it, a goroutine plays the active gateway and writes its status,
// and the request is gone when the command returns, whatever happened.

const probeNS = "wirespan-system"

// probeSetup makes the namespace and a cluster "east" with a remote
// "west" whose tunnel is down, and returns a kubeconfig.
func probeSetup(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: probeNS}}
	if err := env.Client.Create(context.Background(), ns); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	peer(t, "east", wirespanv1alpha1.ClusterPeerSpec{PublicKey: keyEast, AllowedCIDRs: []string{"10.1.0.0/16"}},
		wirespanv1alpha1.ClusterPeerStatus{Role: wirespanv1alpha1.RoleSelf, PublicKey: keyEast, PodCIDRs: []string{"10.1.0.0/16"},
			Conditions: []metav1.Condition{cond(wirespanv1alpha1.ConditionKeyMatches, metav1.ConditionTrue, wirespanv1alpha1.ReasonKeyMatches)}})
	peer(t, "west", wirespanv1alpha1.ClusterPeerSpec{AllowedCIDRs: []string{"10.2.0.0/16"}, Endpoints: []string{"192.0.2.2:51820"}},
		wirespanv1alpha1.ClusterPeerStatus{Role: wirespanv1alpha1.RoleRemote, PodCIDRs: []string{"10.2.0.0/16"},
			Conditions: []metav1.Condition{cond(wirespanv1alpha1.ConditionConnected, metav1.ConditionFalse, wirespanv1alpha1.ReasonNoHandshake)}})
	return kubeconfig(t)
}

// gateway answers every ProbeRequest in probeNS with answer(request),
// until the test ends, and returns the names it saw.
func gateway(t *testing.T, answer func(*wirespanv1alpha1.ProbeRequest) wirespanv1alpha1.ProbeRequestStatus) func() []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var seen []string
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			var list wirespanv1alpha1.ProbeRequestList
			_ = env.Client.List(ctx, &list, client.InNamespace(probeNS))
			for i := range list.Items {
				req := &list.Items[i]
				mu.Lock()
				if !slices.Contains(seen, req.Name) {
					seen = append(seen, req.Name)
				}
				mu.Unlock()
				if answer == nil || req.Status.CompletionTime != nil {
					continue
				}
				req.Status = answer(req)
				req.Status.StartTime, req.Status.CompletionTime = ptrTime(time.Now()), ptrTime(time.Now())
				_ = env.Client.Status().Update(ctx, req)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}

func ptrTime(t time.Time) *metav1.Time { m := metav1.NewTime(t); return &m }

// noProbeRequests fails the test when any ProbeRequest is left.
func noProbeRequests(t *testing.T, seen []string) {
	t.Helper()
	if len(seen) == 0 {
		t.Error("the gateway saw no ProbeRequest")
	}
	var list wirespanv1alpha1.ProbeRequestList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(probeNS)); err != nil {
		t.Fatal(err)
	}
	for _, r := range list.Items {
		t.Errorf("ProbeRequest %s is left behind (deletionTimestamp %v)", r.Name, r.DeletionTimestamp)
	}
}

// clientFor is an admin client of the test API server for the types add
// registers (env.Client knows Wirespan's and Kubernetes' own).
func clientFor(t *testing.T, add func(*runtime.Scheme) error) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := add(scheme); err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

type result struct{ Check, Cluster, Status, Summary, Hint string }

func diagnoseJSON(t *testing.T, out string) map[string]result {
	t.Helper()
	var results []result
	if err := json.Unmarshal([]byte(out), &results); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	byCheck := map[string]result{}
	for _, r := range results {
		byCheck[r.Check] = r
	}
	return byCheck
}

func TestDiagnoseAsksTheGatewayAndDeletesTheRequest(t *testing.T) {
	kc := probeSetup(t)
	si := &mcsv1beta1.ServiceImport{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "echo"},
		Spec: mcsv1beta1.ServiceImportSpec{Type: mcsv1beta1.ClusterSetIP, IPs: []string{"10.96.200.1"},
			Ports: []mcsv1beta1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}}}
	mcsClient := clientFor(t, mcsv1beta1.Install)
	if err := mcsClient.Create(context.Background(), si); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mcsClient.Delete(context.Background(), si) })

	var mu sync.Mutex
	var asked wirespanv1alpha1.ProbeRequest
	seen := gateway(t, func(req *wirespanv1alpha1.ProbeRequest) wirespanv1alpha1.ProbeRequestStatus {
		mu.Lock()
		defer mu.Unlock()
		asked = *req.DeepCopy()
		return wirespanv1alpha1.ProbeRequestStatus{Node: "east-n0", Role: wirespanv1alpha1.ProbeRoleGateway,
			Peers: []wirespanv1alpha1.PeerProbe{{Name: "west", Endpoint: "192.0.2.2:51820", UDP: wirespanv1alpha1.UDPRefused,
				UDPMessage: "ICMP port unreachable from 192.0.2.2"}},
			ReversePath: []wirespanv1alpha1.ReversePathProbe{{Link: "wirespan0", Source: "10.2.0.0/16", Destination: "10.1.0.1", RPFilter: 1, Message: "invalid source"}},
			DNS:         []wirespanv1alpha1.DNSProbe{{Name: "echo.default.svc.clusterset.local", Server: "10.96.0.10", RCode: "NOERROR", Addresses: []string{"10.96.200.1"}}},
		}
	})
	out, stderr, code := run(t, "--kubeconfig", kc, "diagnose", "--check", "handshake,rp-filter,dns-answer", "-o", "json")
	if code != exitFailed {
		t.Errorf("exit %d, want %d: %s\n%s", code, exitFailed, stderr, out)
	}
	noProbeRequests(t, seen())
	mu.Lock()
	defer mu.Unlock()
	if !strings.HasPrefix(asked.Name, "diagnose-") || asked.Labels["app.kubernetes.io/managed-by"] != "kubectl-wirespan" ||
		len(asked.Spec.Peers) != 0 || !slices.Equal(asked.Spec.DNSNames, []string{"echo.default.svc.clusterset.local"}) {
		t.Errorf("the request asked %+v %+v", asked.ObjectMeta, asked.Spec)
	}
	got := diagnoseJSON(t, out)
	for check, want := range map[string]string{"handshake": "nothing listens on 192.0.2.2:51820", "rp-filter": "net.ipv4.conf.wirespan0.rp_filter=2"} {
		if r := got[check]; r.Status != "FAIL" || !strings.Contains(r.Hint, want) {
			t.Errorf("%s = %s (%s), hint %q; want FAIL with %q", check, r.Status, r.Summary, r.Hint, want)
		}
	}
	if r := got["dns-answer"]; r.Status != "PASS" {
		t.Errorf("dns-answer = %s (%s)", r.Status, r.Summary)
	}
}

func TestDiagnoseDeletesAnUnansweredRequest(t *testing.T) {
	kc := probeSetup(t)
	seen := gateway(t, nil) // no gateway answers: it only watches
	start := time.Now()
	out, stderr, code := run(t, "--kubeconfig", kc, "diagnose", "--check", "path-mtu,rp-filter,gossip-members", "--probe-timeout", "1s", "-o", "json")
	if code != exitOK {
		t.Errorf("exit %d, want %d (no answer is no failure): %s\n%s", code, exitOK, stderr, out)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s with --probe-timeout 1s", d)
	}
	noProbeRequests(t, seen())
	for check, r := range diagnoseJSON(t, out) {
		if r.Status != "WARN" || !strings.Contains(r.Hint, "the active gateway is down, or older") {
			t.Errorf("%s = %s (%s), hint %q", check, r.Status, r.Summary, r.Hint)
		}
	}
}

func TestInterruptedDiagnoseDeletesItsRequest(t *testing.T) {
	kc := probeSetup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := gateway(t, nil)
	go func() { // Ctrl-C while the plugin waits for an answer
		for len(seen()) == 0 && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	var out, stderr bytes.Buffer
	code := Run(ctx, []string{"--kubeconfig", kc, "diagnose", "--check", "rp-filter"}, &out, &stderr)
	if code != exitError || !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("exit %d, stderr %q; want %d and interrupted", code, stderr.String(), exitError)
	}
	noProbeRequests(t, seen())
}

// TestDiagnoseWithoutPermission: a user who may read but not create
// ProbeRequests gets the node's checks warned with the grant to ask for;
// the read-only checks still judge.
func TestDiagnoseWithoutPermission(t *testing.T) {
	kc := probeSetup(t)
	ctx := context.Background()
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch"}}}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "alice-reads"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "reader"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice"}}}
	for _, obj := range []client.Object{role, binding} {
		if err := env.Client.Create(ctx, obj); client.IgnoreAlreadyExists(err) != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = env.Client.Delete(context.Background(), binding)
		_ = env.Client.Delete(context.Background(), role)
	})
	// The admin of the test API server impersonates alice: RBAC judges
	// alice's requests, as for a user of her own.
	cfg, err := clientcmd.LoadFromFile(kc)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range cfg.AuthInfos {
		a.Impersonate = "alice"
	}
	kc = filepath.Join(t.TempDir(), "alice")
	if err := clientcmd.WriteToFile(*cfg, kc); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := run(t, "--kubeconfig", kc, "diagnose", "--check", "key-matches,rp-filter,dns-answer", "-o", "json")
	if code != exitOK {
		t.Errorf("exit %d: %s\n%s", code, stderr, out)
	}
	got := diagnoseJSON(t, out)
	if r := got["rp-filter"]; r.Status != "WARN" || !strings.Contains(r.Hint, "create, get and delete on proberequests.wirespan.io in namespace "+probeNS) {
		t.Errorf("rp-filter = %s (%s), hint %q", r.Status, r.Summary, r.Hint)
	}
	if r := got["key-matches"]; r.Status != "PASS" {
		t.Errorf("key-matches = %s (%s): reads must still judge", r.Status, r.Summary)
	}
}

// TestDiagnoseAgainstAnOlderRelease: without the ProbeRequest CRD, the
// node's checks skip and say to upgrade. The CRD is put back afterwards.
func TestDiagnoseAgainstAnOlderRelease(t *testing.T) {
	kc := probeSetup(t)
	ctx := context.Background()
	cl := clientFor(t, apiextensionsv1.AddToScheme)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: "proberequests.wirespan.io"}}
	if err := cl.Delete(ctx, crd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		poll.Until(t, 30*time.Second, "the CRD is gone before it is put back", func() error {
			if err := cl.Get(ctx, client.ObjectKeyFromObject(crd), crd); !apierrors.IsNotFound(err) {
				return fmt.Errorf("still there: %w", err)
			}
			return nil
		})
		if _, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{
			Paths: []string{filepath.Join(root, "charts", "wirespan", "files", "crds", "wirespan.io_proberequests.yaml")}}); err != nil {
			t.Fatal(err)
		}
	})
	poll.Until(t, 30*time.Second, "diagnose sees no ProbeRequest API", func() error {
		out, stderr, code := run(t, "--kubeconfig", kc, "diagnose", "--check", "rp-filter", "--probe-timeout", "2s", "-o", "json")
		r := diagnoseJSON(t, out)["rp-filter"]
		if code != exitOK || r.Status != "SKIP" || !strings.Contains(r.Hint, "upgrade Wirespan") {
			return errors.New(fmt.Sprint("exit ", code, " ", stderr, " ", r))
		}
		return nil
	})
}
