package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/wirespan/wirespan/gateway/internal/agent"
	wsdns "github.com/wirespan/wirespan/gateway/internal/dns"
	"github.com/wirespan/wirespan/gateway/internal/services"
	"github.com/wirespan/wirespan/internal/poll"
)

// freePort is a port free now for both TCP and UDP on every address,
// where a DNS server or gossip can listen.
func freePort(t *testing.T) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		c, err := net.ListenPacket("udp", fmt.Sprintf(":%d", port))
		_ = l.Close()
		if err == nil {
			_ = c.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

// answers says whether a DNS server answers at addr.
func answers(addr string) error {
	c := &dns.Client{Timeout: 300 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion("nothing.default.svc.clusterset.local.", dns.TypeA)
	_, _, err := c.Exchange(m, addr)
	return err
}

// testGatewayDNS is a gateway's clusterset DNS on every address at a free
// port, publishing in the DNS Service key, stopped when the test ends.
// The API server refuses loopback addresses in an EndpointSlice, so the
// node's address is nodeIP, from the documentation range; the probes ask
// 127.0.0.1 at the port published. Its wake serves again, as the
// syncer's sync would.
func testGatewayDNS(t *testing.T, node, nodeIP string, key types.NamespacedName) (*testGateway, *world) {
	t.Helper()
	opts := Options{ClusterID: "c1", NodeName: node, DNSAddr: fmt.Sprintf(":%d", freePort(t)), DNSZone: "clusterset.local", DNSService: key}
	d := &clustersetDNS{
		opts: opts, log: testr.New(t).WithName(node), services: &services.Controller{ClusterID: "c1", DNS: wsdns.NewStore()},
		registry: prometheus.NewRegistry(), linger: 300 * time.Millisecond,
		endpoint: &dnsEndpoint{service: key, reader: env.Client, writer: env.Client, log: testr.New(t).WithName(node)},
		reader:   env.Client, takeovers: newTakeoverCounter(prometheus.NewRegistry()),
		// Longer than the gateway's 400 ms, so that a loaded machine's
		// slow answer is not taken for a crash.
		silence: time.Second,
		ask: func(ctx context.Context, addr netip.AddrPort, zone string) error {
			return askDNS(ctx, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), addr.Port()), zone)
		},
	}
	w := &world{in: agent.Inputs{Node: agent.Node{IP: netip.MustParseAddr(nodeIP)}}}
	g := &testGateway{clustersetDNS: d}
	d.wake = func() {
		go func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.retired {
				return
			}
			if err := d.serve(context.Background(), w); err != nil {
				t.Errorf("%s: serve: %v", node, err)
			}
		}()
	}
	t.Cleanup(d.stop)
	return g, w
}

// testGateway is a gateway's clusterset DNS whose calls are serialized, as
// the syncer's one loop serializes them: the test's own and those its
// wake makes (serve, on another goroutine). Once retired, as a node that
// stopped being a gateway, its wake serves no more.
type testGateway struct {
	*clustersetDNS
	mu      sync.Mutex
	retired bool
}

func (g *testGateway) serve(ctx context.Context, w *world) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.retired = false
	return g.clustersetDNS.serve(ctx, w)
}

func (g *testGateway) retire(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.retired = true
	return g.clustersetDNS.retire(ctx)
}

func (g *testGateway) publish(ctx context.Context, w *world, force bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.clustersetDNS.publish(ctx, w, force)
}

