package services

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/wirespan/wirespan/gateway/internal/gossip"
	"github.com/wirespan/wirespan/internal/mcs"
)

// TestImportTypeChange has the oldest export switch between ClusterSetIP
// and Headless: the derived Service goes and comes back, and the slices
// lose and regain the label that ties them to it.
func TestImportTypeChange(t *testing.T) {
	h := start(t)
	e := remoteExport("west", h.ns, "svc", time.Now().Add(-time.Hour), mport("tcp", 5000))
	e.Slices = []mcs.Slice{rslice([]discoveryv1.EndpointPort{epPort("tcp", 5000)}, rep("10.2.0.1", "svc-0", "", true, true, false))}
	sliceLabel := func(want string) func() error {
		return func() error {
			by, err := importedSlices(h.ns, "svc")
			if err != nil {
				return err
			}
			if len(by["west"]) != 1 {
				return fmt.Errorf("%d slices from west", len(by["west"]))
			}
			if have := by["west"][0].Labels[discoveryv1.LabelServiceName]; have != want {
				return fmt.Errorf("%s=%q, want %q", discoveryv1.LabelServiceName, have, want)
			}
			return nil
		}
	}
	isType := func(typ mcsv1beta1.ServiceImportType) func(*mcsv1beta1.ServiceImport) error {
		return func(si *mcsv1beta1.ServiceImport) error {
			if si.Spec.Type != typ {
				return fmt.Errorf("type %s, want %s", si.Spec.Type, typ)
			}
			return nil
		}
	}

	h.setRemote("west", true, e)
	h.waitImport(h.ns, "svc", all(isType(mcsv1beta1.ClusterSetIP), withIPs))
	h.eventually("slices for the derived Service", sliceLabel(mcs.DerivedServiceName("svc")))

	e.Type = mcsv1beta1.Headless
	h.setRemote("west", true, e)
	h.waitImport(h.ns, "svc", all(isType(mcsv1beta1.Headless), func(si *mcsv1beta1.ServiceImport) error {
		if len(si.Spec.IPs) > 0 {
			return fmt.Errorf("headless import with ips %v", si.Spec.IPs)
		}
		return nil
	}))
	h.eventually("derived Service removed", func() error {
		return gone(h.ns, mcs.DerivedServiceName("svc"), &corev1.Service{})
	})
	h.eventually("slices for no Service", sliceLabel(""))

	e.Type = mcsv1beta1.ClusterSetIP
	h.setRemote("west", true, e)
	h.waitImport(h.ns, "svc", all(isType(mcsv1beta1.ClusterSetIP), withIPs))
	h.eventually("slices for the derived Service", sliceLabel(mcs.DerivedServiceName("svc")))
}

// TestLargeRemoteExportIsSliced imports more endpoints from one cluster
// than one imported EndpointSlice holds.
func TestLargeRemoteExportIsSliced(t *testing.T) {
	h := start(t)
	const n = 2*mcs.MaxEndpointsPerSlice + 50
	e := remoteExport("west", h.ns, "big", time.Now().Add(-time.Hour), mport("http", 80))
	var eps []mcs.Endpoint
	for i := range n {
		eps = append(eps, rep(fmt.Sprintf("10.2.%d.%d", i/250, 1+i%250), "", "", true, true, false))
	}
	e.Slices = []mcs.Slice{rslice([]discoveryv1.EndpointPort{epPort("http", 80)}, eps...)}
	h.setRemote("west", true, e)
	h.eventually("slices of west", func() error {
		by, err := importedSlices(h.ns, "big")
		if err != nil {
			return err
		}
		total, seen := 0, map[string]bool{}
		for _, s := range by["west"] {
			if len(s.Endpoints) > mcs.MaxEndpointsPerSlice {
				return fmt.Errorf("slice %s has %d endpoints", s.Name, len(s.Endpoints))
			}
			for _, ep := range s.Endpoints {
				seen[ep.Addresses[0]] = true
			}
			total += len(s.Endpoints)
		}
		if len(by["west"]) != 3 || total != n || len(seen) != n {
			return fmt.Errorf("%d slices with %d endpoints (%d distinct), want 3 with %d", len(by["west"]), total, len(seen), n)
		}
		return nil
	})
}

