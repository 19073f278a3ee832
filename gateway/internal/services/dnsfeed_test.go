package services

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	mdns "github.com/miekg/dns"
	discoveryv1 "k8s.io/api/discovery/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/wirespan/wirespan/gateway/internal/dns"
	"github.com/wirespan/wirespan/internal/mcs"
)

// serveDNS runs a DNS server on the harness's store until the test ends
// and returns a function that resolves a name's A records through it.
// It returns the addresses, or an error naming the response code.
func (h *harness) serveDNS() func(name string) ([]string, error) {
	h.t.Helper()
	srv, err := dns.NewServer(dns.Config{Addr: "127.0.0.1:0", Store: h.store})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Run(ctx); err != nil {
			h.t.Errorf("DNS server: %v", err)
		}
	}()
	h.t.Cleanup(func() { cancel(); <-done })
	c := &mdns.Client{Timeout: 2 * time.Second}
	return func(name string) ([]string, error) {
		q := new(mdns.Msg)
		q.SetQuestion(mdns.Fqdn(name), mdns.TypeA)
		resp, _, err := c.Exchange(q, srv.Addr().String())
		if err != nil {
			return nil, err
		}
		if resp.Rcode != mdns.RcodeSuccess {
			return nil, fmt.Errorf("%s: %s", name, mdns.RcodeToString[resp.Rcode])
		}
		var addrs []string
		for _, rr := range resp.Answer {
			if a, ok := rr.(*mdns.A); ok {
				addrs = append(addrs, a.A.String())
			}
		}
		slices.Sort(addrs)
		return addrs, nil
	}
}

// resolvesTo checks that name has exactly the A records want.
func resolvesTo(resolve func(string) ([]string, error), name string, want ...string) error {
	have, err := resolve(name)
	if err != nil {
		return err
	}
	slices.Sort(want)
	if !slices.Equal(have, want) {
		return fmt.Errorf("%s resolves to %v, want %v", name, have, want)
	}
	return nil
}

func TestDNSFeed(t *testing.T) {
	h := start(t)
	resolve := h.serveDNS()
	created := time.Now().Add(-time.Hour)
	web := remoteExport("west", h.ns, "web", created, mport("http", 80))
	web.Slices = []mcs.Slice{rslice([]discoveryv1.EndpointPort{epPort("http", 8080)},
		rep("10.2.0.1", "", "", true, true, false))}
	db := remoteExport("west", h.ns, "db", created, mport("pg", 5432))
	db.Type = mcsv1beta1.Headless
	db.Slices = []mcs.Slice{rslice([]discoveryv1.EndpointPort{epPort("pg", 5432)},
		rep("10.2.1.1", "db-0", "", true, true, false),
		rep("10.2.1.2", "db-1", "", false, true, true))}
	h.setRemote("west", true, web, db)

	si := h.waitImport(h.ns, "web", withIPs)
	zone := ".svc.clusterset.local."
	h.eventually("the clusterset IP in DNS", func() error {
		return resolvesTo(resolve, "web."+h.ns+zone, si.Spec.IPs...)
	})
	// A headless service resolves to its ready endpoints, each by name.
	h.eventually("the headless service in DNS", func() error {
		return resolvesTo(resolve, "db."+h.ns+zone, "10.2.1.1")
	})
	if err := resolvesTo(resolve, "db-0.west.db."+h.ns+zone, "10.2.1.1"); err != nil {
		t.Error(err)
	}
	if n := h.store.Len(); n != 2 {
		t.Errorf("the DNS store holds %d services, want 2", n)
	}

	// An endpoint becomes ready.
	db.Slices[0].Endpoints[1].Ready = true
	h.setRemote("west", true, web, db)
	h.eventually("the new ready endpoint in DNS", func() error {
		return resolvesTo(resolve, "db-1.west.db."+h.ns+zone, "10.2.1.2")
	})

	// Withdrawn, the names go.
	h.setRemote("west", true)
	h.eventually("names removed", func() error {
		for _, name := range []string{"web", "db"} {
			if _, err := resolve(name + "." + h.ns + zone); err == nil {
				return fmt.Errorf("%s still resolves", name)
			}
		}
		if n := h.store.Len(); n != 0 {
			return fmt.Errorf("the DNS store holds %d services", n)
		}
		return nil
	})
}

