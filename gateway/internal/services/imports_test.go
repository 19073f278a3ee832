package services

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/internal/mcs"
)

// Tests of the import half: ServiceImport, derived Service, EndpointSlices.

// withIPs checks that a ClusterSetIP import has the clusterset IPs of its
// derived Service.
func withIPs(si *mcsv1beta1.ServiceImport) error {
	svc, err := derived(si.Namespace, si.Name)
	if err != nil {
		return err
	}
	if len(si.Spec.IPs) == 0 || !slices.Equal(si.Spec.IPs, svc.Spec.ClusterIPs) {
		return fmt.Errorf("spec.ips %v, derived Service's clusterIPs %v", si.Spec.IPs, svc.Spec.ClusterIPs)
	}
	return nil
}

// all combines checks of a ServiceImport.
func all(checks ...func(*mcsv1beta1.ServiceImport) error) func(*mcsv1beta1.ServiceImport) error {
	return func(si *mcsv1beta1.ServiceImport) error {
		for _, c := range checks {
			if err := c(si); err != nil {
				return err
			}
		}
		return nil
	}
}

func TestImportLifecycle(t *testing.T) {
	h := start(t)
	west := remoteExport("west", h.ns, "api", time.Now().Add(-time.Hour), mport("http", 80))
	west.Slices = []mcs.Slice{rslice([]discoveryv1.EndpointPort{epPort("http", 8080)},
		rep("10.2.0.1", "", "", true, true, false))}
	h.setRemote("west", true, west)

	si := h.waitImport(h.ns, "api", all(importClusters("west"), withIPs))
	if si.Labels[v1alpha1.LabelManagedBy] != v1alpha1.ManagedByValue || si.Spec.Type != mcsv1beta1.ClusterSetIP ||
		si.Status.EndpointSliceObjects != mcsv1beta1.EndpointSliceObjectsPresent {
		t.Errorf("ServiceImport %+v %+v %+v", si.Labels, si.Spec, si.Status)
	}
	ips := si.Spec.IPs
	svc, err := derived(h.ns, "api")
	if err != nil {
		t.Fatal(err)
	}
	uid := svc.UID
	stable := func(si *mcsv1beta1.ServiceImport) error {
		if !slices.Equal(si.Spec.IPs, ips) {
			return fmt.Errorf("spec.ips changed from %v to %v", ips, si.Spec.IPs)
		}
		return nil
	}

	// We export the Service too: we are listed, the IPs stay.
	h.create(newService(h.ns, "api", tcp("http", 80, 8080)))
	h.create(newSlice(h.ns, "api", "api-1", []discoveryv1.EndpointPort{epPort("http", 8080)},
		endpoint("10.1.0.1", "", "", true, true, false)))
	h.create(newExport(h.ns, "api"))
	h.waitConditions(h.ns, "api", exportedOK...)
	h.waitImport(h.ns, "api", all(importClusters(localCluster, "west"), withIPs, stable))
	h.eventually("slices from both clusters", func() error { return sliceClusters(h.ns, "api", localCluster, "west") })

	// A changed remote record: the slices follow, the IPs stay.
	west.Slices[0].Endpoints = append(west.Slices[0].Endpoints, rep("10.2.0.2", "", "", true, true, false))
	h.setRemote("west", true, west)
	h.eventually("west's new endpoint", func() error {
		by, err := importedSlices(h.ns, "api")
		if err != nil {
			return err
		}
		if len(by["west"]) != 1 || len(by["west"][0].Endpoints) != 2 {
			return fmt.Errorf("west's slices %+v", by["west"])
		}
		return nil
	})
	h.settle()
	h.waitImport(h.ns, "api", all(importClusters(localCluster, "west"), withIPs, stable))
	if svc, err := derived(h.ns, "api"); err != nil || svc.UID != uid {
		t.Errorf("derived Service replaced (err %v)", err)
	}

	// The last export gone, everything imported goes; our Service stays.
	if err := k8s.Delete(context.Background(), newExport(h.ns, "api")); err != nil {
		t.Fatal(err)
	}
	h.waitImport(h.ns, "api", importClusters("west"))
	h.setRemote("west", true)
	h.eventually("import removed", func() error {
		if err := gone(h.ns, "api", &mcsv1beta1.ServiceImport{}); err != nil {
			return err
		}
		if err := gone(h.ns, mcs.DerivedServiceName("api"), &corev1.Service{}); err != nil {
			return err
		}
		return sliceClusters(h.ns, "api")
	})
	if err := get(h.ns, "api", &corev1.Service{}); err != nil {
		t.Errorf("the exported Service itself: %v", err)
	}
}

