package mcs

import (
	"cmp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
)

// Import is the merge of the exports of one Service by every cluster that
// exports it: what each cluster imports, and the Conflict condition of
// each export.
type Import struct {
	// Service is the Service's namespace and name.
	Service types.NamespacedName
	// Spec is the ServiceImport's spec without IPs, which each importing
	// cluster allocates. Spec.Ports are sorted by port number, protocol,
	// then name.
	Spec mcsv1beta1.ServiceImportSpec
	// PortSources[i] tells which clusters serve Spec.Ports[i]: it maps each
	// such cluster's ID to the name of the port of its own Service that
	// serves it, the name its EndpointSlices give the port. Traffic to a
	// port goes only to the clusters in its map.
	PortSources []map[string]string
	// Labels and Annotations are the oldest export's exported labels and
	// annotations, for the ServiceImport.
	Labels      map[string]string
	Annotations map[string]string
	// Clusters are the IDs of the exporting clusters, sorted.
	Clusters []string
	// Oldest is the cluster of the oldest export, whose service-wide
	// properties the import takes.
	Oldest string
	// Conflicts is the Conflict condition of each cluster's
	// ServiceExport, by cluster ID.
	Conflicts map[string]Conflict
}

// PortClusters returns the clusters that serve Spec.Ports[i], sorted.
func (imp Import) PortClusters(i int) []string {
	cs := make([]string, 0, len(imp.PortSources[i]))
	for c := range imp.PortSources[i] {
		cs = append(cs, c)
	}
	slices.Sort(cs)
	return cs
}

// Merge merges the exports of one Service (same namespace and name), at
// most one per cluster, as KEP-1645 says under "Constraints and Conflict
// Resolution".
//
// The oldest export, by Created, gives the service-wide properties: type,
// session affinity and its config, IP families, internal traffic policy,
// traffic distribution, exported labels and annotations. Two exports
// created in the same second are common (the API server keeps seconds, and
// GitOps applies to every cluster at once); the smaller cluster ID then
// counts as older, so every cluster computes the same winner. Ports are
// the union described in ports.go; exports whose port sets differ
// conflict.
//
// The result does not depend on the order of exports. With no exports,
// Merge returns the zero Import: nothing to import. If a cluster appears
// twice, its oldest export counts.
func Merge(exports []Export) Import {
	order := oldestFirst(exports)
	if len(order) == 0 {
		return Import{}
	}
	oldest := order[0]
	ports, sources, clashes, lacks := mergePorts(order)

	affinity := cmp.Or(oldest.SessionAffinity, corev1.ServiceAffinityNone)
	var affinityConfig *corev1.SessionAffinityConfig
	if affinity == corev1.ServiceAffinityClientIP {
		affinityConfig = oldest.SessionAffinityConfig.DeepCopy()
	}
	imp := Import{
		Service: oldest.Service,
		Spec: mcsv1beta1.ServiceImportSpec{
			Type:                  oldest.Type,
			Ports:                 ports,
			SessionAffinity:       affinity,
			SessionAffinityConfig: affinityConfig,
			IPFamilies:            slices.Clone(oldest.IPFamilies),
			InternalTrafficPolicy: clonePtr(oldest.InternalTrafficPolicy),
			TrafficDistribution:   clonePtr(oldest.TrafficDistribution),
		},
		PortSources: sources,
		Labels:      cloneMap(oldest.Labels),
		Annotations: cloneMap(oldest.Annotations),
		Oldest:      oldest.Cluster,
		Conflicts:   conflicts(order, portFindings{clashes, lacks}),
	}
	for _, e := range order {
		imp.Clusters = append(imp.Clusters, e.Cluster)
	}
	slices.Sort(imp.Clusters)
	return imp
}

// oldestFirst orders exports by age (Created, or NotBefore when later),
// then Created, then cluster ID, keeping the first export of each cluster.
// Two exports bounded by the same NotBefore (first seen together) keep
// the order their Created gives.
func oldestFirst(exports []Export) []*Export {
	order := make([]*Export, 0, len(exports))
	for i := range exports {
		order = append(order, &exports[i])
	}
	slices.SortStableFunc(order, func(a, b *Export) int {
		// On a tie, an export whose claim stands goes before one whose
		// claim was pushed back to its first sighting: a backdated claim
		// must not win a tie it only reached by backdating.
		return cmp.Or(a.age().Compare(b.age()), cmpBool(a.pushedBack(), b.pushedBack()),
			a.Created.Compare(b.Created), strings.Compare(a.Cluster, b.Cluster))
	})
	seen := map[string]bool{}
	return slices.DeleteFunc(order, func(e *Export) bool {
		dup := seen[e.Cluster]
		seen[e.Cluster] = true
		return dup
	})
}

// pushedBack says whether the export counts as created later than it
// claims (age).
func (e *Export) pushedBack() bool { return e.NotBefore.After(e.Created) }

// cmpBool orders false before true.
func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// age is when the export counts as created: Created, unless the importing
// cluster first saw it later (NotBefore).
func (e *Export) age() time.Time {
	if e.pushedBack() {
		return e.NotBefore
	}
	return e.Created
}
