package clusterpeer

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/internal/clusterkey"
)

const otherKey = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="

func createPeer(t *testing.T, name string, spec v1.ClusterPeerSpec) {
	t.Helper()
	p := &v1.ClusterPeer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
	if err := k8s.Create(context.Background(), p); err != nil {
		t.Fatalf("create ClusterPeer %s: %v", name, err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), p) })
}

func createNode(t *testing.T, name string, podCIDRs ...string) {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDRs: podCIDRs}}
	if len(podCIDRs) > 0 {
		n.Spec.PodCIDR = podCIDRs[0]
	}
	if err := k8s.Create(context.Background(), n); err != nil {
		t.Fatalf("create Node %s: %v", name, err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), n) })
}

func getPeer(name string) (*v1.ClusterPeer, error) {
	p := &v1.ClusterPeer{}
	return p, k8s.Get(context.Background(), client.ObjectKey{Name: name}, p)
}

// waitCondition waits until the peer's condition has the given status and
// reason, and a message holding every one of messageHas, and returns the
// peer. The message is part of the wait because it may be written a
// reconcile later than the reason (a Node reaching the cache late).
func waitCondition(t *testing.T, name, condType string, status metav1.ConditionStatus, reason string, messageHas ...string) *v1.ClusterPeer {
	t.Helper()
	var p *v1.ClusterPeer
	eventually(t, 10*time.Second, fmt.Sprintf("%s %s=%s/%s", name, condType, status, reason), func() error {
		var err error
		if p, err = getPeer(name); err != nil {
			return err
		}
		c := meta.FindStatusCondition(p.Status.Conditions, condType)
		if c == nil || c.Status != status || c.Reason != reason {
			return fmt.Errorf("condition is %+v", c)
		}
		for _, want := range messageHas {
			if !strings.Contains(c.Message, want) {
				return fmt.Errorf("message %q lacks %q", c.Message, want)
			}
		}
		return nil
	})
	return p
}

func waitCIDRs(t *testing.T, field string, get func(*v1.ClusterPeer) []string, want ...string) time.Duration {
	t.Helper()
	start := time.Now()
	eventually(t, 10*time.Second, "self "+field+" = "+strings.Join(want, ","), func() error {
		p, err := getPeer(clusterID)
		if err != nil {
			return err
		}
		if got := get(p); !slices.Equal(got, want) {
			return fmt.Errorf("%s is %v", field, got)
		}
		return nil
	})
	return time.Since(start)
}

func podCIDRsOf(p *v1.ClusterPeer) []string     { return p.Status.PodCIDRs }
func serviceCIDRsOf(p *v1.ClusterPeer) []string { return p.Status.ServiceCIDRs }

func TestSelfDiscoveryFollowsNodesAndServiceCIDRs(t *testing.T) {
	ctx := context.Background()
	createPeer(t, clusterID, v1.ClusterPeerSpec{})
	createNode(t, "east-a", "10.20.0.0/24", "fd00:20::/64")
	createNode(t, "east-b", "10.20.1.0/24", "fd00:20:0:1::/64")
	createNode(t, "east-nocidr") // a node the CNI left empty holds nothing

	waitCIDRs(t, "podCIDRs", podCIDRsOf, "10.20.0.0/23", "fd00:20::/63")
	p := waitCondition(t, clusterID, v1.ConditionCIDRsDiscovered, metav1.ConditionTrue, v1.ReasonDiscovered, "2 of 3 Nodes")
	if p.Status.Role != v1.RoleSelf {
		t.Errorf("role %q", p.Status.Role)
	}

	// A third node with a gap below it: the summary must not claim the gap.
	createNode(t, "east-c", "10.20.3.0/24")
	took := waitCIDRs(t, "podCIDRs", podCIDRsOf, "10.20.0.0/23", "10.20.3.0/24", "fd00:20::/63")
	t.Logf("new Node reflected in status after %v", took.Round(time.Millisecond))
	createNode(t, "east-d", "10.20.2.0/24")
	waitCIDRs(t, "podCIDRs", podCIDRsOf, "10.20.0.0/22", "fd00:20::/63")
	if err := k8s.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "east-a"}}); err != nil {
		t.Fatal(err)
	}
	waitCIDRs(t, "podCIDRs", podCIDRsOf, "10.20.1.0/24", "10.20.2.0/23", "fd00:20:0:1::/64")

	// Service ranges: whatever the apiserver made from its
	// --service-cluster-ip-range, plus one we add.
	var want []string
	for _, sc := range serviceCIDRs(t) {
		want = append(want, sc.Spec.CIDRs...)
	}
	if len(want) == 0 {
		t.Fatal("the apiserver made no default ServiceCIDR")
	}
	waitCIDRs(t, "serviceCIDRs", serviceCIDRsOf, want...)
	extra := &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "extra"},
		Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.250.0.0/24", "fd00:250::/112"}}}
	if err := k8s.Create(ctx, extra); err != nil {
		t.Fatal(err)
	}
	took = waitCIDRs(t, "serviceCIDRs", serviceCIDRsOf, append(slices.Clone(want), "10.250.0.0/24", "fd00:250::/112")...)
	t.Logf("new ServiceCIDR reflected in status after %v", took.Round(time.Millisecond))
	if err := k8s.Delete(ctx, extra); err != nil {
		t.Fatal(err)
	}
	waitCIDRs(t, "serviceCIDRs", serviceCIDRsOf, want...)
}