// TestUnusableRecordsIgnored has a remote cluster send a record that does
// not decode, one that names another cluster, and ones the API server
// would refuse (too many ports, an address that is no endpoint's): each is
// refused alone and counted by reason, without a failed reconcile, and the
// cluster's good record is imported.
func TestUnusableRecordsIgnored(t *testing.T) {
	h := start(t)
	created := time.Now().Add(-time.Hour)
	good := remoteExport("west", h.ns, "good", created, mport("http", 80))
	forged := remoteExport("north", h.ns, "forged", created, mport("http", 80))
	ports := remoteExport("west", h.ns, "ports", created)
	for i := range 101 {
		ports.Ports = append(ports.Ports, mport(fmt.Sprintf("p%d", i), int32(1000+i)))
	}
	linkLocal := remoteExport("west", h.ns, "link-local", created, mport("http", 80))
	linkLocal.Slices = []mcs.Slice{rslice(nil, rep("169.254.169.254", "", "", true, true, false))}
	records := map[string]any{"good": good, "forged": forged, "garbage": "not an export", "ports": ports, "link-local": linkLocal}
	ce := gossip.ClusterExports{Exports: map[gossip.ExportKey]gossip.RemoteExport{}, Complete: true, Generation: 1}
	for name, r := range records {
		rec, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		ce.Exports[gossip.ExportKey{Namespace: h.ns, Name: name}] = gossip.RemoteExport{Version: 1, Record: rec}
	}
	h.exch.mu.Lock()
	h.exch.remote["west"] = ce
	h.exch.mu.Unlock()
	h.ctrl.Wake()

	h.waitImport(h.ns, "good", all(importClusters("west"), withIPs))
	h.settle()
	for _, name := range []string{"forged", "garbage", "ports", "link-local"} {
		if err := gone(h.ns, name, &mcsv1beta1.ServiceImport{}); err != nil {
			t.Error(err)
		}
	}
	// Counted once each: a record is decoded again only at a new version.
	for reason, want := range map[string]float64{"name": 1, "json": 1, "ports": 1, "endpoints": 1} {
		if v := counterValue(t, h.ctrl.Metrics.badRecords.WithLabelValues(reason)); v != want {
			t.Errorf("records refused for %s: %v, want %v", reason, v, want)
		}
	}
	if n := counterValue(t, h.ctrl.Metrics.reconcileErrors); n != 0 {
		t.Errorf("%v reconciles failed", n)
	}
}

// TestImportsPerClusterCapped: a cluster that exports more services than
// MaxImportsPerCluster has only the first ones (by namespace and name)
// imported; the rest are counted once, and no reconcile fails.
func TestImportsPerClusterCapped(t *testing.T) {
	h := start(t, func(c *Controller) { c.MaxImportsPerCluster = 3 })
	var exports []mcs.Export
	for _, name := range []string{"e", "d", "c", "b", "a"} {
		exports = append(exports, remoteExport("west", h.ns, name, time.Now().Add(-time.Hour), mport("http", 80)))
	}
	h.setRemote("west", true, exports...)
	for _, name := range []string{"a", "b", "c"} {
		h.waitImport(h.ns, name, withIPs)
	}
	h.settle()
	for _, name := range []string{"d", "e"} {
		if err := gone(h.ns, name, &mcsv1beta1.ServiceImport{}); err != nil {
			t.Error("over the cap:", err)
		}
	}
	h.setRemote("west", true, exports...) // new versions, the same set
	h.settle()
	if v := counterValue(t, h.ctrl.Metrics.badRecords.WithLabelValues("over-cap")); v != 2 {
		t.Errorf("over-cap exports counted %v times, want 2", v)
	}
}

// TestDetachedControllerWritesNothing detaches the exchange, as when this
// gateway stops being the active one: changes wait until it is back.
func TestDetachedControllerWritesNothing(t *testing.T) {
	h := start(t)
	h.setRemote("west", true, remoteExport("west", h.ns, "api", time.Now().Add(-time.Hour), mport("http", 80)))
	h.waitImport(h.ns, "api", withIPs)
	h.settle()

	h.detach()
	h.takeWrites()
	passes := h.ctrl.refreshCount()
	h.update(drop("west"))
	// Nothing may happen; a short wait is the only way to see nothing.
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		h.ctrl.Wake()
	}
	if w, after := h.takeWrites(), h.ctrl.refreshCount(); len(w) > 0 || after > passes {
		t.Errorf("detached, the controller looked at gossip %d times and wrote %v", after-passes, w)
	}
	if err := get(h.ns, "api", &mcsv1beta1.ServiceImport{}); err != nil {
		t.Errorf("detached, the import went: %v", err)
	}

	h.ctrl.SetExchange(h.exch)
	h.eventually("import removed", func() error { return gone(h.ns, "api", &mcsv1beta1.ServiceImport{}) })
}

