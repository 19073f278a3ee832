package mcs

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
)

// Conflict is the Conflict condition of one ServiceExport.
//
// KEP-1645 sets the condition "on all ServiceExports for the conflicted
// service" (mcs-api asks it at least on the conflicting ones and
// recommends all), so when any two exports disagree every export of the
// Service gets Conflict=True, the oldest one included: each message says
// what wins and whether this export is among those that differ.
type Conflict struct {
	// Reasons are the conflicting properties, in the precedence order of
	// conflictProperties; empty when there is no conflict.
	Reasons []mcsv1beta1.ServiceExportConditionReason
	// Message names each conflicting property, the winning cluster and
	// value, and this export's value.
	Message string
}

// Conflicting reports whether the condition is True.
func (c Conflict) Conflicting() bool { return len(c.Reasons) > 0 }

// Condition returns the Conflict condition for a ServiceExport of the
// given metadata.generation: True with the first of Reasons, the message
// naming all; False with NoConflicts. LastTransitionTime is left zero:
// meta.SetStatusCondition sets it when the status changes.
//
// mcs-api also allows the reasons joined by commas; one reason from a
// fixed list is easier to alert on, and the message has them all.
func (c Conflict) Condition(generation int64) metav1.Condition {
	reason := mcsv1beta1.ServiceExportReasonNoConflicts
	if c.Conflicting() {
		reason = c.Reasons[0]
	}
	return condition(mcsv1beta1.ServiceExportConditionConflict, c.Conflicting(), reason, c.Message, generation)
}

// portFindings are what merging the ports found, by cluster.
type portFindings struct {
	clashes map[string][]portClash
	lacks   map[string][]portLack
}

// property is a service-wide property that exports may disagree on.
type property struct {
	reason mcsv1beta1.ServiceExportConditionReason
	name   string
	// differs reports whether export e conflicts with the oldest.
	differs func(oldest, e *Export) bool
	// oldestToo: the oldest export can differ as well (it lacks a port
	// that a newer one adds); others are judged against the oldest.
	oldestToo bool
	// show renders a value for messages; nil for values too large to show.
	show func(e *Export) string
	// detail and summary, if set, replace the generic text for an export
	// that differs and for one that does not.
	detail  func(e *Export) string
	summary func(ndiff, n int) string
}

