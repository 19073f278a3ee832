package mcs

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
)

// Port merging (KEP-1645, "Service Port"). The import exposes the union of
// the exports' ports, under the two rules of a Service's ports: no two
// share a name (the empty name included), no two share protocol and port
// number. Exports are taken oldest first, and each port of an export:
//
//  1. with the name of a port already taken, is merged into it: the older
//     definition is kept, and if protocol, port number or appProtocol
//     differ, the two clash (PortConflict). Names are tried first, for all
//     the export's ports, before step 2.
//  2. else with the protocol and port number of a port already taken, is
//     merged into it: the names differ, so the two clash.
//  3. else is added.
//
// Plain union, an export adding a port the others lack, merges without
// contention, but it is a conflict all the same (PortConflict on every
// export), as KEP-1645's "Service Port" section and the mcs-api
// conformance suite (v0.5) read it: clients of the import see a port that
// some clusters do not serve, and traffic to it reaches only those that
// do. The condition names the ports each export lacks, which is what an
// operator rolling out a new port one cluster at a time wants to watch.
//
// A cluster serves a merged port if the port of its own that was merged
// into it has the same protocol: the port number on the Service side is
// only the front, the import's number is used and traffic reaches the
// endpoints' own target port. A port merged by name but with another
// protocol serves nothing: its backends speak another protocol.

// mergedPort is one port of the import being built.
type mergedPort struct {
	def     mcsv1beta1.ServicePort
	owner   string            // cluster whose definition is kept
	sources map[string]string // serving cluster -> name of its own port
	// declared are the clusters that have a port merged into this one,
	// whether it clashes or not.
	declared map[string]bool
}

// portLack is a port of the import that an export does not declare.
type portLack struct {
	port  mcsv1beta1.ServicePort
	owner string // the cluster whose definition the import keeps
}

// portClash is one port of an export that clashed with a port taken from
// an older export.
type portClash struct {
	own   mcsv1beta1.ServicePort // the export's port
	kept  mcsv1beta1.ServicePort // the definition the import keeps
	owner string                 // the cluster it comes from
}

type protoPort struct {
	protocol corev1.Protocol
	port     int32
}

// mergePorts merges the ports of exports, given oldest first. It returns
// the import's ports sorted by port number, protocol and name, which
// cluster serves each, and the clashes and lacking ports of each cluster.
func mergePorts(order []*Export) ([]mcsv1beta1.ServicePort, []map[string]string, map[string][]portClash, map[string][]portLack) {
	var merged []*mergedPort
	byName := map[string]*mergedPort{}
	byProtoPort := map[protoPort]*mergedPort{}
	clashes := map[string][]portClash{}

	mergeInto := func(m *mergedPort, e *Export, p mcsv1beta1.ServicePort) {
		m.declared[e.Cluster] = true
		if !samePort(m.def, p) {
			clashes[e.Cluster] = append(clashes[e.Cluster], portClash{own: p, kept: m.def, owner: m.owner})
		}
		if _, ok := m.sources[e.Cluster]; !ok && m.def.Protocol == p.Protocol {
			m.sources[e.Cluster] = p.Name
		}
	}

	for _, e := range order {
		ports := normalizePorts(e.Ports)
		done := make([]bool, len(ports))
		// Step 1, against the ports of older exports only.
		for i, p := range ports {
			if m := byName[p.Name]; m != nil {
				mergeInto(m, e, p)
				done[i] = true
			}
		}
		// Steps 2 and 3. The name is checked again only to stay sound on
		// an export whose own ports break the rules (never a real Service).
		for i, p := range ports {
			if done[i] {
				continue
			}
			key := protoPort{p.Protocol, p.Port}
			if m := cmp.Or(byName[p.Name], byProtoPort[key]); m != nil {
				mergeInto(m, e, p)
				continue
			}
			m := &mergedPort{def: p, owner: e.Cluster, sources: map[string]string{e.Cluster: p.Name}, declared: map[string]bool{e.Cluster: true}}
			merged = append(merged, m)
			byName[p.Name] = m
			byProtoPort[key] = m
		}
	}

	// The same clashes in the same order, however an export lists its ports.
	for _, cs := range clashes {
		slices.SortFunc(cs, func(a, b portClash) int { return comparePorts(a.own, b.own) })
	}
	slices.SortFunc(merged, func(a, b *mergedPort) int { return comparePorts(a.def, b.def) })
	ports := make([]mcsv1beta1.ServicePort, len(merged))
	sources := make([]map[string]string, len(merged))
	lacks := map[string][]portLack{}
	for i, m := range merged {
		ports[i] = m.def
		sources[i] = m.sources
		for _, e := range order {
			if !m.declared[e.Cluster] {
				lacks[e.Cluster] = append(lacks[e.Cluster], portLack{port: m.def, owner: m.owner})
			}
		}
	}
	return ports, sources, clashes, lacks
}

// normalizePorts copies ports with the protocol defaulted, as FromService
// writes them, in case an export comes from an older or foreign writer.
func normalizePorts(in []mcsv1beta1.ServicePort) []mcsv1beta1.ServicePort {
	out := make([]mcsv1beta1.ServicePort, len(in))
	for i, p := range in {
		p.Protocol = cmp.Or(p.Protocol, corev1.ProtocolTCP)
		p.AppProtocol = clonePtr(p.AppProtocol)
		out[i] = p
	}
	return out
}

func samePort(a, b mcsv1beta1.ServicePort) bool {
	return a.Name == b.Name && a.Protocol == b.Protocol && a.Port == b.Port &&
		deref(a.AppProtocol) == deref(b.AppProtocol)
}

func comparePorts(a, b mcsv1beta1.ServicePort) int {
	return cmp.Or(cmp.Compare(a.Port, b.Port),
		strings.Compare(string(a.Protocol), string(b.Protocol)),
		strings.Compare(a.Name, b.Name))
}

// portString shows a port in messages: "http" 80/TCP (appProtocol h2c).
func portString(p mcsv1beta1.ServicePort) string {
	name := "unnamed"
	if p.Name != "" {
		name = fmt.Sprintf("%q", p.Name)
	}
	s := fmt.Sprintf("%s %d/%s", name, p.Port, p.Protocol)
	if p.AppProtocol != nil {
		s += fmt.Sprintf(" (appProtocol %s)", *p.AppProtocol)
	}
	return s
}