// TestSelfStatusNamesTheOperatorVersion: the self ClusterPeer carries the
// operator's version, which kubectl wirespan compares across clusters; a
// remote one does not.
func TestSelfStatusNamesTheOperatorVersion(t *testing.T) {
	createPeer(t, clusterID, v1.ClusterPeerSpec{})
	createPeer(t, "version-remote", v1.ClusterPeerSpec{PublicKey: otherKey})
	eventually(t, 10*time.Second, "status.operatorVersion on the self ClusterPeer", func() error {
		p, err := getPeer(clusterID)
		if err != nil {
			return err
		}
		if p.Status.Role != v1.RoleSelf || p.Status.OperatorVersion != operatorVersion {
			return fmt.Errorf("role %q operatorVersion %q, want Self and %q", p.Status.Role, p.Status.OperatorVersion, operatorVersion)
		}
		return nil
	})
	eventually(t, 10*time.Second, "the remote ClusterPeer reconciled", func() error {
		p, err := getPeer("version-remote")
		switch {
		case err != nil:
			return err
		case p.Status.Role != v1.RoleRemote:
			return fmt.Errorf("role %q", p.Status.Role)
		case p.Status.OperatorVersion != "":
			t.Errorf("remote ClusterPeer has operatorVersion %q, want none", p.Status.OperatorVersion)
		}
		return nil
	})
}

