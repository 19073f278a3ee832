package app

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/gateway/internal/agent"
)

// The reporter writes a remote peer's status on a state change at once,
// tunnel figures alone at most every StatusPeriod, and the endpoint the
// tunnel moved to at once: a gateway that becomes active dials it first.
func TestReporterWritesStateAndEndpointAtOnceFiguresLater(t *testing.T) {
	ctx := context.Background()
	c := env.Client
	own, _ := wgtypes.GeneratePrivateKey()
	remote, _ := wgtypes.GeneratePrivateKey()
	cp := &wirespanv1alpha1.ClusterPeer{
		ObjectMeta: metav1.ObjectMeta{Name: "report-c2"},
		Spec: wirespanv1alpha1.ClusterPeerSpec{PublicKey: remote.PublicKey().String(),
			Endpoints: []string{"172.28.2.10:51820", "172.28.2.11:51820"}, AllowedCIDRs: []string{"10.2.0.0/16"}},
	}
	if err := c.Create(ctx, cp); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(ctx, cp) })

	r := &reporter{opts: Options{StatusPeriod: time.Hour, Agent: DefaultAgentConfig()}, writer: c, metrics: newMetrics(prometheus.NewRegistry())}
	plan := agent.Plan{Peers: []agent.PeerPlan{{Cluster: cp.Name, Key: remote.PublicKey(), Endpoint: netip.MustParseAddrPort("172.28.2.10:51820")}}}
	device := func(endpoint string, rx int64) *wgtypes.Device {
		return &wgtypes.Device{Peers: []wgtypes.Peer{{PublicKey: remote.PublicKey(), Endpoint: net.UDPAddrFromAddrPort(netip.MustParseAddrPort(endpoint)),
			LastHandshakeTime: time.Now(), ReceiveBytes: rx}}}
	}
	report := func(dev *wgtypes.Device) *wirespanv1alpha1.ClusterPeer {
		t.Helper()
		var cur wirespanv1alpha1.ClusterPeer
		if err := c.Get(ctx, client.ObjectKeyFromObject(cp), &cur); err != nil {
			t.Fatal(err)
		}
		w := &world{in: agent.Inputs{PrivateKey: &own}, remote: map[string]*wirespanv1alpha1.ClusterPeer{cp.Name: &cur}}
		if err := r.report(ctx, w, plan, dev, nil, nil, &activeRole{}); err != nil {
			t.Fatal(err)
		}
		var after wirespanv1alpha1.ClusterPeer
		if err := c.Get(ctx, client.ObjectKeyFromObject(cp), &after); err != nil {
			t.Fatal(err)
		}
		return &after
	}

	first := report(device("172.28.2.10:51820", 100))
	if first.Status.Tunnel == nil || first.Status.Tunnel.Endpoint != "172.28.2.10:51820" || first.Status.Tunnel.RxBytes != 100 {
		t.Fatalf("first report: tunnel %+v", first.Status.Tunnel)
	}
	// Figures alone: not written before StatusPeriod.
	if again := report(device("172.28.2.10:51820", 200)); again.ResourceVersion != first.ResourceVersion {
		t.Errorf("tunnel figures alone were written within StatusPeriod")
	}
	// The peer's other gateway took over (WireGuard roamed there, and
	// wireguard-go reports it IPv4-mapped): written at once, unmapped.
	moved := report(device("[::ffff:172.28.2.11]:51820", 300))
	if moved.ResourceVersion == first.ResourceVersion || moved.Status.Tunnel.Endpoint != "172.28.2.11:51820" {
		t.Errorf("after the tunnel moved: endpoint %q (written: %v), want 172.28.2.11:51820 written at once",
			moved.Status.Tunnel.Endpoint, moved.ResourceVersion != first.ResourceVersion)
	}
}
