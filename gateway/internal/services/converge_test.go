package services

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/wirespan/wirespan/internal/mcs"
)

// versions returns the resourceVersion of every object in namespace ns
// that the controller reads or writes, by kind and name.
func versions(t *testing.T, ns string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range []client.ObjectList{
		&mcsv1beta1.ServiceExportList{}, &mcsv1beta1.ServiceImportList{},
		&corev1.ServiceList{}, &discoveryv1.EndpointSliceList{},
	} {
		if err := k8s.List(context.Background(), l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		objs, err := metaItems(l)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			out[fmt.Sprintf("%T %s", o, o.GetName())] = o.GetResourceVersion()
		}
	}
	return out
}

// TestConvergedSyncWritesNothing brings a namespace with every kind of
// export and import to its converged state, then has the controller sync
// again, also with remote records that changed version but not content:
// nothing may be written.
func TestConvergedSyncWritesNothing(t *testing.T) {
	h := start(t)

	// Exported by us and west, with a port only west has and a conflict
	// (west's older session affinity).
	h.create(newService(h.ns, "web", tcp("http", 80, 8080)))
	h.create(newSlice(h.ns, "web", "web-1", []discoveryv1.EndpointPort{epPort("http", 8080)},
		endpoint("10.1.0.1", "", "zone-a", true, true, false),
		endpoint("10.1.0.2", "", "zone-a", false, true, true)))
	se := newExport(h.ns, "web")
	se.Spec.ExportedLabels = map[string]string{"team": "a"}
	h.create(se)
	web := remoteExport("west", h.ns, "web", se.CreationTimestamp.Add(-time.Hour), mport("http", 80), mport("admin", 9000))
	web.SessionAffinity = corev1.ServiceAffinityClientIP
	web.Labels = map[string]string{"team": "a"}
	web.Slices = []mcs.Slice{rslice([]discoveryv1.EndpointPort{epPort("http", 8081), epPort("admin", 9001)},
		rep("10.2.0.1", "", "zone-x", true, true, false))}

	// Headless, exported by us and west.
	h.create(newHeadless(h.ns, "db", tcp("pg", 5432, 5432)))
	h.create(newSlice(h.ns, "db", "db-1", []discoveryv1.EndpointPort{epPort("pg", 5432)},
		endpoint("10.1.1.1", "db-0", "", true, true, false)))
	h.create(newExport(h.ns, "db"))
	db := remoteExport("west", h.ns, "db", time.Now().Add(time.Hour), mport("pg", 5432))
	db.Type = mcsv1beta1.Headless
	db.Slices = []mcs.Slice{rslice([]discoveryv1.EndpointPort{epPort("pg", 5432)},
		rep("10.2.1.1", "db-0", "", true, true, false))}

	// Exports that are not exported.
	h.create(newExport(h.ns, "missing"))
	ext := newService(h.ns, "ext")
	ext.Spec.Type, ext.Spec.ExternalName = corev1.ServiceTypeExternalName, "example.com"
	h.create(ext)
	h.create(newExport(h.ns, "ext"))

	// Imported only, from two clusters.
	only := func(cluster, addr string) mcs.Export {
		e := remoteExport(cluster, h.ns, "cache", time.Now().Add(-time.Hour), mport("redis", 6379))
		e.Slices = []mcs.Slice{rslice([]discoveryv1.EndpointPort{epPort("redis", 6379)}, rep(addr, "", "", true, true, false))}
		return e
	}
	// Imported from a dual-stack cluster: this single-stack one keeps
	// only the first family.
	dual := remoteExport("west", h.ns, "dual", time.Now().Add(-time.Hour), mport("http", 80))
	dual.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	remotes := []remoteChange{
		set("west", true, web, db, only("west", "10.2.2.1"), dual),
		set("north", true, only("north", "10.3.2.1")),
	}
	h.update(remotes...)

	// west's admin port, which we lack, comes first of the conflicts.
	ports := cond{conflict, metav1.ConditionTrue, mcsv1beta1.ServiceExportReasonPortConflict, `this export lacks port "admin" 9000/TCP`}
	h.waitConditions(h.ns, "web", exportedOK[0], exportedOK[1], ports)
	h.waitConditions(h.ns, "db", exportedOK...)
	h.waitConditions(h.ns, "missing",
		cond{valid, isFalse, mcsv1beta1.ServiceExportReasonNoService, ""},
		cond{ready, isFalse, mcsv1beta1.ServiceExportReasonPending, ""})
	h.waitConditions(h.ns, "ext",
		cond{valid, isFalse, mcsv1beta1.ServiceExportReasonInvalidServiceType, ""},
		cond{ready, isFalse, mcsv1beta1.ServiceExportReasonFailed, ""})
	h.waitImport(h.ns, "web", all(importClusters(localCluster, "west"), withIPs, importPorts(80, 9000)))
	h.waitImport(h.ns, "db", importClusters(localCluster, "west"))
	h.waitImport(h.ns, "cache", all(importClusters("north", "west"), withIPs))
	h.waitImport(h.ns, "dual", withIPs)
	for name, clusters := range map[string][]string{"web": {localCluster, "west"}, "db": {localCluster, "west"}, "cache": {"north", "west"}} {
		h.eventually("slices of "+name, func() error { return sliceClusters(h.ns, name, clusters...) })
	}
	h.settle()

	// Every service reconciled again: nothing is written, no API call
	// and no object changed.
	before := versions(t, h.ns)
	h.takeWrites()
	h.takeTouched()
	h.ctrl.requeueAll()
	h.settle()
	if w := h.takeWrites(); len(w) > 0 {
		t.Errorf("a sync of a converged state wrote:\n%s", strings.Join(w, "\n"))
	}
	if touched := h.takeTouched(); touched[h.ns+"/web"] == 0 || touched[h.ns+"/cache"] == 0 {
		t.Errorf("the services were not reconciled again: %v", touched)
	}
	if d := cmp.Diff(before, versions(t, h.ns)); d != "" {
		t.Errorf("a sync of a converged state changed objects (-before +after):\n%s", d)
	}

	// The same records again, with new versions: decoded anew, the same.
	h.update(remotes...)
	h.settle()
	if w := h.takeWrites(); len(w) > 0 {
		t.Errorf("records with new versions and the same content made writes:\n%s", strings.Join(w, "\n"))
	}
	if d := cmp.Diff(before, versions(t, h.ns)); d != "" {
		t.Errorf("records with new versions and the same content changed objects (-before +after):\n%s", d)
	}
}