// TestDNSKeepsNamesOfUnsettledClusters: while a cluster's set of exports
// is not known (this gateway restarted, or that cluster's did, and no
// snapshot has arrived), what was imported from it stays, and so do its
// names in DNS: a restart must not make names NXDOMAIN for a moment.
func TestDNSKeepsNamesOfUnsettledClusters(t *testing.T) {
	h := start(t)
	resolve := h.serveDNS()
	created := time.Now().Add(-time.Hour)
	web := remoteExport("west", h.ns, "web", created, mport("http", 80))
	web.Slices = []mcs.Slice{rslice([]discoveryv1.EndpointPort{epPort("http", 8080)},
		rep("10.2.0.1", "", "", true, true, false))}
	db := func(cluster, addr, hostname string) mcs.Export {
		e := remoteExport(cluster, h.ns, "db", created, mport("pg", 5432))
		e.Type = mcsv1beta1.Headless
		e.Slices = []mcs.Slice{rslice([]discoveryv1.EndpointPort{epPort("pg", 5432)},
			rep(addr, hostname, "", true, true, false))}
		return e
	}
	h.update(set("west", true, web, db("west", "10.2.1.1", "db-0")), set("north", true, db("north", "10.3.1.1", "db-0")))
	si := h.waitImport(h.ns, "web", withIPs)
	zone := ".svc.clusterset.local."
	names := func() error {
		return errors.Join(
			resolvesTo(resolve, "web."+h.ns+zone, si.Spec.IPs...),
			resolvesTo(resolve, "db."+h.ns+zone, "10.2.1.1", "10.3.1.1"),
			resolvesTo(resolve, "db-0.west.db."+h.ns+zone, "10.2.1.1"),
			resolvesTo(resolve, "db-0.north.db."+h.ns+zone, "10.3.1.1"))
	}
	h.eventually("every name in DNS", names)

	// West is back without a snapshot: web is kept only for west, db is
	// still exported by north and keeps west's endpoints too.
	h.update(set("west", false))
	h.settle()
	if err := names(); err != nil {
		t.Error("while west is unsettled:", err)
	}

	// West's set is known and empty: its names go, north's stay.
	h.setRemote("west", true)
	h.eventually("west's names removed", func() error {
		if _, err := resolve("web." + h.ns + zone); err == nil {
			return errors.New("web still resolves")
		}
		if _, err := resolve("db-0.west.db." + h.ns + zone); err == nil {
			return errors.New("db-0.west still resolves")
		}
		return resolvesTo(resolve, "db."+h.ns+zone, "10.3.1.1")
	})
}

// TestDNSDoesNotWaitForTheWholeSync: an import's name is served as soon as
// that import is written, not when the sync that writes thousands of
// them ends. Here the creation of one ServiceImport hangs; the other
// import's name resolves meanwhile.
func TestDNSDoesNotWaitForTheWholeSync(t *testing.T) {
	h := start(t)
	resolve := h.serveDNS()
	release := h.hold("slow")
	created := time.Now().Add(-time.Hour)
	h.setRemote("west", true,
		remoteExport("west", h.ns, "slow", created, mport("http", 80)),
		remoteExport("west", h.ns, "fast", created, mport("http", 80)))
	si := h.waitImport(h.ns, "fast", withIPs)
	zone := ".svc.clusterset.local."
	h.eventually("fast in DNS while slow is still being written", func() error {
		return resolvesTo(resolve, "fast."+h.ns+zone, si.Spec.IPs...)
	})
	release()
	slow := h.waitImport(h.ns, "slow", withIPs)
	h.eventually("slow in DNS", func() error {
		return resolvesTo(resolve, "slow."+h.ns+zone, slow.Spec.IPs...)
	})
}

// importWebAndHeadlessDB has west export web (ClusterSetIP) and db
// (headless, one ready endpoint db-0), and returns web's import once it
// has its IPs, and db's export.
func (h *harness) importWebAndHeadlessDB() (*mcsv1beta1.ServiceImport, mcs.Export) {
	h.t.Helper()
	created := time.Now().Add(-time.Hour)
	db := remoteExport("west", h.ns, "db", created, mport("pg", 5432))
	db.Type = mcsv1beta1.Headless
	db.Slices = []mcs.Slice{rslice([]discoveryv1.EndpointPort{epPort("pg", 5432)}, rep("10.2.1.1", "db-0", "", true, true, false))}
	h.setRemote("west", true, remoteExport("west", h.ns, "web", created, mport("http", 80)), db)
	return h.waitImport(h.ns, "web", withIPs), db
}