// conflictProperties lists the properties checked, in precedence order:
// what changes how the service is reached at all first (type, ports, IP
// families), then how traffic is balanced, then metadata.
func conflictProperties(pf portFindings) []property {
	quote := func(s string) string { return fmt.Sprintf("%q", s) }
	return []property{{
		reason:  mcsv1beta1.ServiceExportReasonTypeConflict,
		name:    "type",
		differs: func(o, e *Export) bool { return o.Type != e.Type },
		show:    func(e *Export) string { return quote(string(e.Type)) },
	}, {
		reason:    mcsv1beta1.ServiceExportReasonPortConflict,
		name:      "ports",
		differs:   func(_, e *Export) bool { return len(pf.clashes[e.Cluster]) > 0 || len(pf.lacks[e.Cluster]) > 0 },
		oldestToo: true,
		detail:    func(e *Export) string { return portText(pf.clashes[e.Cluster], pf.lacks[e.Cluster]) },
		// Each port is won by the oldest export that declares it, not
		// always the oldest export of all: name the winners.
		summary: func(ndiff, n int) string { return keptText(pf.clashes, ndiff, n) },
	}, {
		// mcs-api leaves IP families to the implementation but requires
		// this reason when traffic of some family could reach only some
		// backends. The import takes the oldest export's families, so an
		// export conflicts when it lacks one of them; one with more
		// families, or the same in another order, is reached by all.
		// Not for a Headless import, which allocates no IP: the API server
		// gives a selector-less headless Service both families even in a
		// single-stack cluster, so its families say nothing.
		reason: mcsv1beta1.ServiceExportReasonIPFamilyConflict,
		name:   "IP families",
		differs: func(o, e *Export) bool {
			return o.Type != mcsv1beta1.Headless && !coversFamilies(e.IPFamilies, o.IPFamilies)
		},
		show: func(e *Export) string { return familiesText(e.IPFamilies) },
	}, {
		reason:  mcsv1beta1.ServiceExportReasonSessionAffinityConflict,
		name:    "session affinity",
		differs: func(o, e *Export) bool { return affinity(o) != affinity(e) },
		show:    func(e *Export) string { return quote(string(affinity(e))) },
	}, {
		// Compared only where the affinities agree: with different
		// affinities the config differs too, and one reason says it.
		reason: mcsv1beta1.ServiceExportReasonSessionAffinityConfigConflict,
		name:   "session affinity timeout",
		differs: func(o, e *Export) bool {
			return affinity(o) == corev1.ServiceAffinityClientIP && affinity(e) == corev1.ServiceAffinityClientIP &&
				affinityTimeout(o) != affinityTimeout(e)
		},
		show: affinityTimeoutText,
	}, {
		reason: mcsv1beta1.ServiceExportReasonInternalTrafficPolicyConflict,
		name:   "internal traffic policy",
		differs: func(o, e *Export) bool {
			return internalTrafficPolicy(o) != internalTrafficPolicy(e)
		},
		show: func(e *Export) string { return quote(string(internalTrafficPolicy(e))) },
	}, {
		reason:  mcsv1beta1.ServiceExportReasonTrafficDistributionConflict,
		name:    "traffic distribution",
		differs: func(o, e *Export) bool { return trafficDistribution(o) != trafficDistribution(e) },
		show: func(e *Export) string {
			if e.TrafficDistribution == nil {
				return "unset"
			}
			return quote(*e.TrafficDistribution)
		},
	}, {
		reason:  mcsv1beta1.ServiceExportReasonLabelsConflict,
		name:    "exported labels",
		differs: func(o, e *Export) bool { return !maps.Equal(o.Labels, e.Labels) },
	}, {
		reason:  mcsv1beta1.ServiceExportReasonAnnotationsConflict,
		name:    "exported annotations",
		differs: func(o, e *Export) bool { return !maps.Equal(o.Annotations, e.Annotations) },
	}}
}

// conflicts computes the Conflict condition of each export, given oldest
// first.
func conflicts(order []*Export, pf portFindings) map[string]Conflict {
	oldest := order[0]
	type finding struct {
		property
		differing map[string]bool
	}
	var found []finding
	for _, p := range conflictProperties(pf) {
		d := map[string]bool{}
		judged := order[1:]
		if p.oldestToo {
			judged = order
		}
		for _, e := range judged {
			if p.differs(oldest, e) {
				d[e.Cluster] = true
			}
		}
		if len(d) > 0 {
			found = append(found, finding{p, d})
		}
	}

	out := make(map[string]Conflict, len(order))
	for _, e := range order {
		if len(found) == 0 {
			msg := fmt.Sprintf("No conflicts among the %d exports of the service.", len(order))
			if len(order) == 1 {
				msg = "No conflicts: this is the only export of the service."
			}
			out[e.Cluster] = Conflict{Message: msg}
			continue
		}
		var c Conflict
		names := make([]string, 0, len(found))
		clauses := make([]string, 0, len(found))
		for _, f := range found {
			c.Reasons = append(c.Reasons, f.reason)
			names = append(names, f.name)
			clauses = append(clauses, clause(&f.property, oldest, e, f.differing[e.Cluster], len(f.differing), len(order)))
		}
		c.Message = "Conflicting " + strings.Join(names, ", ") + ". " + strings.Join(clauses, "; ") + "."
		out[e.Cluster] = c
	}
	return out
}

// clause says, for export e, what happens to one conflicting property.
func clause(p *property, oldest, e *Export, differs bool, ndiff, n int) string {
	value := func(x *Export) string {
		if p.show == nil {
			return ""
		}
		return " " + p.show(x)
	}
	count := fmt.Sprintf("exports that differ: %d of %d", ndiff, n)
	switch {
	case !differs && p.summary != nil:
		return fmt.Sprintf("%s: %s", p.name, p.summary(ndiff, n))
	case differs && p.detail != nil:
		return fmt.Sprintf("%s: %s", p.name, p.detail(e))
	case differs:
		return fmt.Sprintf("%s: the oldest export's value%s (cluster %q) wins over this export's%s",
			p.name, value(oldest), oldest.Cluster, value(e))
	case e == oldest:
		return fmt.Sprintf("%s: this export's value%s wins, being the oldest; %s", p.name, value(e), count)
	default:
		return fmt.Sprintf("%s: the oldest export's value%s (cluster %q) wins, the same as this export's; %s",
			p.name, value(oldest), oldest.Cluster, count)
	}
}

