package app

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/wirespan/wirespan/gateway/internal/dns"
	"github.com/wirespan/wirespan/gateway/internal/services"
)

// clustersetDNS is the clusterset DNS server of a gateway node, active or
// standby, and its place in the DNS Service. Every gateway serves the same
// answers: they come from the imports in the API server, which the active
// gateway's MCS controller writes and the standbys' read (services'
// SetStandbyDNS). The DNS Service names one server (dnsEndpoint): the
// active gateway publishes itself when it takes the role, and every other
// gateway asks the named server every dnsProbeEvery; when it has not
// answered for dnsSilence, the asking gateway writes itself into the
// slice instead. A crashed or cut-off active gateway so costs DNS about
// half a second and kube-proxy's sync, not the Lease's duration. The
// probes are not a fence: any gateway may answer DNS, so a probe that
// failed on a slow but live server costs nothing but a move.
type clustersetDNS struct {
	opts     Options
	log      logr.Logger
	services *services.Controller
	// registry receives the DNS server's metrics while it runs.
	registry prometheus.Registerer
	endpoint *dnsEndpoint
	// reader reads the slice for the probes (the manager's cache).
	reader client.Reader
	// wake asks the syncer for a sync, which takes the slice over.
	wake func()
	// linger is how long the server keeps answering after this node
	// stopped serving (dnsLinger).
	linger    time.Duration
	takeovers prometheus.Counter
	// ask asks the DNS server at an address for the zone's SOA (askDNS;
	// a test's maps the addresses it published to where it listens).
	ask func(ctx context.Context, addr netip.AddrPort, zone string) error
	// silence is how long the named server may not answer before this
	// gateway takes its place (zero: dnsSilence).
	silence time.Duration

	mu sync.Mutex
	// stopServer stops the DNS server; lingering is that delay, while it
	// runs; stopProbes stops the probes of the named server.
	stopServer func()
	lingering  *time.Timer
	stopProbes func()
	// silent is the named server that stopped answering: the next sync
	// takes its place.
	silent netip.AddrPort
}

const (
	// dnsLinger is how long a gateway that stops serving keeps answering
	// DNS: the DNS Service names it until another gateway has published
	// itself and kube-proxy has followed (its sync period, 1 s by
	// default), and a query sent there meanwhile must still be answered.
	dnsLinger = 2 * time.Second
	// dnsProbeEvery is how often a gateway asks the named DNS server;
	// dnsProbeTimeout how long it waits for each answer; dnsSilence how
	// long without one before it takes the server's place.
	dnsProbeEvery   = 100 * time.Millisecond
	dnsProbeTimeout = 200 * time.Millisecond
	dnsSilence      = 400 * time.Millisecond
)

func newTakeoverCounter(reg prometheus.Registerer) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "wirespan_gateway_dns_takeovers_total",
		Help: "Times this gateway wrote itself into the DNS Service because the DNS server it named stopped answering."})
	reg.MustRegister(c)
	return c
}

// serve runs the DNS server and the probes on a gateway node, and takes
// the slice over if the probes found the named server silent.
func (d *clustersetDNS) serve(ctx context.Context, w *world) error {
	d.services.SetStandbyDNS(true)
	if err := d.startServer(w.in.Node.IP); err != nil {
		return err
	}
	d.startProbes()
	d.mu.Lock()
	silent := d.silent
	d.silent = netip.AddrPort{}
	d.mu.Unlock()
	self, ok := d.address(w.in.Node.IP)
	if !silent.IsValid() || !ok || !d.serving() {
		return nil
	}
	took, err := d.endpoint.takeOver(ctx, d.opts.NodeName, self, silent, time.Now())
	if err != nil {
		// Like a failed publish, logged, not a sync error: the data plane
		// is not less ready for it. The probes ask again.
		d.log.Error(err, "take the DNS Service over from a DNS server that does not answer", "silent", silent.String())
		return nil
	}
	if took {
		d.takeovers.Inc()
		d.log.Info("the DNS server the DNS Service named stopped answering; it names this gateway's now",
			"silent", silent.String(), "silentFor", d.silenceOrDefault().String(), "address", self.String())
	}
	return nil
}

// publish points the DNS Service at this gateway's DNS server: the active
// gateway's, once it runs. newlyActive: this node just took the role, and
// writes the slice whatever it published before (another gateway may have
// written itself in since); so it does when the slice is gone. A failure is logged and retried at the next
// sync; it does not make the data plane unready.
func (d *clustersetDNS) publish(ctx context.Context, w *world, newlyActive bool) {
	addr, ok := d.address(w.in.Node.IP)
	if !ok || !d.serving() {
		return
	}
	if _, named, err := d.endpoint.named(ctx, d.reader); newlyActive || (err == nil && !named.IsValid()) {
		// Also when the slice is gone: a standby that had taken it over
		// withdrew it when it stopped being a gateway.
		d.endpoint.forget()
	}
	if err := d.endpoint.publish(ctx, d.opts.NodeName, addr, time.Now()); err != nil {
		d.log.Error(err, "publish this gateway in the DNS Service")
	}
}

