package app

import (
	"context"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/wirespan/wirespan/internal/testenv"
)

var env *testenv.Env

// TestMain runs a real API server: the DNS Service's EndpointSlice must be
// one the API server accepts and kube-proxy reads.
func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.Options{}, func(e *testenv.Env) error {
		env = e
		return nil
	}))
}

// testNamespace creates a namespace named from prefix on the test's API
// server and deletes it when the test ends.
func testNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), ns) })
	return ns.Name
}

func TestDNSEndpointFollowsTheActiveGateway(t *testing.T) {
	ctx := context.Background()
	c := env.Client
	ns := testNamespace(t, "dns-endpoint-")
	key := types.NamespacedName{Namespace: ns, Name: "wirespan-dns"}
	gateway := func() *dnsEndpoint {
		return &dnsEndpoint{service: key, reader: c, writer: c, log: logr.Discard()}
	}
	slice := func() (*discoveryv1.EndpointSlice, error) {
		var s discoveryv1.EndpointSlice
		err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "wirespan-dns-active"}, &s)
		return &s, err
	}
	now := time.Now()
	n0, n1 := gateway(), gateway()
	addr0, addr1 := netip.MustParseAddrPort("10.0.0.10:5353"), netip.MustParseAddrPort("10.0.0.11:5353")

	// No Service yet: nothing to publish in, and no error.
	if err := n0.publish(ctx, "n0", addr0, now); err != nil {
		t.Fatalf("publish without the Service: %v", err)
	}
	if _, err := slice(); !apierrors.IsNotFound(err) {
		t.Fatalf("a slice without its Service: %v", err)
	}

	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
			{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(5353)},
			{Name: "dns-tcp", Protocol: corev1.ProtocolTCP, Port: 53, TargetPort: intstr.FromInt32(5353)},
		}},
	}
	if err := c.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if err := n0.publish(ctx, "n0", addr0, now); err != nil {
		t.Fatal(err)
	}
	s, err := slice()
	if err != nil {
		t.Fatalf("published slice: %v", err)
	}
	if s.Labels[discoveryv1.LabelServiceName] != key.Name || s.Labels[discoveryv1.LabelManagedBy] != DNSEndpointManagedBy ||
		len(s.OwnerReferences) != 1 || s.OwnerReferences[0].UID != svc.UID || s.AddressType != discoveryv1.AddressTypeIPv4 ||
		len(s.Endpoints) != 1 || s.Endpoints[0].Addresses[0] != "10.0.0.10" || *s.Endpoints[0].NodeName != "n0" || !*s.Endpoints[0].Conditions.Ready {
		t.Errorf("published slice %+v", s)
	}
	if len(s.Ports) != 2 || *s.Ports[0].Name != "dns" || *s.Ports[0].Protocol != corev1.ProtocolUDP || *s.Ports[0].Port != 5353 ||
		*s.Ports[1].Name != "dns-tcp" || *s.Ports[1].Protocol != corev1.ProtocolTCP {
		t.Errorf("slice ports %+v: want the Service's port names, at the DNS server's port", s.Ports)
	}

	// Steady state writes nothing; a slice deleted by hand comes back at
	// the next check.
	if err := n0.publish(ctx, "n0", addr0, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if again, _ := slice(); again.ResourceVersion != s.ResourceVersion {
		t.Error("publishing the same address again wrote the slice")
	}
	if err := c.Delete(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := n0.publish(ctx, "n0", addr0, now.Add(dnsRecheck+time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := slice(); err != nil {
		t.Fatalf("a deleted slice is not repaired: %v", err)
	}

	// Another gateway becomes active and takes the slice over; the old one,
	// now a node agent, leaves it alone.
	if err := n1.publish(ctx, "n1", addr1, now); err != nil {
		t.Fatal(err)
	}
	if err := n0.withdraw(ctx, "n0"); err != nil {
		t.Fatal(err)
	}
	if s, err := slice(); err != nil || s.Endpoints[0].Addresses[0] != "10.0.0.11" || *s.Endpoints[0].NodeName != "n1" {
		t.Fatalf("after a takeover: %+v %v", s, err)
	}
	// A gateway that stops being active removes itself.
	if err := n1.withdraw(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if _, err := slice(); !apierrors.IsNotFound(err) {
		t.Fatalf("withdrawn slice: %v", err)
	}

	// A restarted gateway that is a node agent now removes what its
	// earlier, active run left; once, not at every sync.
	if err := gateway().publish(ctx, "n0", addr0, now); err != nil {
		t.Fatal(err)
	}
	restarted := gateway()
	if err := restarted.withdraw(ctx, "n0"); err != nil {
		t.Fatal(err)
	}
	if _, err := slice(); !apierrors.IsNotFound(err) {
		t.Fatalf("a stale slice of this node survives a restart: %v", err)
	}
	if err := gateway().publish(ctx, "n1", addr1, now); err != nil {
		t.Fatal(err)
	}
	if err := restarted.withdraw(ctx, "n0"); err != nil {
		t.Fatal(err)
	}
	if _, err := slice(); err != nil {
		t.Fatalf("a node agent removed the active gateway's slice: %v", err)
	}

	// The garbage collector removes the slice with the Service: its owner.
	var got discoveryv1.EndpointSlice
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "wirespan-dns-active"}, &got); err != nil || got.OwnerReferences[0].Kind != "Service" {
		t.Errorf("owner of the slice: %+v %v", got.OwnerReferences, err)
	}
}
