package objects

import (
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/test/internal/lab/plan"
)

const key = "mwc7sqLThYPnCu190gt1yAcdKe742Ct2XddgkUp1Cnw="

func TestClusterPeerManifestIsAValidClusterPeer(t *testing.T) {
	cfg := plan.DefaultConfig()
	cfg.NAT = "c2"
	p, err := plan.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range p.Clusters {
		var cp wirespanv1alpha1.ClusterPeer
		if err := yaml.UnmarshalStrict([]byte(ClusterPeerManifest(c, key)), &cp); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if cp.Name != c.Name || cp.Kind != "ClusterPeer" || cp.APIVersion != wirespanv1alpha1.GroupVersion.String() || cp.Spec.PublicKey != key {
			t.Errorf("%s: %+v", c.Name, cp)
		}
		if want := []string{c.PodCIDR.String(), c.ServiceCIDR.String()}; !slices.Equal(cp.Spec.AllowedCIDRs, want) {
			t.Errorf("%s: allowedCIDRs %v, want %v", c.Name, cp.Spec.AllowedCIDRs, want)
		}
		wantEndpoints := []string{"172.28.1.10:51820"}
		if c.NAT {
			wantEndpoints = []string{}
		}
		if !slices.Equal(cp.Spec.Endpoints, wantEndpoints) {
			t.Errorf("%s: endpoints %v, want %v", c.Name, cp.Spec.Endpoints, wantEndpoints)
		}
	}
}

func TestPodLooksRunningAndReadyOnItsNode(t *testing.T) {
	p, err := plan.New(plan.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	c := p.Clusters[0]
	pod := Pod(c, c.Pods[1], time.Now())
	if pod.Spec.NodeName != "c1-n1" || pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP != "10.1.1.10" || pod.Status.HostIP != "172.28.1.11" {
		t.Errorf("pod %+v", pod)
	}
	ready := false
	for _, cond := range pod.Status.Conditions {
		if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	if !ready || !pod.Status.ContainerStatuses[0].Ready {
		t.Error("pod not ready: the EndpointSlice controller would not publish it")
	}
	gw := Node(c, c.Nodes[0])
	if gw.Labels[wirespanv1alpha1.LabelGateway] != "true" || gw.Spec.PodCIDRs[0] != "10.1.0.0/24" {
		t.Errorf("gateway node %+v", gw)
	}
	if _, ok := Node(c, c.Nodes[1]).Labels[wirespanv1alpha1.LabelGateway]; ok {
		t.Error("non-gateway node has the gateway label")
	}
}
