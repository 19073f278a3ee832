package app

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/gateway/internal/dataplane"
	"github.com/wirespan/wirespan/gateway/internal/dataplane/fake"
	wsdns "github.com/wirespan/wirespan/gateway/internal/dns"
	"github.com/wirespan/wirespan/gateway/internal/election"
	"github.com/wirespan/wirespan/gateway/internal/services"
	"github.com/wirespan/wirespan/internal/poll"
)

// The data plane loop, with the stateful fake for the kernel and a real
// API server for its inputs: the node holding the Lease gets the gateway's
// kernel state and runs the active role; when another node takes the
// Lease, the same loop turns it into a node agent that routes to the new
// active gateway, and the role stops.
func TestSyncerFollowsTheLease(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c := env.Client
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "syncer-"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), ns) })
	own, _ := wgtypes.GeneratePrivateKey()
	remote, _ := wgtypes.GeneratePrivateKey()
	create := func(obj client.Object) {
		t.Helper()
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Delete(context.Background(), obj) })
	}
	for i, name := range []string{"sync-n0", "sync-n1"} {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{wirespanv1alpha1.LabelGateway: "true"}}}
		create(node)
		node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("172.28.1.%d", 10+i)}}
		if err := c.Status().Update(ctx, node); err != nil {
			t.Fatal(err)
		}
	}
	key := types.NamespacedName{Namespace: ns.Name, Name: "key"}
	create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
		Data: map[string][]byte{wirespanv1alpha1.KeySecretPrivateKey: []byte(own.String())}})
	create(&wirespanv1alpha1.ClusterPeer{ObjectMeta: metav1.ObjectMeta{Name: "sync-c1"},
		Spec: wirespanv1alpha1.ClusterPeerSpec{PublicKey: own.PublicKey().String(), Endpoints: []string{"172.28.1.10:51820"}, AllowedCIDRs: []string{"10.1.0.0/16"}}})
	peer := &wirespanv1alpha1.ClusterPeer{ObjectMeta: metav1.ObjectMeta{Name: "sync-c2"},
		Spec: wirespanv1alpha1.ClusterPeerSpec{PublicKey: remote.PublicKey().String(), Endpoints: []string{"172.28.2.10:51820"}, AllowedCIDRs: []string{"10.2.0.0/16"}}}
	create(peer)
	// What c2's gateway last announced, as a restarted gateway finds it.
	peer.Status = wirespanv1alpha1.ClusterPeerStatus{Role: wirespanv1alpha1.RoleRemote, PodCIDRs: []string{"10.2.0.0/16"}}
	if err := c.Status().Update(ctx, peer); err != nil {
		t.Fatal(err)
	}

	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, wirespanv1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	informers, err := cache.New(env.Config, cache.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = informers.Start(ctx) }()

	opts := Options{ClusterID: "sync-c1", NodeName: "sync-n0", KeySecret: key, Agent: DefaultAgentConfig(),
		// Tunnel addresses on loopback, so gossip can bind them here.
		GossipPort: freePort(t), ExportTTL: time.Minute, StatusPeriod: time.Hour,
		Lease: types.NamespacedName{Namespace: ns.Name, Name: "wirespan-gateway"}, LeaseDuration: time.Second, LeaseRenewPeriod: 100 * time.Millisecond}
	opts.Agent.TunnelCIDR = netip.MustParsePrefix("127.77.0.0/16")
	elector := election.New(election.Config{Lease: opts.Lease, Identity: opts.NodeName, Duration: opts.LeaseDuration,
		RenewPeriod: opts.LeaseRenewPeriod, Reader: c, Writer: c, Log: testr.New(t).WithName("election")})
	done := make(chan struct{})
	go func() { defer close(done); _ = elector.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	k := fake.New()
	k.AddLink(dataplane.Link{Name: "eth0", Kind: "veth", MTU: 1500, Up: true})
	m := newMetrics(prometheus.NewRegistry())
	mcs := &services.Controller{ClusterID: opts.ClusterID, DNS: wsdns.NewStore()}
	s := &syncer{
		elector: elector, opts: opts, log: testr.New(t), cache: informers, kernel: k,
		applier: &dataplane.Applier{Kernel: k, WireGuardName: opts.Agent.WireGuardName, VXLANName: opts.Agent.VXLANName},
		metrics: m, poke: make(chan struct{}, 1),
		role: &activeRole{opts: opts, log: testr.New(t), registry: prometheus.NewRegistry(), services: mcs},
		dns: &clustersetDNS{opts: opts, log: testr.New(t), services: mcs, registry: prometheus.NewRegistry(), endpoint: &dnsEndpoint{},
			reader: informers, wake: func() {}, takeovers: newTakeoverCounter(prometheus.NewRegistry()), ask: askDNS},
		reporter: &reporter{opts: opts, writer: c, metrics: m},
		last:     &lastState{},
		interfaceWith: func(netip.Addr) (string, int, []netip.Prefix, error) {
			return "eth0", 1500, []netip.Prefix{netip.MustParsePrefix("172.28.1.0/24")}, nil
		},
	}
	s.tunnels = newTunnels(s, elector.Confirmed)
	t.Cleanup(func() { s.role.stop(); s.dns.stop() })
	if !informers.WaitForCacheSync(ctx) {
		t.Fatal("caches did not sync")
	}
	if err := s.watchLease(ctx); err != nil {
		t.Fatal(err)
	}

	syncUntil := func(what string, check func(dump string) error) {
		t.Helper()
		poll.Until(t, 20*time.Second, what, func() error {
			if elector.Known() {
				s.sync(ctx)
			}
			return check(k.Dump())
		})
	}
	syncUntil("the Lease holder runs the gateway", func(dump string) error {
		for _, want := range []string{"link wirespan0 kind=tun", "route table 51820 10.2.0.0/16 dev wirespan0", "not fwmark 0xca table 51820"} {
			if !strings.Contains(dump, want) {
				return fmt.Errorf("no %q in\n%s", want, dump)
			}
		}
		if !s.role.running() {
			return errors.New("the active role does not run")
		}
		return nil
	})

	// The peer stops answering while the gateway sends to it: between
	// syncs, the session is started again (the peer entry added anew, so
	// its counters start from zero), once, and counted.
	now := time.Now()
	s.tunnels.now = func() time.Time { return now }
	remoteKey := remote.PublicKey()
	for i, tx := range []int64{1000, 1500, 2000} {
		k.SetHandshake(opts.Agent.WireGuardName, remoteKey, wgtypes.Peer{LastHandshakeTime: now, ReceiveBytes: 500, TransmitBytes: tx})
		s.tunnels.check()
		now = now.Add(time.Second + time.Duration(i)*time.Millisecond)
	}
	dev, err := k.Device(opts.Agent.WireGuardName)
	if err != nil || len(dev.Peers) != 1 {
		t.Fatalf("device after the restart: %v %+v", err, dev)
	}
	if p := dev.Peers[0]; p.TransmitBytes != 0 || p.PersistentKeepaliveInterval == 0 || len(p.AllowedIPs) == 0 {
		t.Errorf("peer after the restart: %+v; want it added anew as it was", p)
	}
	if got := testutil.ToFloat64(m.tunnelRestarts.WithLabelValues("sync-c2")); got != 1 {
		t.Errorf("tunnel restarts of sync-c2 = %v, want 1", got)
	}

	// Cut off: the Lease cannot be renewed and no peer is heard for 2 s.
	// The gateway turns passive (its peer loses endpoint and keepalive, and
	// syncs keep it so); once confirmed again it dials again.
	confirmed := false
	s.tunnels.confirmed = func() bool { return confirmed }
	for range 3 {
		now = now.Add(time.Second)
		s.tunnels.check()
	}
	if !s.tunnels.isPassive() {
		t.Fatal("a gateway that can neither renew nor hear a peer is not passive")
	}
	peerState := func() wgtypes.Peer {
		t.Helper()
		dev, err := k.Device(opts.Agent.WireGuardName)
		if err != nil || len(dev.Peers) != 1 {
			t.Fatalf("device: %v %+v", err, dev)
		}
		return dev.Peers[0]
	}
	s.sync(ctx)
	if p := peerState(); p.Endpoint != nil || p.PersistentKeepaliveInterval != 0 || len(p.AllowedIPs) == 0 {
		t.Errorf("peer of a passive gateway after a sync: %+v; want no endpoint, no keepalive", p)
	}
	if got := testutil.ToFloat64(m.tunnelRestarts.WithLabelValues("sync-c2")); got != 1 {
		t.Errorf("a passive gateway restarted sessions: %v restarts, want 1", got)
	}
	confirmed = true
	s.tunnels.check()
	s.sync(ctx)
	if p := peerState(); s.tunnels.isPassive() || p.Endpoint == nil || p.PersistentKeepaliveInterval == 0 {
		t.Errorf("peer once the role is confirmed again: %+v (passive %v); want its endpoint and keepalive back", p, s.tunnels.isPassive())
	}

	// The label goes while this node holds the Lease: it hands over, and
	// carries traffic until the successor holds it, so its syncs still
	// read the cluster key and configure the gateway.
	var n0 corev1.Node
	if err := c.Get(ctx, types.NamespacedName{Name: "sync-n0"}, &n0); err != nil {
		t.Fatal(err)
	}
	delete(n0.Labels, wirespanv1alpha1.LabelGateway)
	if err := c.Update(ctx, &n0); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "the cache sees the label gone", func() error {
		var cached corev1.Node
		if err := informers.Get(ctx, types.NamespacedName{Name: "sync-n0"}, &cached); err != nil {
			return err
		}
		if isGateway(&cached) {
			return errors.New("still labeled")
		}
		return nil
	})
	// The elector learns of the label from this sync: it still names
	// this node.
	s.sync(ctx)
	if err := s.readyCheck(nil); err != nil {
		t.Errorf("a sync of the holder that lost its label failed: %v", err)
	}

	// sync-n1 takes the Lease (as its elector would, once this one went
	// silent): this node follows as a node agent, through its VXLAN link.
	// (This node's elector may be writing the Lease too: it hands over.)
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var l coordinationv1.Lease
		if err := c.Get(ctx, opts.Lease, &l); err != nil {
			return err
		}
		l.Spec.HolderIdentity = ptr.To("sync-n1")
		l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
		return c.Update(ctx, &l)
	}); err != nil {
		t.Fatal(err)
	}
	syncUntil("this node routes to the new active gateway", func(dump string) error {
		for _, want := range []string{"remote=172.28.1.11", "route table 51820 10.2.0.0/16 via 172.28.1.11 dev wirespan-vx"} {
			if !strings.Contains(dump, want) {
				return fmt.Errorf("no %q in\n%s", want, dump)
			}
		}
		if strings.Contains(dump, "link wirespan0") {
			return fmt.Errorf("the WireGuard device is still there:\n%s", dump)
		}
		if s.role.running() {
			return errors.New("the active role still runs")
		}
		return nil
	})
}