func TestImportWaitsForItsNamespace(t *testing.T) {
	h := start(t)
	later := h.namespaceName("later")
	created := time.Now().Add(-time.Hour)
	h.setRemote("west", true,
		remoteExport("west", h.ns, "api", created, mport("http", 80)),
		remoteExport("west", later, "api", created, mport("http", 80)))
	h.waitImport(h.ns, "api", withIPs)
	h.settle()
	if err := gone(later, "api", &mcsv1beta1.ServiceImport{}); err != nil {
		t.Fatal(err)
	}
	if n := h.store.Len(); n != 1 {
		t.Errorf("the DNS store holds %d services, want 1", n)
	}

	h.createNamespace(later)
	h.waitImport(later, "api", all(importClusters("west"), withIPs))
	h.eventually("DNS has both", func() error {
		if n := h.store.Len(); n != 2 {
			return fmt.Errorf("the DNS store holds %d services, want 2", n)
		}
		return nil
	})
}

// A new ClusterSetIP import costs four writes, and its ServiceImport is
// created with its IPs: the derived Service is created first, and the
// ServiceImport is never updated to add them.
func TestNewImportTakesFourWrites(t *testing.T) {
	h := start(t)
	h.settle()
	h.takeWrites()
	west := remoteExport("west", h.ns, "api", time.Now().Add(-time.Hour), mport("http", 80))
	west.Slices = []mcs.Slice{rslice([]discoveryv1.EndpointPort{epPort("http", 8080)},
		rep("10.2.0.1", "", "", true, true, false))}
	h.setRemote("west", true, west)
	h.waitImport(h.ns, "api", all(importClusters("west"), withIPs))
	h.eventually("west's slice", func() error { return sliceClusters(h.ns, "api", "west") })
	h.settle()

	var got []string
	for _, w := range h.takeWrites() {
		f := strings.Fields(w)
		got = append(got, strings.Join(f[:len(f)-1], " ")) // without the object's name
	}
	// The status comes last: it says whether the slices are there.
	want := []string{
		"create *v1.Service", "create *v1beta1.ServiceImport",
		"create *v1.EndpointSlice", "update status *v1beta1.ServiceImport",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("writes of a new import (-want +have):\n%s", d)
	}

	// A change is written from the cached ServiceImport, which holds no
	// managed fields (the cache drops them, as the gateway's does): the
	// server keeps its own, for the object and for its status.
	west.Ports = append(west.Ports, mport("admin", 9000))
	h.setRemote("west", true, west)
	si := h.waitImport(h.ns, "api", importPorts(80, 9000))
	if w := h.takeWrites(); !slices.ContainsFunc(w, func(s string) bool { return strings.HasPrefix(s, "update *v1beta1.ServiceImport") }) {
		t.Fatalf("the new port was not written by an update of the ServiceImport: %q", w)
	}
	var spec, status bool
	for _, m := range si.ManagedFields {
		spec = spec || m.Subresource == ""
		status = status || m.Subresource == "status"
	}
	if !spec || !status {
		t.Errorf("ServiceImport's managed fields %+v, want entries for the object and its status", si.ManagedFields)
	}
}

