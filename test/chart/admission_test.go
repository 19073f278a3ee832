package chart

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/wirespan/wirespan/internal/poll"
)

// The chart's ValidatingAdmissionPolicy, applied to a real API server with
// the chart's RBAC: the gateway's ServiceAccount writes the objects
// Wirespan manages, and nothing else; every other refusal names the rule.
func TestGatewayWritesOnlyWhatWirespanManages(t *testing.T) {
	ctx := context.Background()
	const release, ns = "vap", "wirespan-vap"
	install(t, release, ns, "--set", "clusterID=east")
	admin := env.Client
	work := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "vap-work-"}}
	if err := admin.Create(ctx, work); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Delete(context.Background(), work) })

	cfg, err := clientcmd.BuildConfigFromFlags("", tokenKubeconfig(t, ns, release+"-wirespan-gateway"))
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := mcsv1beta1.Install(scheme); err != nil {
		t.Fatal(err)
	}
	gateway, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ours := map[string]string{"app.kubernetes.io/managed-by": "wirespan"}
	service := func(name string, labels map[string]string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: work.Name, Name: name, Labels: labels},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}}
	}
	refused := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "the Wirespan gateway") {
			t.Errorf("%s: %v, want a refusal by the gateway's admission policy", what, err)
		}
	}

	// Someone else's Service.
	other := service("other", nil)
	if err := admin.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	// The policy takes effect once the API server has checked it.
	poll.Until(t, 30*time.Second, "the policy refuses a takeover", func() error {
		taken := other.DeepCopy()
		taken.Labels = ours
		if err := gateway.Update(ctx, taken); err == nil || !strings.Contains(err.Error(), "the Wirespan gateway") {
			if err == nil {
				_ = admin.Get(ctx, client.ObjectKeyFromObject(other), other)
				other.Labels = nil
				_ = admin.Update(ctx, other) // undo, and try again
				return errors.New("the takeover was admitted")
			}
			return err
		}
		return nil
	})
	refused("delete someone else's Service", gateway.Delete(ctx, other))

	// Its own: a derived Service, its slice and its import.
	derived := service("derived", ours)
	if err := gateway.Create(ctx, derived); err != nil {
		t.Fatalf("the gateway may create a Service Wirespan manages: %v", err)
	}
	withIPs := derived.DeepCopy()
	withIPs.Spec.ExternalIPs = []string{"192.0.2.1"}
	refused("set externalIPs", gateway.Update(ctx, withIPs))
	nodePort := derived.DeepCopy()
	nodePort.Spec.Type = corev1.ServiceTypeNodePort
	refused("change the type", gateway.Update(ctx, nodePort))
	lb := service("lb", ours)
	lb.Spec.Type = corev1.ServiceTypeLoadBalancer
	refused("create a LoadBalancer", gateway.Create(ctx, lb))

	slice := func(name string, labels map[string]string) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: work.Name, Name: name, Labels: labels},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.2.0.10"}}},
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](80)}}}
	}
	refused("an extra slice for someone else's Service", gateway.Create(ctx, slice("other-extra", map[string]string{discoveryv1.LabelServiceName: "other"})))
	if err := gateway.Create(ctx, slice("derived-c2", map[string]string{discoveryv1.LabelServiceName: "derived", discoveryv1.LabelManagedBy: "wirespan.io"})); err != nil {
		t.Errorf("the gateway may create an imported slice: %v", err)
	}

	si := func(name string, labels map[string]string) *mcsv1beta1.ServiceImport {
		return &mcsv1beta1.ServiceImport{ObjectMeta: metav1.ObjectMeta{Namespace: work.Name, Name: name, Labels: labels},
			Spec: mcsv1beta1.ServiceImportSpec{Type: mcsv1beta1.ClusterSetIP, Ports: []mcsv1beta1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}}
	}
	refused("a ServiceImport without Wirespan's label", gateway.Create(ctx, si("stray", nil)))
	if err := gateway.Create(ctx, si("derived", ours)); err != nil {
		t.Errorf("the gateway may create a ServiceImport: %v", err)
	}
	if err := gateway.Delete(ctx, derived); err != nil {
		t.Errorf("the gateway may delete its own Service: %v", err)
	}
	// The policy binds the gateway alone: an admin still does anything.
	taken := other.DeepCopy()
	_ = admin.Get(ctx, client.ObjectKeyFromObject(other), taken)
	taken.Spec.ExternalIPs = []string{"192.0.2.1"}
	if err := admin.Update(ctx, taken); err != nil {
		t.Errorf("an admin's write was refused: %v", err)
	}
}