// TestDualStackExportImportedInSingleStackCluster imports a Service that a
// dual-stack cluster exports (PreferDualStack, IPv4 first) into this
// single-stack IPv4 cluster: the derived Service gets the one family.
func TestDualStackExportImportedInSingleStackCluster(t *testing.T) {
	h := start(t)
	e := remoteExport("west", h.ns, "dual", time.Now().Add(-time.Hour), mport("http", 80))
	e.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	h.setRemote("west", true, e)
	si := h.waitImport(h.ns, "dual", withIPs)
	if want := []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}; !slices.Equal(si.Spec.IPFamilies, want) {
		t.Errorf("ServiceImport ipFamilies %v, want %v", si.Spec.IPFamilies, want)
	}
	svc, err := derived(h.ns, "dual")
	if err != nil {
		t.Fatal(err)
	}
	if p := svc.Spec.IPFamilyPolicy; p == nil || *p != corev1.IPFamilyPolicyPreferDualStack ||
		!slices.Equal(svc.Spec.IPFamilies, []corev1.IPFamily{corev1.IPv4Protocol}) {
		t.Errorf("derived Service ipFamilyPolicy %v ipFamilies %v, want PreferDualStack [IPv4]", p, svc.Spec.IPFamilies)
	}
}

// TestImportsTakeTheClustersFamilies imports into this IPv4-only cluster
// (the envtest apiserver's Service range is IPv4) a dual-stack Service
// exported IPv6 first, which gets an IPv4 clusterset IP, and an IPv6-only
// one, which can have none: it is imported without a derived Service, and
// no sync fails over it.
func TestImportsTakeTheClustersFamilies(t *testing.T) {
	h := start(t)
	h.ctrl.SetServiceFamilies([]corev1.IPFamily{corev1.IPv4Protocol})
	created := time.Now().Add(-time.Hour)
	dual := remoteExport("west", h.ns, "dual", created, mport("http", 80))
	dual.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
	only6 := remoteExport("west", h.ns, "only6", created, mport("http", 80))
	only6.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
	h.setRemote("west", true, dual, only6)

	si := h.waitImport(h.ns, "dual", withIPs)
	if want := []corev1.IPFamily{corev1.IPv4Protocol}; !slices.Equal(si.Spec.IPFamilies, want) {
		t.Errorf("ServiceImport ipFamilies %v, want %v", si.Spec.IPFamilies, want)
	}
	if len(si.Spec.IPs) != 1 || !netip.MustParseAddr(si.Spec.IPs[0]).Is4() {
		t.Errorf("ServiceImport ips %v, want one IPv4 address", si.Spec.IPs)
	}
	h.waitImport(h.ns, "only6", importClusters("west"))
	h.settle()
	if err := gone(h.ns, mcs.DerivedServiceName("only6"), &corev1.Service{}); err != nil {
		t.Error("IPv6-only import:", err)
	}
	if si := h.waitImport(h.ns, "only6", importClusters("west")); len(si.Spec.IPs) != 0 {
		t.Errorf("IPv6-only import has ips %v", si.Spec.IPs)
	}
	if n := counterValue(t, h.ctrl.Metrics.reconcileErrors); n != 0 {
		t.Errorf("%v reconciles failed", n)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestTakeoverKeepsUnheardClusters re-attaches an exchange (this gateway
// becomes active again, as in a failover) that has not heard from a
// cluster yet: the imports that cluster fed stay as they are for the
// warm-up, and are updated as soon as gossip brings its records.
func TestTakeoverKeepsUnheardClusters(t *testing.T) {
	h := start(t, func(c *Controller) { c.Warmup = time.Hour })
	h.setRemote("west", true, remoteExport("west", h.ns, "api", time.Now().Add(-time.Hour), mport("http", 80)))
	h.waitImport(h.ns, "api", withIPs)
	h.settle()

	h.detach()
	h.update(drop("west")) // the new gateway's gossip has not heard from west
	h.ctrl.SetExchange(h.exch)
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err := get(h.ns, "api", &mcsv1beta1.ServiceImport{}); err != nil {
			t.Fatalf("west's import went before gossip heard from it: %v", err)
		}
	}
	// West speaks: its records are imported again, a port more.
	h.setRemote("west", true, remoteExport("west", h.ns, "api", time.Now().Add(-time.Hour), mport("http", 80), mport("https", 443)))
	h.eventually("the import follows west again", func() error {
		var si mcsv1beta1.ServiceImport
		if err := get(h.ns, "api", &si); err != nil {
			return err
		}
		if len(si.Spec.Ports) != 2 {
			return fmt.Errorf("ports %v", si.Spec.Ports)
		}
		return nil
	})
}

// TestEndpointsOutsideAcceptedRangesLeftOut imports a record whose
// endpoints include addresses outside the ranges accepted from its cluster
// (this cluster's own pods, another range): those endpoints are left out
// and counted, the others imported, and a range accepted later brings
// them in.
func TestEndpointsOutsideAcceptedRangesLeftOut(t *testing.T) {
	h := start(t)
	h.ctrl.SetClusterRanges(map[string][]netip.Prefix{"west": {netip.MustParsePrefix("10.2.0.0/16")}})
	west := remoteExport("west", h.ns, "api", time.Now().Add(-time.Hour), mport("http", 80))
	west.Slices = []mcs.Slice{rslice([]discoveryv1.EndpointPort{epPort("http", 8080)},
		rep("10.2.0.10", "", "", true, true, false), rep("10.1.0.10", "", "", true, true, false), rep("10.9.0.10", "", "", true, true, false))}
	h.setRemote("west", true, west)
	addresses := func() ([]string, error) {
		byCluster, err := importedSlices(h.ns, "api")
		if err != nil {
			return nil, err
		}
		var out []string
		for _, s := range byCluster["west"] {
			for _, ep := range s.Endpoints {
				out = append(out, ep.Addresses...)
			}
		}
		slices.Sort(out)
		return out, nil
	}
	h.eventually("only the endpoint inside west's ranges imported", func() error {
		got, err := addresses()
		if err != nil {
			return err
		}
		if !slices.Equal(got, []string{"10.2.0.10"}) {
			return fmt.Errorf("imported %v", got)
		}
		return nil
	})
	if v := counterValue(t, h.ctrl.Metrics.refusedEndpoints.WithLabelValues("west")); v < 2 {
		t.Errorf("refused endpoints counted %v, want at least 2", v)
	}
	// West is accepted 10.9/16 too: that endpoint comes in.
	h.ctrl.SetClusterRanges(map[string][]netip.Prefix{"west": {netip.MustParsePrefix("10.2.0.0/16"), netip.MustParsePrefix("10.9.0.0/16")}})
	h.eventually("the newly accepted range's endpoint imported", func() error {
		got, err := addresses()
		if err != nil {
			return err
		}
		if !slices.Equal(got, []string{"10.2.0.10", "10.9.0.10"}) {
			return fmt.Errorf("imported %v", got)
		}
		return nil
	})
}

// detach takes the exchange away, as when this gateway stops being the
// active one, and waits until the controller has stopped (a reconcile may
// have been under way when the exchange went).
func (h *harness) detach() {
	h.t.Helper()
	h.ctrl.SetExchange(nil)
	h.eventually("the controller detached", func() error {
		if !h.ctrl.idle() || h.ctrl.activeExchange() != nil {
			return fmt.Errorf("still at work")
		}
		return nil
	})
}

// TestExportNamespacesBoundWhatAClusterMayExport: west's ClusterPeer lists
// only one namespace it may export from. Its export there is imported;
// its export of the same kind from another namespace (where this cluster
// has a Service of that name: namespace sameness would merge them) is
// not, and is counted once however often it is reconciled; north, which
// lists none, exports from anywhere. Lifting the list brings it in.
func TestExportNamespacesBoundWhatAClusterMayExport(t *testing.T) {
	h := start(t)
	shop := h.namespace("shop")
	h.ctrl.SetExportNamespaces(map[string][]string{"west": {shop}})
	created := time.Now().Add(-time.Hour)
	h.update(set("west", true, remoteExport("west", shop, "cart", created, mport("http", 80)),
		remoteExport("west", h.ns, "db", created, mport("pg", 5432))),
		set("north", true, remoteExport("north", h.ns, "cache", created, mport("redis", 6379))))
	h.waitImport(shop, "cart", withIPs)
	h.waitImport(h.ns, "cache", withIPs)
	refused := func() float64 { return counterValue(t, h.ctrl.Metrics.badRecords.WithLabelValues("namespace")) }
	h.eventually("west's db refused for its namespace", func() error {
		if v := refused(); v != 1 {
			return fmt.Errorf("counted %v", v)
		}
		return nil
	})
	if err := gone(h.ns, "db", &mcsv1beta1.ServiceImport{}); err != nil {
		t.Errorf("west exported db from %s, outside its exportNamespaces: %v", h.ns, err)
	}
	h.ctrl.requeueAll()
	h.settle()
	if v := refused(); v != 1 {
		t.Errorf("reconciled again: counted %v, want 1 still", v)
	}

	h.ctrl.SetExportNamespaces(nil)
	h.waitImport(h.ns, "db", withIPs)
}

// TestBackdatedExportDoesNotWinTheOldestRule: west exports web, an hour
// old; north then exports it too, headless, claiming to be a year old. The
// import keeps west's type: north's export counts as created when this
// cluster first saw it, which the ServiceImport records (so a restart or a
// failover keeps it). Exports that arrive with the import, before which
// nothing was seen, count as created when they say.
func TestBackdatedExportDoesNotWinTheOldestRule(t *testing.T) {
	h := start(t)
	hourAgo, yearAgo := time.Now().Add(-time.Hour), time.Now().Add(-365*24*time.Hour)
	west := remoteExport("west", h.ns, "web", hourAgo, mport("http", 80))
	h.setRemote("west", true, west)
	h.waitImport(h.ns, "web", withIPs)

	north := remoteExport("north", h.ns, "web", yearAgo, mport("http", 80))
	north.Type = mcsv1beta1.Headless
	before := time.Now().UTC().Truncate(time.Second)
	h.setRemote("north", true, north)
	si := h.waitImport(h.ns, "web", func(si *mcsv1beta1.ServiceImport) error {
		if !slices.Contains(si.Status.Clusters, mcsv1beta1.ClusterStatus{Cluster: "north"}) {
			return fmt.Errorf("clusters %v", si.Status.Clusters)
		}
		return nil
	})
	if si.Spec.Type != mcsv1beta1.ClusterSetIP {
		t.Errorf("the backdated headless export won: the import is %s", si.Spec.Type)
	}
	seen, recorded := firstSeen(si)
	switch {
	case !recorded:
		t.Fatalf("no %s annotation: %v", FirstSeenAnnotation, si.Annotations)
	case !seen["west"].Equal(west.Created):
		t.Errorf("west first seen %v, want its creation %v (it came with the import)", seen["west"], west.Created)
	case seen["north"].Before(before):
		t.Errorf("north first seen %v, want no earlier than %v (when it arrived)", seen["north"], before)
	}

	// Both arrive with a new import: nothing was seen before them, and
	// the older claim wins.
	db := remoteExport("west", h.ns, "db", hourAgo, mport("pg", 5432))
	olderDB := remoteExport("north", h.ns, "db", yearAgo, mport("pg", 5432))
	olderDB.Type = mcsv1beta1.Headless
	h.update(set("west", true, west, db), set("north", true, north, olderDB))
	h.waitImport(h.ns, "db", func(si *mcsv1beta1.ServiceImport) error {
		if si.Spec.Type != mcsv1beta1.Headless {
			return fmt.Errorf("type %s, want north's Headless", si.Spec.Type)
		}
		return nil
	})
}

// The exporting cluster's own import is held to first sightings too: on
// main its ServiceImport carried no first-seen record while only its own
// export made it, so a peer's backdated headless export, arriving later,
// was taken at its word and turned the exporter's own import headless (its
// VIP deleted), as the hostile-exports e2e test found.
func TestBackdatedExportDoesNotWinOverOurOwnExport(t *testing.T) {
	h := start(t)
	h.create(newService(h.ns, "web", tcp("http", 80, 8080)))
	h.create(newExport(h.ns, "web"))
	h.waitImport(h.ns, "web", withIPs)
	// Within the second of our own export's creation (first sightings
	// count in seconds) the two tie, and a tie goes to the claim that
	// was not pushed back (internal/mcs).
	north := remoteExport("north", h.ns, "web", time.Now().Add(-365*24*time.Hour), mport("http", 80))
	north.Type = mcsv1beta1.Headless
	h.setRemote("north", true, north)
	si := h.waitImport(h.ns, "web", importClusters(localCluster, "north"))
	if si.Spec.Type != mcsv1beta1.ClusterSetIP || len(si.Spec.IPs) == 0 {
		t.Errorf("a backdated headless export won over our own: the import is %s with IPs %v", si.Spec.Type, si.Spec.IPs)
	}
}