// A gateway's DNS server runs while it serves, lingers when it retires,
// is taken back if it serves again meanwhile, and leaves its port free.
func TestGatewayDNSServesLingersAndStops(t *testing.T) {
	ctx := context.Background()
	d, w := testGatewayDNS(t, "n0", "192.0.2.10", types.NamespacedName{})
	local := "127.0.0.1" + d.opts.DNSAddr
	for round := range 2 {
		if err := d.serve(ctx, w); err != nil {
			t.Fatalf("round %d: serve: %v", round, err)
		}
		if err := answers(local); err != nil {
			t.Fatalf("round %d: the DNS server does not answer: %v", round, err)
		}
		if err := d.retire(ctx); err != nil {
			t.Fatalf("round %d: retire: %v", round, err)
		}
		// DNS lingers, for queries kube-proxy still sends here...
		if err := answers(local); err != nil {
			t.Fatalf("round %d: the DNS server stopped at once, want it to linger: %v", round, err)
		}
		// ...and then stops.
		poll.Until(t, 10*d.linger, "the DNS server stops after lingering", func() error {
			if answers(local) == nil {
				return errors.New("it still answers")
			}
			return nil
		})
		c, err := net.ListenPacket("udp", d.opts.DNSAddr)
		if err != nil {
			t.Fatalf("round %d: %s still taken after it stopped: %v", round, d.opts.DNSAddr, err)
		}
		_ = c.Close()
	}

	// Serving again while DNS lingers: the same server goes on.
	if err := d.serve(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := d.retire(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.serve(ctx, w); err != nil {
		t.Fatalf("serving again while DNS lingered: %v", err)
	}
	time.Sleep(2 * d.linger)
	if err := answers(local); err != nil {
		t.Fatalf("serving again while DNS lingered, and DNS stopped: %v", err)
	}
}

// The DNS Service names the active gateway n0. A standby, n1, leaves it
// alone while n0's server answers; once it stops answering (a crash), n1
// writes itself into the slice after the silence it allows and a probe or
// two, and counts it.
func TestStandbyTakesTheDNSServiceOverFromASilentServer(t *testing.T) {
	ctx := context.Background()
	c := env.Client
	ns := testNamespace(t, "dns-takeover-")
	key := types.NamespacedName{Namespace: ns, Name: "wirespan-dns"}
	if err := c.Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
			{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(5353)},
		}},
	}); err != nil {
		t.Fatal(err)
	}
	named := func() (string, error) {
		var s discoveryv1.EndpointSlice
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "wirespan-dns-active"}, &s); err != nil {
			return "", err
		}
		return *s.Endpoints[0].NodeName, nil
	}

	active, aw := testGatewayDNS(t, "n0", "192.0.2.10", key)
	standby, sw := testGatewayDNS(t, "n1", "192.0.2.11", key)
	for _, g := range []struct {
		d *testGateway
		w *world
	}{{active, aw}, {standby, sw}} {
		if err := g.d.serve(ctx, g.w); err != nil {
			t.Fatal(err)
		}
	}
	active.publish(ctx, aw, true)
	if node, err := named(); err != nil || node != "n0" {
		t.Fatalf("the DNS Service names %q (%v), want n0", node, err)
	}

	time.Sleep(3 * standby.silence)
	if node, err := named(); err != nil || node != "n0" {
		t.Fatalf("n0 answers, and the DNS Service names %q (%v), want n0 still", node, err)
	}
	if n := value(t, standby.takeovers); n != 0 {
		t.Fatalf("%v takeovers of a server that answers", n)
	}

	active.stop() // as a SIGKILL would: the slice still names it
	stopped := time.Now()
	poll.Until(t, 5*time.Second, "n1 named in the DNS Service", func() error {
		if node, err := named(); err != nil || node != "n1" {
			return fmt.Errorf("it names %q (%w)", node, err)
		}
		return nil
	})
	t.Logf("the DNS Service named the standby %v after the active gateway's DNS server stopped", time.Since(stopped).Round(10*time.Millisecond))
	if n := value(t, standby.takeovers); n != 1 {
		t.Errorf("%v takeovers counted, want 1", n)
	}

	// n0 is back as a standby: while it still holds the role (a handover
	// drains), it does not take the slice back...
	if err := active.serve(ctx, aw); err != nil {
		t.Fatal(err)
	}
	active.publish(ctx, aw, false)
	if node, err := named(); err != nil || node != "n1" {
		t.Fatalf("a gateway that did not just take the role wrote the slice: it names %q (%v), want n1", node, err)
	}
	// ...and once the role comes back to it, it names itself at once,
	// although it published the same address before.
	active.publish(ctx, aw, true)
	if node, err := named(); err != nil || node != "n0" {
		t.Fatalf("the active gateway published itself again, and the DNS Service names %q (%v), want n0", node, err)
	}

	// n1 takes it over again, then stops being a gateway: it withdraws
	// the slice, and the active gateway's next sync puts itself back.
	active.stop()
	poll.Until(t, 5*time.Second, "n1 named again", func() error {
		if node, err := named(); err != nil || node != "n1" {
			return fmt.Errorf("it names %q (%w)", node, err)
		}
		return nil
	})
	if err := standby.retire(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := named(); !apierrors.IsNotFound(err) {
		t.Fatalf("n1 retired and the slice is still there (%v)", err)
	}
	if err := active.serve(ctx, aw); err != nil {
		t.Fatal(err)
	}
	active.publish(ctx, aw, false)
	if node, err := named(); err != nil || node != "n0" {
		t.Fatalf("the slice was gone, and after the active gateway's sync it names %q (%v), want n0", node, err)
	}
}