func TestKeySecretAndKeyMatches(t *testing.T) {
	ctx := context.Background()
	createPeer(t, clusterID, v1.ClusterPeerSpec{})

	var secret corev1.Secret
	eventually(t, 10*time.Second, "key Secret created", func() error { return k8s.Get(ctx, keySecret, &secret) })
	pub, err := clusterkey.PublicKey(&secret)
	if err != nil {
		t.Fatalf("generated Secret is unusable: %v", err)
	}
	p := waitCondition(t, clusterID, v1.ConditionKeyMatches, metav1.ConditionFalse, v1.ReasonKeyNotSet, "put publicKey: "+pub+" in Git")
	if p.Status.PublicKey != pub {
		t.Fatalf("status.publicKey %q, Secret holds %q", p.Status.PublicKey, pub)
	}
	raw, _ := json.Marshal(p.Status)
	if strings.Contains(string(raw), string(secret.Data[v1.KeySecretPrivateKey])) {
		t.Fatal("the private key appears in the ClusterPeer status")
	}

	setKey := func(key string) {
		t.Helper()
		p, err := getPeer(clusterID)
		if err != nil {
			t.Fatal(err)
		}
		p.Spec.PublicKey = key
		if err := k8s.Update(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	setKey(pub)
	waitCondition(t, clusterID, v1.ConditionKeyMatches, metav1.ConditionTrue, v1.ReasonKeyMatches)
	setKey(otherKey)
	waitCondition(t, clusterID, v1.ConditionKeyMatches, metav1.ConditionFalse, v1.ReasonKeyMismatch)

	// A broken Secret is reported and left alone.
	original := secret.DeepCopy()
	secret.Data[v1.KeySecretPrivateKey] = []byte("not-a-key")
	if err := k8s.Update(ctx, &secret); err != nil {
		t.Fatal(err)
	}
	p = waitCondition(t, clusterID, v1.ConditionKeyMatches, metav1.ConditionFalse, v1.ReasonKeySecretInvalid)
	if p.Status.PublicKey != "" {
		t.Errorf("status.publicKey %q kept for an invalid Secret", p.Status.PublicKey)
	}
	time.Sleep(time.Second)
	var after corev1.Secret
	if err := k8s.Get(ctx, keySecret, &after); err != nil || string(after.Data[v1.KeySecretPrivateKey]) != "not-a-key" {
		t.Fatalf("the operator touched a Secret it must leave alone: %v %q", err, after.Data[v1.KeySecretPrivateKey])
	}

	// Deleting the Secret gets a new key pair, and the condition says so.
	if err := k8s.Delete(ctx, &after); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "key Secret recreated", func() error {
		var s corev1.Secret
		if err := k8s.Get(ctx, keySecret, &s); err != nil {
			return err
		}
		if string(s.Data[v1.KeySecretPrivateKey]) == string(original.Data[v1.KeySecretPrivateKey]) {
			return fmt.Errorf("same key as before")
		}
		_, err := clusterkey.PublicKey(&s)
		return err
	})
	waitCondition(t, clusterID, v1.ConditionKeyMatches, metav1.ConditionFalse, v1.ReasonKeyMismatch)
}

func TestOverlapsAreReportedOnBothPeers(t *testing.T) {
	ctx := context.Background()
	createPeer(t, clusterID, v1.ClusterPeerSpec{})
	createNode(t, "overlap-a", "10.30.0.0/24")
	waitCIDRs(t, "podCIDRs", podCIDRsOf, "10.30.0.0/24")

	createPeer(t, "west", v1.ClusterPeerSpec{PublicKey: otherKey, AllowedCIDRs: []string{"10.30.0.128/25", "10.31.0.0/16"}})
	west := waitCondition(t, "west", v1.ConditionCIDRConflict, metav1.ConditionTrue, v1.ReasonOverlap, "10.30.0.128/25 overlaps 10.30.0.0/24 of east")
	if west.Status.Role != v1.RoleRemote {
		t.Errorf("west role %q", west.Status.Role)
	}
	waitCondition(t, clusterID, v1.ConditionCIDRConflict, metav1.ConditionTrue, v1.ReasonOverlap, "10.30.0.0/24 overlaps 10.30.0.128/25 of west")
	waitCondition(t, clusterID, v1.ConditionReady, metav1.ConditionFalse, v1.ReasonNotReady)

	// Fixing Git clears it on both.
	west.Spec.AllowedCIDRs = []string{"10.31.0.0/16"}
	if err := k8s.Update(ctx, west); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, "west", v1.ConditionCIDRConflict, metav1.ConditionFalse, v1.ReasonNoConflict)
	waitCondition(t, clusterID, v1.ConditionCIDRConflict, metav1.ConditionFalse, v1.ReasonNoConflict)
	waitCondition(t, "west", v1.ConditionReady, metav1.ConditionFalse, v1.ReasonAwaitingTunnel)
}

func TestGarbageInRemoteStatusIsReportedNotFatal(t *testing.T) {
	ctx := context.Background()
	createPeer(t, clusterID, v1.ClusterPeerSpec{})
	createPeer(t, "junk", v1.ClusterPeerSpec{PublicKey: otherKey, AllowedCIDRs: []string{"10.40.0.0/16"}})
	p := waitCondition(t, "junk", v1.ConditionCIDRsAccepted, metav1.ConditionUnknown, v1.ReasonNoCIDRsKnown)
	// Status is not validated like spec; whoever writes it may write junk.
	p.Status.PodCIDRs = []string{"banana", "10.40.1.0/24", "192.168.7.0/24"}
	if err := k8s.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, "junk", v1.ConditionCIDRsAccepted, metav1.ConditionFalse, v1.ReasonOutsideAllowedCIDRs, "192.168.7.0/24 (outside spec.allowedCIDRs)", `"banana"`)
	// The controller still works for everyone else.
	createNode(t, "junk-node", "10.41.0.0/24")
	waitCIDRs(t, "podCIDRs", podCIDRsOf, "10.41.0.0/24")
}