// retire stops serving on a node that is no gateway any more: the probes
// stop, the server lingers, and the DNS Service no longer names this node.
func (d *clustersetDNS) retire(ctx context.Context) error {
	d.services.SetStandbyDNS(false)
	d.stopProbing()
	d.lingerServer()
	return d.endpoint.withdraw(ctx, d.opts.NodeName)
}

// names says whether the DNS Service names this node, as the cache has it.
func (d *clustersetDNS) names(ctx context.Context) bool {
	node, _, err := d.endpoint.named(ctx, d.reader)
	return err == nil && node == d.opts.NodeName
}

// stop stops the probes and the server now, and returns once they have.
func (d *clustersetDNS) stop() {
	d.stopProbing()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lingering != nil {
		d.lingering.Stop()
		d.lingering = nil
	}
	if d.stopServer != nil {
		d.stopServer()
		d.stopServer = nil
	}
}

// address is where this node's DNS server is reached: --dns-bind-address,
// with the node's address for "node" or an unspecified address.
func (d *clustersetDNS) address(nodeIP netip.Addr) (netip.AddrPort, bool) {
	addr, err := dnsBindAddress(d.opts.DNSAddr, nodeIP)
	if err != nil || d.opts.DNSAddr == "" {
		return netip.AddrPort{}, false // Validate refused it already, or DNS is off
	}
	if addr.Addr().IsUnspecified() {
		addr = netip.AddrPortFrom(nodeIP, addr.Port())
	}
	return addr, true
}

func (d *clustersetDNS) serving() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stopServer != nil && d.lingering == nil
}

// startServer starts the clusterset DNS server, answering from the MCS
// controller's store, unless --dns-bind-address is empty; a server still
// lingering from this node's last turn is kept. nodeIP stands for "node"
// in --dns-bind-address.
func (d *clustersetDNS) startServer(nodeIP netip.Addr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lingering != nil {
		// Serving again: the lingering server goes on.
		d.lingering.Stop()
		d.lingering = nil
	}
	if d.opts.DNSAddr == "" || d.stopServer != nil {
		return nil
	}
	bind := d.opts.DNSAddr // ":port" stays as it is: every address, both families
	if strings.HasPrefix(bind, "node:") {
		addr, err := dnsBindAddress(bind, nodeIP)
		if err != nil {
			return fmt.Errorf("--dns-bind-address %q: %w", d.opts.DNSAddr, err)
		}
		bind = addr.String()
	}
	srv, err := dns.NewServer(dns.Config{
		Zone: d.opts.DNSZone, Addr: bind, Store: d.services.DNS,
		Logger: d.log.WithName("dns"), Registerer: d.registry,
	})
	if err != nil {
		return fmt.Errorf("start the clusterset DNS server: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Run(ctx); err != nil {
			d.log.Error(err, "clusterset DNS server stopped")
		}
	}()
	d.log.Info("clusterset DNS server started", "addr", srv.Addr(), "zone", d.opts.DNSZone)
	d.stopServer = func() { cancel(); <-done }
	return nil
}

// lingerServer stops the DNS server d.linger from now.
func (d *clustersetDNS) lingerServer() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopServer == nil || d.lingering != nil {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(d.linger, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.lingering == t { // not taken back by startServer meanwhile
			d.lingering = nil
			d.stopServer()
			d.stopServer = nil
		}
	})
	d.lingering = t
}

// startProbes starts asking the named DNS server, unless that runs.
func (d *clustersetDNS) startProbes() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopProbes != nil || d.opts.DNSAddr == "" {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.probe(ctx)
	}()
	d.stopProbes = func() { cancel(); <-done }
}

func (d *clustersetDNS) stopProbing() {
	d.mu.Lock()
	stop := d.stopProbes
	d.stopProbes = nil
	d.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// probe asks the server the DNS Service names, unless it is this node's,
// every dnsProbeEvery, and asks for a takeover when it has not answered
// for the silence (dnsSilence); again only after another silence.
func (d *clustersetDNS) probe(ctx context.Context) {
	tick := time.NewTicker(dnsProbeEvery)
	defer tick.Stop()
	var watched netip.AddrPort
	var heard time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		node, addr, err := d.endpoint.named(ctx, d.reader)
		if err != nil || node == d.opts.NodeName || !addr.IsValid() {
			watched = netip.AddrPort{}
			continue
		}
		if addr != watched {
			watched, heard = addr, time.Now()
		}
		if d.ask(ctx, addr, d.opts.DNSZone) == nil {
			heard = time.Now()
			continue
		}
		if time.Since(heard) >= d.silenceOrDefault() {
			d.mu.Lock()
			d.silent = addr
			d.mu.Unlock()
			d.wake()
			heard = time.Now()
		}
	}
}

func (d *clustersetDNS) silenceOrDefault() time.Duration { return cmp.Or(d.silence, dnsSilence) }

// askDNS asks the server at addr for the zone's SOA record: any reply,
// whatever its code, means it answers.
func askDNS(ctx context.Context, addr netip.AddrPort, zone string) error {
	c := &mdns.Client{Timeout: dnsProbeTimeout}
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(zone), mdns.TypeSOA)
	_, _, err := c.ExchangeContext(ctx, m, addr.String())
	return err
}