// A derived Service whose ServiceImport is gone, and whose service nobody
// exports, is removed; a Service that only carries Wirespan's labels is
// not.
func TestOrphanedDerivedServiceIsRemoved(t *testing.T) {
	h := start(t)
	labels := map[string]string{mcsv1beta1.LabelServiceName: "old", v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue}
	orphan := newService(h.ns, mcs.DerivedServiceName("old"), tcp("http", 80, 80))
	orphan.Spec.Selector, orphan.Labels = nil, labels
	lookalike := newService(h.ns, "old-lookalike", tcp("http", 80, 80))
	lookalike.Spec.Selector, lookalike.Labels = nil, labels
	h.create(orphan)
	h.create(lookalike)
	h.eventually("orphan removed", func() error { return gone(h.ns, orphan.Name, &corev1.Service{}) })
	h.settle()
	if err := get(h.ns, lookalike.Name, &corev1.Service{}); err != nil {
		t.Errorf("a Service not named as a derived one: %v", err)
	}
}

func TestDerivedServiceAndSlices(t *testing.T) {
	h := start(t)
	h.create(newService(h.ns, "shop", tcp("http", 80, 8080)))
	h.create(newSlice(h.ns, "shop", "shop-1", []discoveryv1.EndpointPort{epPort("http", 8080)},
		endpoint("10.1.0.1", "", "zone-a", true, true, false),
		endpoint("10.1.0.2", "", "zone-a", false, true, true)))
	se := newExport(h.ns, "shop")
	h.create(se)
	// West is newer and adds a port: the union, and a conflict that
	// names the port we lack.
	west := remoteExport("west", h.ns, "shop", se.CreationTimestamp.Add(time.Hour), mport("http", 80), mport("admin", 9000))
	west.Slices = []mcs.Slice{rslice([]discoveryv1.EndpointPort{epPort("http", 8081), epPort("admin", 9001)},
		rep("10.2.0.1", "", "zone-x", true, true, false),
		rep("10.2.0.2", "", "zone-y", false, true, true))}
	h.setRemote("west", true, west)

	h.waitConditions(h.ns, "shop", exportedOK[0], exportedOK[1],
		cond{conflict, isTrue, mcsv1beta1.ServiceExportReasonPortConflict, `this export lacks port "admin" 9000/TCP (from cluster "west")`})
	si := h.waitImport(h.ns, "shop", all(importClusters(localCluster, "west"), withIPs, importPorts(80, 9000)))
	h.eventually("slices of both clusters", func() error { return sliceClusters(h.ns, "shop", localCluster, "west") })

	name := mcs.DerivedServiceName("shop")
	owner := []metav1.OwnerReference{{
		APIVersion: mcsv1beta1.GroupVersion.String(), Kind: "ServiceImport",
		Name: "shop", UID: si.UID, Controller: ptr(true),
	}}
	svc, err := derived(h.ns, "shop")
	if err != nil {
		t.Fatal(err)
	}
	wantPorts := []corev1.ServicePort{
		{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(80)},
		{Name: "admin", Protocol: corev1.ProtocolTCP, Port: 9000, TargetPort: intstr.FromInt32(9000)},
	}
	if d := cmp.Diff(wantPorts, svc.Spec.Ports); d != "" {
		t.Errorf("derived Service ports (-want +have):\n%s", d)
	}
	if svc.Spec.Selector != nil || svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("derived Service selector %v type %s, want none and ClusterIP", svc.Spec.Selector, svc.Spec.Type)
	}
	wantLabels := map[string]string{mcsv1beta1.LabelServiceName: "shop", v1alpha1.LabelManagedBy: v1alpha1.ManagedByValue}
	if !maps.Equal(svc.Labels, wantLabels) {
		t.Errorf("derived Service labels %v, want %v", svc.Labels, wantLabels)
	}
	if len(svc.OwnerReferences) != 0 {
		t.Errorf("derived Service owners %v, want none (it is created before its ServiceImport)", svc.OwnerReferences)
	}

	by, err := importedSlices(h.ns, "shop")
	if err != nil {
		t.Fatal(err)
	}
	// Our cluster serves only http, on its own target port; west serves
	// both ports. Ready, serving and terminating are carried.
	want := map[string]discoveryv1.EndpointSlice{
		localCluster: {
			Ports: []discoveryv1.EndpointPort{epPort("http", 8080)},
			Endpoints: []discoveryv1.Endpoint{
				endpoint("10.1.0.1", "", "zone-a", true, true, false),
				endpoint("10.1.0.2", "", "zone-a", false, true, true),
			},
		},
		"west": {
			Ports: []discoveryv1.EndpointPort{epPort("admin", 9001), epPort("http", 8081)},
			Endpoints: []discoveryv1.Endpoint{
				endpoint("10.2.0.1", "", "zone-x", true, true, false),
				endpoint("10.2.0.2", "", "zone-y", false, true, true),
			},
		},
	}
	for cluster, w := range want {
		if len(by[cluster]) != 1 {
			t.Errorf("%d slices from %s, want 1", len(by[cluster]), cluster)
			continue
		}
		s := by[cluster][0]
		wantLabels := map[string]string{
			mcsv1beta1.LabelServiceName:   "shop",
			mcsv1beta1.LabelSourceCluster: cluster,
			discoveryv1.LabelManagedBy:    mcs.ManagedBy,
			discoveryv1.LabelServiceName:  name,
		}
		if !maps.Equal(s.Labels, wantLabels) {
			t.Errorf("%s: labels %v, want %v", cluster, s.Labels, wantLabels)
		}
		if d := cmp.Diff(w.Ports, s.Ports); d != "" {
			t.Errorf("%s: ports (-want +have):\n%s", cluster, d)
		}
		if d := cmp.Diff(w.Endpoints, s.Endpoints); d != "" {
			t.Errorf("%s: endpoints (-want +have):\n%s", cluster, d)
		}
		if d := cmp.Diff(owner, s.OwnerReferences); d != "" {
			t.Errorf("%s: owner (-want +have):\n%s", cluster, d)
		}
	}
}

