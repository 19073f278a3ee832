package app

import (
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wirespan/wirespan/gateway/internal/agent"
	"github.com/wirespan/wirespan/gateway/internal/dataplane"
	"github.com/wirespan/wirespan/gateway/internal/dataplane/fake"
)

// A gateway that can neither renew the Lease nor hear its peer turns
// passive only once a plan has said its cluster has an endpoint: a
// cluster behind NAT, or a gateway that has not synced yet (its kept state
// put back during an API server outage), keeps dialing, since nobody can
// dial in to it.
func TestPassiveOnlyWithAnEndpoint(t *testing.T) {
	k := fake.New()
	if err := k.CreateWireGuard("wirespan0", 1420); err != nil {
		t.Fatal(err)
	}
	peer := wgtypes.Key{7}
	keepalive := 25 * time.Second
	if err := k.ConfigureDevice("wirespan0", wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: peer, PersistentKeepaliveInterval: &keepalive}}}); err != nil {
		t.Fatal(err)
	}
	s := &syncer{
		opts: Options{Agent: agent.Config{WireGuardName: "wirespan0"}}, log: testr.New(t), kernel: k,
		applier: &dataplane.Applier{Kernel: k, WireGuardName: "wirespan0"}, metrics: newMetrics(prometheus.NewRegistry()),
		poke: make(chan struct{}, 1),
	}
	tn := newTunnels(s, func() bool { return false })
	now := time.Now()
	tn.now = func() time.Time { return now }
	silent := func(what string) {
		t.Helper()
		for range 4 {
			now = now.Add(time.Second)
			tn.check()
		}
		if tn.isPassive() {
			t.Fatalf("%s turned passive", what)
		}
	}
	silent("a gateway no plan has reached")
	plan := agent.Plan{Role: agent.RoleGateway, Peers: []agent.PeerPlan{{Cluster: "c2", Key: peer}}}
	tn.learn(plan, false)
	silent("a gateway behind NAT")
	tn.learn(plan, true)
	now = now.Add(time.Second)
	tn.check()
	if !tn.isPassive() {
		t.Fatal("a cut-off gateway with an endpoint did not turn passive")
	}
	d, err := k.Device("wirespan0")
	if err != nil || d.Peers[0].PersistentKeepaliveInterval != 0 {
		t.Fatalf("passive peer %+v (%v), want no keepalive", d.Peers, err)
	}
}