// TestNewlyActiveGatewayAnswersAtOnce: a controller that becomes active
// (a restart, a failover) gives DNS the imports the cluster already has
// before it reconciles any: prefillDNS, alone, fills an empty store with
// the ClusterSetIP and headless names the first controller wrote.
func TestNewlyActiveGatewayAnswersAtOnce(t *testing.T) {
	h := start(t)
	si, _ := h.importWebAndHeadlessDB()
	h.eventually("db's slice", func() error { return sliceClusters(h.ns, "db", "west") })
	h.settle()

	next := &Controller{ClusterID: localCluster, Cache: sharedCache, Client: k8s, Log: testr.New(t), DNS: dns.NewStore(), Metrics: NewMetrics(nil)}
	if n := next.prefillDNS(context.Background()); n < 2 {
		t.Fatalf("prefilled %d imports, want at least web and db", n)
	}
	want := map[string][]netip.Addr{"web": {netip.MustParseAddr(si.Spec.IPs[0])}, "db": nil}
	for name, ips := range want {
		svc, ok := next.dnsLast[serviceKey{Namespace: h.ns, Name: name}]
		switch {
		case !ok:
			t.Errorf("%s: not given to DNS", name)
		case name == "web" && !slices.Equal(svc.IPs, ips):
			t.Errorf("web: DNS has %v, want %v", svc.IPs, ips)
		case name == "db" && (len(svc.Endpoints) != 1 || svc.Endpoints[0].Hostname != "db-0" || svc.Endpoints[0].Cluster != "west"):
			t.Errorf("db: DNS has endpoints %+v, want db-0 of west", svc.Endpoints)
		}
	}
}

// TestStandbyGatewayAnswersFromTheActiveGatewaysImports: a controller with
// no exchange (a standby gateway) and standby DNS on follows the imports
// another controller writes, headless endpoints included, and drops a
// name when its import goes. Turned off, it keeps what it has (a lingering
// server answers from it); on again, it drops what went meanwhile.
func TestStandbyGatewayAnswersFromTheActiveGatewaysImports(t *testing.T) {
	h := start(t)
	standby := &Controller{ClusterID: localCluster, Cache: sharedCache, Client: k8s, Log: testr.New(t).WithName("standby"),
		DNS: dns.NewStore(), Metrics: NewMetrics(nil), Resync: time.Hour}
	standby.SetStandbyDNS(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := standby.Start(ctx); err != nil {
			t.Errorf("standby controller: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	names := func(want map[string]string) error {
		for _, name := range []string{"web", "db"} {
			standby.dnsMu.Lock()
			svc, ok := standby.dnsLast[serviceKey{Namespace: h.ns, Name: name}]
			standby.dnsMu.Unlock()
			switch {
			case want[name] == "" && ok:
				return fmt.Errorf("%s still in the standby's DNS", name)
			case want[name] == "":
			case !ok:
				return fmt.Errorf("%s not in the standby's DNS", name)
			case name == "web" && (len(svc.IPs) != 1 || svc.IPs[0].String() != want[name]):
				return fmt.Errorf("web: the standby's DNS has %v, want %s", svc.IPs, want[name])
			case name == "db" && (len(svc.Endpoints) != 1 || svc.Endpoints[0].Hostname != want[name]):
				return fmt.Errorf("db: the standby's DNS has endpoints %+v, want %s", svc.Endpoints, want[name])
			}
		}
		return nil
	}

	si, db := h.importWebAndHeadlessDB()
	h.eventually("the imports in the standby's DNS", func() error { return names(map[string]string{"web": si.Spec.IPs[0], "db": "db-0"}) })

	h.setRemote("west", true, db)
	h.eventually("web gone from the standby's DNS", func() error { return names(map[string]string{"db": "db-0"}) })

	standby.SetStandbyDNS(false)
	if err := names(map[string]string{"db": "db-0"}); err != nil {
		t.Errorf("standby DNS off: %v", err)
	}
	h.setRemote("west", true)
	h.eventually("db's import gone", func() error { return gone(h.ns, "db", &mcsv1beta1.ServiceImport{}) })
	standby.SetStandbyDNS(true)
	h.eventually("db gone from the standby's DNS once it follows again", func() error { return names(nil) })
}