func TestHeadlessImport(t *testing.T) {
	h := start(t)
	h.create(newHeadless(h.ns, "db", tcp("pg", 5432, 5432)))
	h.create(newSlice(h.ns, "db", "db-1", []discoveryv1.EndpointPort{epPort("pg", 5432)},
		endpoint("10.1.0.1", "db-0", "", true, true, false)))
	se := newExport(h.ns, "db")
	h.create(se)
	west := remoteExport("west", h.ns, "db", se.CreationTimestamp.Add(time.Hour), mport("pg", 5432))
	west.Type = mcsv1beta1.Headless
	west.Slices = []mcs.Slice{rslice([]discoveryv1.EndpointPort{epPort("pg", 5432)},
		rep("10.2.0.1", "db-0", "", true, true, false),
		rep("10.2.0.2", "db-1", "", false, true, true))}
	h.setRemote("west", true, west)

	h.waitConditions(h.ns, "db", exportedOK...)
	si := h.waitImport(h.ns, "db", importClusters(localCluster, "west"))
	h.eventually("slices of both clusters", func() error { return sliceClusters(h.ns, "db", localCluster, "west") })
	if si.Spec.Type != mcsv1beta1.Headless || len(si.Spec.IPs) != 0 {
		t.Errorf("ServiceImport type %s ips %v, want Headless without IPs", si.Spec.Type, si.Spec.IPs)
	}
	if err := gone(h.ns, mcs.DerivedServiceName("db"), &corev1.Service{}); err != nil {
		t.Error("a headless import has no derived Service:", err)
	}
	by, err := importedSlices(h.ns, "db")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]discoveryv1.Endpoint{
		localCluster: {endpoint("10.1.0.1", "db-0", "", true, true, false)},
		"west": {
			endpoint("10.2.0.1", "db-0", "", true, true, false),
			endpoint("10.2.0.2", "db-1", "", false, true, true),
		},
	}
	for cluster, eps := range want {
		if len(by[cluster]) != 1 {
			t.Errorf("%d slices from %s, want 1", len(by[cluster]), cluster)
			continue
		}
		s := by[cluster][0]
		if d := cmp.Diff(eps, s.Endpoints); d != "" {
			t.Errorf("%s: endpoints (-want +have):\n%s", cluster, d)
		}
		if _, ok := s.Labels[discoveryv1.LabelServiceName]; ok {
			t.Errorf("%s: slice of a headless import has %s", cluster, discoveryv1.LabelServiceName)
		}
	}
}

