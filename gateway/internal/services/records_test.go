package services

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/wirespan/wirespan/internal/mcs"
)

// TestPublishedRecords checks the record of each valid export that the
// controller hands to gossip: what other clusters import.
func TestPublishedRecords(t *testing.T) {
	h := start(t)

	// A ClusterSetIP Service whose ports target other ports, with
	// endpoints in every state.
	h.create(newService(h.ns, "db", tcp("http", 80, 8080), tcp("metrics", 9090, 9090)))
	unset := discoveryv1.Endpoint{Addresses: []string{"10.1.0.4"}} // conditions unset: ready
	h.create(newSlice(h.ns, "db", "db-a", []discoveryv1.EndpointPort{epPort("metrics", 9090), epPort("http", 8080)},
		unset,
		endpoint("10.1.0.1", "db-0", "zone-a", true, true, false),
		endpoint("10.1.0.2", "", "zone-b", false, true, true),
		endpoint("10.1.0.3", "", "zone-b", false, false, true), // takes no traffic: left out
	))
	// A slice Wirespan imported under the Service's own name is not
	// exported again.
	imported := newSlice(h.ns, "db", "db-imported", []discoveryv1.EndpointPort{epPort("http", 8080)},
		endpoint("10.9.9.9", "", "", true, true, false))
	imported.Labels[discoveryv1.LabelManagedBy] = mcs.ManagedBy
	h.create(imported)
	dbExport := newExport(h.ns, "db")
	h.create(dbExport)

	// A headless Service whose pods have hostnames.
	h.create(newHeadless(h.ns, "pg", tcp("pg", 5432, 5432)))
	h.create(newSlice(h.ns, "pg", "pg-a", []discoveryv1.EndpointPort{epPort("pg", 5432)},
		endpoint("10.1.1.2", "pg-1", "zone-b", true, true, false),
		endpoint("10.1.1.1", "pg-0", "zone-a", true, true, false),
	))
	pgExport := newExport(h.ns, "pg")
	h.create(pgExport)

	// Invalid exports publish nothing.
	h.create(newExport(h.ns, "missing"))

	for _, n := range []string{"db", "pg"} {
		h.waitConditions(h.ns, n, exportedOK...)
	}
	h.settle()

	h.exch.mu.Lock()
	var keys []string
	for k := range h.exch.published {
		if k.Namespace == h.ns {
			keys = append(keys, k.Name)
		}
	}
	h.exch.mu.Unlock()
	if len(keys) != 2 {
		t.Errorf("published %v, want db and pg", keys)
	}

	base := func(name string, created mcsv1beta1.ServiceExport) mcs.Export {
		return mcs.Export{
			Cluster:               localCluster,
			Service:               types.NamespacedName{Namespace: h.ns, Name: name},
			Created:               created.CreationTimestamp.Time,
			SessionAffinity:       corev1.ServiceAffinityNone,
			IPFamilies:            []corev1.IPFamily{corev1.IPv4Protocol},
			InternalTrafficPolicy: ptr(corev1.ServiceInternalTrafficPolicyCluster),
		}
	}
	wantDB := base("db", *dbExport)
	wantDB.Type = mcsv1beta1.ClusterSetIP
	wantDB.Ports = []mcsv1beta1.ServicePort{mport("http", 80), mport("metrics", 9090)}
	wantDB.Slices = []mcs.Slice{rslice([]discoveryv1.EndpointPort{epPort("http", 8080), epPort("metrics", 9090)},
		rep("10.1.0.1", "db-0", "zone-a", true, true, false),
		rep("10.1.0.2", "", "zone-b", false, true, true),
		rep("10.1.0.4", "", "", true, true, false),
	)}
	wantPG := base("pg", *pgExport)
	wantPG.Type = mcsv1beta1.Headless
	wantPG.Ports = []mcsv1beta1.ServicePort{mport("pg", 5432)}
	wantPG.Slices = []mcs.Slice{rslice([]discoveryv1.EndpointPort{epPort("pg", 5432)},
		rep("10.1.1.1", "pg-0", "zone-a", true, true, false),
		rep("10.1.1.2", "pg-1", "zone-b", true, true, false),
	)}
	for _, want := range []mcs.Export{wantDB, wantPG} {
		have, ok := h.published(h.ns, want.Service.Name)
		if !ok {
			t.Errorf("%s: not published", want.Service.Name)
			continue
		}
		if d := cmp.Diff(want, have); d != "" {
			t.Errorf("%s: published record differs (-want +have):\n%s", want.Service.Name, d)
		}
	}
}
