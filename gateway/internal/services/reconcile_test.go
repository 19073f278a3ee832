package services

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/wirespan/wirespan/internal/mcs"
)

// Tests of reconciling one service at a time: what a change touches, the
// races of a controller reading its own writes from a cache, and silent
// clusters.

// creates counts the creates among writes, by "kind ns/name".
func creates(writes []string) map[string]int {
	out := map[string]int{}
	for _, w := range writes {
		if rest, ok := strings.CutPrefix(w, "create "); ok {
			out[rest]++
		}
	}
	return out
}

// noDuplicateCreates fails the test for any object created more than once.
func noDuplicateCreates(t *testing.T, writes []string) {
	t.Helper()
	for obj, n := range creates(writes) {
		if n > 1 {
			t.Errorf("%s created %d times", obj, n)
		}
	}
}

// withEndpoints returns e with one slice of n endpoints from base.
func withEndpoints(e mcs.Export, base string, n int) mcs.Export {
	var eps []mcs.Endpoint
	for i := range n {
		eps = append(eps, rep(fmt.Sprintf("%s.%d", base, i+1), "", "", true, true, false))
	}
	e.Slices = []mcs.Slice{rslice([]discoveryv1.EndpointPort{epPort("http", 8080)}, eps...)}
	return e
}

// TestChangesWhileAnImportIsCreated changes a service's remote record and
// its local Service again and again while the creation of its
// ServiceImport is held: the reconciles that follow read the controller's
// own writes, not a cache that lags them. Each object is created once, no
// reconcile fails, and the import ends as the last record says.
func TestChangesWhileAnImportIsCreated(t *testing.T) {
	h := start(t)
	release := h.hold("api")
	created := time.Now().Add(-time.Hour)
	west := withEndpoints(remoteExport("west", h.ns, "api", created, mport("http", 80)), "10.2.0", 1)
	h.setRemote("west", true, west)
	h.eventually("derived Service created", func() error { _, err := derived(h.ns, "api"); return err })

	for i := range 6 {
		west.Ports = append(west.Ports, mport(fmt.Sprintf("p%d", i), int32(9000+i)))
		west = withEndpoints(west, "10.2.0", i+2)
		h.setRemote("west", true, west)
		// Our own Service of that name changes too (it is not exported).
		if i == 0 {
			h.create(newService(h.ns, "api", tcp("http", 80, 8080)))
		}
		time.Sleep(20 * time.Millisecond)
	}
	release()
	h.waitImport(h.ns, "api", all(withIPs, importPorts(80, 9000, 9001, 9002, 9003, 9004, 9005)))
	h.eventually("the last endpoints", func() error {
		by, err := importedSlices(h.ns, "api")
		if err != nil {
			return err
		}
		if len(by["west"]) != 1 || len(by["west"][0].Endpoints) != 7 {
			return fmt.Errorf("west's slices %d, want 1 with 7 endpoints", len(by["west"]))
		}
		return nil
	})
	h.settle()
	noDuplicateCreates(t, h.takeWrites())
	if n := counterValue(t, h.ctrl.Metrics.reconcileErrors); n != 0 {
		t.Errorf("%v reconciles failed", n)
	}
	si := h.waitImport(h.ns, "api", nil)
	if c := meta.FindStatusCondition(si.Status.Conditions, string(mcsv1beta1.ServiceImportConditionReady)); c == nil ||
		c.Status != metav1.ConditionTrue || c.ObservedGeneration != si.Generation {
		t.Errorf("Ready condition %+v, want True for generation %d", c, si.Generation)
	}
}