// portText describes an export's port clashes and the import's ports it
// lacks, the first three of each in full.
func portText(cs []portClash, ls []portLack) string {
	var parts []string
	if len(cs) > 0 {
		parts = append(parts, firstFew(len(cs), func(i int) string {
			return fmt.Sprintf("this export's port %s clashes with %s from cluster %q, which wins",
				portString(cs[i].own), portString(cs[i].kept), cs[i].owner)
		}))
	}
	if len(ls) > 0 {
		parts = append(parts, "this export lacks "+firstFew(len(ls), func(i int) string {
			return fmt.Sprintf("port %s (from cluster %q)", portString(ls[i].port), ls[i].owner)
		})+", which the import exposes and only the clusters that declare it serve")
	}
	return strings.Join(parts, "; ")
}

// firstFew joins the texts of n items, the first three in full.
func firstFew(n int, text func(i int) string) string {
	const shown = 3
	parts := make([]string, 0, shown+1)
	for i := range n {
		if i == shown {
			parts = append(parts, fmt.Sprintf("and %d more", n-shown))
			break
		}
		parts = append(parts, text(i))
	}
	return strings.Join(parts, ", ")
}

// keptText names the ports that won clashes, the first three in full,
// for the exports that have none.
func keptText(clashes map[string][]portClash, ndiff, n int) string {
	type kept struct {
		port  mcsv1beta1.ServicePort
		owner string
	}
	var ks []kept
	for _, cs := range clashes {
		for _, c := range cs {
			ks = append(ks, kept{c.kept, c.owner})
		}
	}
	slices.SortFunc(ks, func(a, b kept) int { return comparePorts(a.port, b.port) })
	ks = slices.CompactFunc(ks, func(a, b kept) bool { return comparePorts(a.port, b.port) == 0 })
	if len(ks) == 0 {
		return fmt.Sprintf("this export declares every port of the import, the union of the exports' ports; exports that differ: %d of %d", ndiff, n)
	}
	return fmt.Sprintf("kept over clashing ports of newer exports: %s; exports that differ: %d of %d",
		firstFew(len(ks), func(i int) string { return fmt.Sprintf("%s from cluster %q", portString(ks[i].port), ks[i].owner) }), ndiff, n)
}

// coversFamilies reports whether have includes every family of want. An
// export without families (never from a real Service) is not judged.
func coversFamilies(have, want []corev1.IPFamily) bool {
	if len(have) == 0 {
		return true
	}
	for _, f := range want {
		if !slices.Contains(have, f) {
			return false
		}
	}
	return true
}

func familiesText(fs []corev1.IPFamily) string {
	if len(fs) == 0 {
		return "none"
	}
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = string(f)
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// The values below are read with the API server's defaults, so that an
// unset field equals its default.

func affinity(e *Export) corev1.ServiceAffinity {
	return cmp.Or(e.SessionAffinity, corev1.ServiceAffinityNone)
}

func affinityTimeout(e *Export) int32 {
	if c := e.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
		return *c.ClientIP.TimeoutSeconds
	}
	return corev1.DefaultClientIPServiceAffinitySeconds
}

func affinityTimeoutText(e *Export) string {
	if affinity(e) != corev1.ServiceAffinityClientIP {
		return "none"
	}
	return fmt.Sprintf("%ds", affinityTimeout(e))
}

func internalTrafficPolicy(e *Export) corev1.ServiceInternalTrafficPolicy {
	return cmp.Or(deref(e.InternalTrafficPolicy), corev1.ServiceInternalTrafficPolicyCluster)
}

// trafficDistribution reads PreferClose as PreferSameZone, its newer name.
func trafficDistribution(e *Export) string {
	td := deref(e.TrafficDistribution)
	if td == corev1.ServiceTrafficDistributionPreferClose {
		return corev1.ServiceTrafficDistributionPreferSameZone
	}
	return td
}