// TestHeadlessImportWithoutPorts imports a headless Service that has no
// ports, which Kubernetes allows.
func TestHeadlessImportWithoutPorts(t *testing.T) {
	h := start(t)
	h.create(newHeadless(h.ns, "peers"))
	h.create(newSlice(h.ns, "peers", "peers-1", nil, endpoint("10.1.0.1", "peer-0", "", true, true, false)))
	h.create(newExport(h.ns, "peers"))
	h.waitConditions(h.ns, "peers", exportedOK...)
	h.waitImport(h.ns, "peers", importClusters(localCluster))
	h.eventually("slice imported", func() error { return sliceClusters(h.ns, "peers", localCluster) })
}

// TestWithdrawal removes a remote cluster's exports in the two ways
// gossip can: the cluster is gone, or it is back but its set is not yet
// known to be complete (a gateway restart), when nothing may be removed.
func TestWithdrawal(t *testing.T) {
	h := start(t)
	created := time.Now().Add(-time.Hour)
	export := func(cluster, addr string) mcs.Export {
		e := remoteExport(cluster, h.ns, "cache", created, mport("redis", 6379))
		e.Slices = []mcs.Slice{rslice([]discoveryv1.EndpointPort{epPort("redis", 6379)}, rep(addr, "", "", true, true, false))}
		return e
	}
	west, north := export("west", "10.2.0.1"), export("north", "10.3.0.1")
	h.update(set("west", true, west), set("north", true, north))
	h.waitImport(h.ns, "cache", all(importClusters("north", "west"), withIPs))
	h.eventually("slices of both clusters", func() error { return sliceClusters(h.ns, "cache", "north", "west") })

	// North is gone: its slices go, west's stay.
	h.update(drop("north"))
	h.waitImport(h.ns, "cache", importClusters("west"))
	h.eventually("north's slices removed", func() error { return sliceClusters(h.ns, "cache", "west") })

	// North is back; west restarted and has sent no snapshot yet: what
	// was imported from west stays.
	h.update(set("north", true, north), set("west", false))
	h.eventually("north's slices back", func() error { return sliceClusters(h.ns, "cache", "north", "west") })
	h.settle()
	if err := sliceClusters(h.ns, "cache", "north", "west"); err != nil {
		t.Error("unsettled west:", err)
	}

	// North goes while west is still unsettled: north's slices go, the
	// import and west's slices stay.
	h.update(drop("north"))
	h.eventually("north's slices removed", func() error { return sliceClusters(h.ns, "cache", "west") })
	h.settle()
	if err := sliceClusters(h.ns, "cache", "west"); err != nil {
		t.Error("unsettled west:", err)
	}
	h.waitImport(h.ns, "cache", withIPs)

	// West's snapshot arrives.
	h.setRemote("west", true, west)
	h.waitImport(h.ns, "cache", all(importClusters("west"), withIPs))
	if err := sliceClusters(h.ns, "cache", "west"); err != nil {
		t.Error(err)
	}

	// West's set is known and empty: the import goes.
	h.setRemote("west", true)
	h.eventually("import removed", func() error {
		if err := gone(h.ns, "cache", &mcsv1beta1.ServiceImport{}); err != nil {
			return err
		}
		if err := gone(h.ns, mcs.DerivedServiceName("cache"), &corev1.Service{}); err != nil {
			return err
		}
		if err := sliceClusters(h.ns, "cache"); err != nil {
			return errors.Join(err, errors.New("slices left"))
		}
		return nil
	})
}