// TestNoDuplicateCreatesUnderLoad imports many services at once and
// changes each several times while the first writes are under way, from
// several goroutines: no object is created twice, no reconcile fails, and
// every import ends with its last endpoints.
func TestNoDuplicateCreatesUnderLoad(t *testing.T) {
	h := start(t)
	const services, rounds = 40, 5
	created := time.Now().Add(-time.Hour)
	var mu sync.Mutex
	exports := map[string]mcs.Export{}
	publish := func() {
		mu.Lock()
		defer mu.Unlock()
		h.setRemote("west", true, slices.Collect(maps.Values(exports))...)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for r := range rounds {
				for i := w; i < services; i += 4 {
					name := fmt.Sprintf("svc-%d", i)
					mu.Lock()
					exports[name] = withEndpoints(remoteExport("west", h.ns, name, created, mport("http", 80)), "10.2.1", r+1)
					mu.Unlock()
				}
				publish()
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	for i := range services {
		name := fmt.Sprintf("svc-%d", i)
		h.waitImport(h.ns, name, withIPs)
		h.eventually("endpoints of "+name, func() error {
			by, err := importedSlices(h.ns, name)
			if err != nil {
				return err
			}
			if len(by["west"]) != 1 || len(by["west"][0].Endpoints) != rounds {
				return fmt.Errorf("%s: %d slices from west, want 1 with %d endpoints", name, len(by["west"]), rounds)
			}
			return nil
		})
	}
	h.settle()
	writes := h.takeWrites()
	noDuplicateCreates(t, writes)
	if n := len(creates(writes)); n != 3*services {
		t.Errorf("%d objects created, want %d (a derived Service, a ServiceImport and a slice each)", n, 3*services)
	}
	if n := counterValue(t, h.ctrl.Metrics.reconcileErrors); n != 0 {
		t.Errorf("%v reconciles failed", n)
	}
	// Every write was seen by the informers, and so forgotten.
	h.eventually("no write left remembered", func() error {
		if n := h.ctrl.writes.size(); n > 0 {
			return fmt.Errorf("%d writes still remembered", n)
		}
		return nil
	})
}

// TestOneChangeTouchesOneService: with many services exported and
// imported, a change of one local Service and then of one remote record
// reconcile that service alone.
func TestOneChangeTouchesOneService(t *testing.T) {
	h := start(t)
	created := time.Now().Add(-time.Hour)
	var remote []mcs.Export
	for i := range 10 {
		local, imported := fmt.Sprintf("local-%d", i), fmt.Sprintf("remote-%d", i)
		h.create(newService(h.ns, local, tcp("http", 80, 8080)))
		h.create(newExport(h.ns, local))
		remote = append(remote, remoteExport("west", h.ns, imported, created, mport("http", 80)))
	}
	h.setRemote("west", true, remote...)
	for i := range 10 {
		h.waitConditions(h.ns, fmt.Sprintf("local-%d", i), exportedOK...)
		h.waitImport(h.ns, fmt.Sprintf("remote-%d", i), withIPs)
	}
	h.settle()
	h.takeTouched()
	h.takeWrites()

	var svc corev1.Service
	if err := get(h.ns, "local-3", &svc); err != nil {
		t.Fatal(err)
	}
	svc.Spec.Ports = append(svc.Spec.Ports, tcp("admin", 9000, 9000))
	if err := k8s.Update(context.Background(), &svc); err != nil {
		t.Fatal(err)
	}
	h.waitImport(h.ns, "local-3", importPorts(80, 9000))
	h.settle()
	if touched := h.takeTouched(); !slices.Equal(slices.Sorted(maps.Keys(touched)), []string{h.ns + "/local-3"}) {
		t.Errorf("a change of local-3 reconciled %v", touched)
	}

	h.takeWrites()
	remote[7].Ports = append(remote[7].Ports, mport("admin", 9000))
	h.updateRecord("west", remote[7])
	h.waitImport(h.ns, "remote-7", importPorts(80, 9000))
	h.settle()
	if touched := h.takeTouched(); !slices.Equal(slices.Sorted(maps.Keys(touched)), []string{h.ns + "/remote-7"}) {
		t.Errorf("a change of remote-7's record reconciled %v", touched)
	}
	for _, w := range h.takeWrites() {
		if !strings.Contains(w, "remote-7") {
			t.Errorf("a change of remote-7 wrote %s", w)
		}
	}
}

// TestUnchangedGossipCostsNothing: the periodic pass over gossip, with
// nothing changed, queues no service.
func TestUnchangedGossipCostsNothing(t *testing.T) {
	h := start(t)
	h.setRemote("west", true, remoteExport("west", h.ns, "api", time.Now().Add(-time.Hour), mport("http", 80)))
	h.waitImport(h.ns, "api", withIPs)
	h.settle()
	h.takeTouched()
	for range 5 {
		h.settle() // each wakes the loop for a pass over gossip
	}
	if touched := h.takeTouched(); len(touched) > 0 {
		t.Errorf("passes over unchanged gossip reconciled %v", touched)
	}
}

// TestSilentClusterKeepsItsImport: a cluster silent past the export TTL
// loses its endpoints here, but its import and clusterset IP stay, and
// DNS keeps answering; when it comes back its endpoints return, under the
// same IP. Silent past the import grace, the import goes.
func TestSilentClusterKeepsItsImport(t *testing.T) {
	const grace = 3 * time.Second
	h := start(t, func(c *Controller) { c.ImportGrace = grace })
	resolve := h.serveDNS()
	west := withEndpoints(remoteExport("west", h.ns, "api", time.Now().Add(-time.Hour), mport("http", 80)), "10.2.0", 2)
	h.setRemote("west", true, west)
	si := h.waitImport(h.ns, "api", withIPs)
	ips := si.Spec.IPs
	h.eventually("west's slices", func() error { return sliceClusters(h.ns, "api", "west") })
	name := "api." + h.ns + ".svc.clusterset.local."
	sameIPs := func(si *mcsv1beta1.ServiceImport) error {
		if !slices.Equal(si.Spec.IPs, ips) {
			return fmt.Errorf("ips %v, want %v", si.Spec.IPs, ips)
		}
		return nil
	}

	h.silence("west", time.Now())
	h.eventually("west's endpoints withdrawn", func() error { return sliceClusters(h.ns, "api") })
	si = h.waitImport(h.ns, "api", all(sameIPs, importClusters("west"), func(si *mcsv1beta1.ServiceImport) error {
		c := meta.FindStatusCondition(si.Status.Conditions, string(mcsv1beta1.ServiceImportConditionReady))
		if c == nil || !strings.Contains(c.Message, "Silent") {
			return fmt.Errorf("Ready condition %+v does not say west is silent", c)
		}
		return nil
	}))
	if si.Status.EndpointSliceObjects != mcsv1beta1.EndpointSliceObjectsAbsent {
		t.Errorf("endpointSliceObjects %q with no slices", si.Status.EndpointSliceObjects)
	}
	if got, err := resolve(name); err != nil || !slices.Equal(got, ips) {
		t.Errorf("DNS for the silent cluster's import: %v %v, want %v", got, err, ips)
	}

	h.silence("west", time.Time{})
	h.eventually("west's endpoints back", func() error { return sliceClusters(h.ns, "api", "west") })
	h.waitImport(h.ns, "api", sameIPs)

	// Silent since longer than the grace: the import goes.
	h.silence("west", time.Now().Add(-grace+time.Second))
	h.eventually("import removed after the grace", func() error {
		return gone(h.ns, "api", &mcsv1beta1.ServiceImport{})
	})
	h.eventually("derived Service removed", func() error { return gone(h.ns, mcs.DerivedServiceName("api"), &corev1.Service{}) })
	h.eventually("DNS name removed", func() error {
		if got, err := resolve(name); err == nil {
			return fmt.Errorf("still resolves to %v", got)
		}
		return nil
	})
}

// TestSilentClusterWithdrawingKeepsNothing: a silent cluster's import
// stays only while it still exports; an export it withdrew before going
// silent goes.
func TestSilentClusterWithdrawingKeepsNothing(t *testing.T) {
	h := start(t)
	created := time.Now().Add(-time.Hour)
	h.setRemote("west", true, remoteExport("west", h.ns, "api", created, mport("http", 80)),
		remoteExport("west", h.ns, "old", created, mport("http", 80)))
	h.waitImport(h.ns, "old", withIPs)
	h.setRemote("west", true, remoteExport("west", h.ns, "api", created, mport("http", 80)))
	h.silence("west", time.Now())
	h.eventually("withdrawn import removed", func() error { return gone(h.ns, "old", &mcsv1beta1.ServiceImport{}) })
	h.settle()
	h.waitImport(h.ns, "api", withIPs)
}