// TestNoStatusChurn checks that once statuses settle, an idle cluster sees no
// writes at all: no resourceVersion moves, no status update is counted.
func TestNoStatusChurn(t *testing.T) {
	ctx := context.Background()
	createPeer(t, clusterID, v1.ClusterPeerSpec{})
	createPeer(t, "quiet-a", v1.ClusterPeerSpec{PublicKey: otherKey, AllowedCIDRs: []string{"10.50.0.0/16"}})
	createPeer(t, "quiet-b", v1.ClusterPeerSpec{AllowedCIDRs: []string{"10.50.128.0/17"}}) // overlaps quiet-a
	createNode(t, "quiet-node", "10.51.0.0/24")
	waitCIDRs(t, "podCIDRs", podCIDRsOf, "10.51.0.0/24")
	waitCondition(t, "quiet-b", v1.ConditionCIDRConflict, metav1.ConditionTrue, v1.ReasonOverlap)
	waitCondition(t, "quiet-a", v1.ConditionCIDRConflict, metav1.ConditionTrue, v1.ReasonOverlap)

	versions := func() map[string]string {
		var l v1.ClusterPeerList
		if err := k8s.List(ctx, &l); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, p := range l.Items {
			out[p.Name] = p.ResourceVersion
		}
		return out
	}
	// Let in-flight passes finish, then watch an idle period. Unrelated Node
	// updates (as kubelets make all the time) must not cause writes either.
	time.Sleep(2 * time.Second)
	before, updatesBefore := versions(), counterValue(statusUpdates)
	for i := range 5 {
		n := &corev1.Node{}
		if err := k8s.Get(ctx, client.ObjectKey{Name: "quiet-node"}, n); err != nil {
			t.Fatal(err)
		}
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels["heartbeat"] = fmt.Sprint(i)
		if err := k8s.Update(ctx, n); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
	}
	after, updatesAfter := versions(), counterValue(statusUpdates)
	for name, rv := range before {
		if after[name] != rv {
			t.Errorf("ClusterPeer %s changed while idle: resourceVersion %s -> %s", name, rv, after[name])
		}
	}
	if updatesAfter != updatesBefore {
		t.Errorf("status updates while idle: %v -> %v", updatesBefore, updatesAfter)
	}
}

func TestSelfMissingIsReportedInMetric(t *testing.T) {
	ctx := context.Background()
	// No self peer: only a remote one exists.
	createPeer(t, "lonely", v1.ClusterPeerSpec{PublicKey: otherKey, AllowedCIDRs: []string{"10.77.0.0/16"}})
	waitCondition(t, "lonely", v1.ConditionReady, metav1.ConditionFalse, v1.ReasonAwaitingTunnel)
	eventually(t, 10*time.Second, "self-present metric 0", func() error {
		if v := gaugeValue(selfPresent); v != 0 {
			return fmt.Errorf("gauge is %v", v)
		}
		return nil
	})
	createPeer(t, clusterID, v1.ClusterPeerSpec{})
	eventually(t, 10*time.Second, "self-present metric 1", func() error {
		if v := gaugeValue(selfPresent); v != 1 {
			return fmt.Errorf("gauge is %v", v)
		}
		return nil
	})
	// The operator never creates or edits spec: that is Git's.
	p, _ := getPeer(clusterID)
	if p.Spec.PublicKey != "" || len(p.Spec.Endpoints) != 0 {
		t.Errorf("operator wrote spec: %+v", p.Spec)
	}
	_ = k8s.Delete(ctx, p)
	eventually(t, 10*time.Second, "self peer gone", func() error {
		if _, err := getPeer(clusterID); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there: %w", err)
		}
		return nil
	})
}
