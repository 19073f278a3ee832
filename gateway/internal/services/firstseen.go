package services

import (
	"encoding/json"
	"maps"
	"time"

	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/wirespan/wirespan/internal/mcs"
)

// FirstSeenAnnotation on a ServiceImport records, for each cluster that
// exported the service, when this cluster first saw its export: the
// earliest that export may count as created in the oldest-export rule
// (mcs.Export.NotBefore). It lives on the object, so restarts and
// failovers keep it; it goes with the import.
const FirstSeenAnnotation = "wirespan.io/first-seen"

// backdatedBy is how much earlier than first seen an export may claim to
// be created before it is logged as backdated: clocks differ, and gossip
// takes a moment.
const backdatedBy = time.Minute

// boundCreated sets, on each remote export of key, the time this cluster
// first saw it, from the import's FirstSeenAnnotation, and returns what
// the annotation should hold. An export not in it is first seen now;
// except when this cluster has no record at all yet (a new import, or
// one written before the annotation existed), whose exports are taken as
// created when they say: nothing was seen before them. A claim that
// predates its first sighting by more than backdatedBy is logged once.
func (c *Controller) boundCreated(key serviceKey, si *mcsv1beta1.ServiceImport, exports []mcs.Export, now time.Time) ([]mcs.Export, map[string]time.Time) {
	seen, recorded := firstSeen(si)
	if len(exports) == 0 {
		return exports, seen
	}
	out := make([]mcs.Export, len(exports))
	for i, e := range exports {
		first, known := seen[e.Cluster]
		if !known {
			first = now
			if !recorded {
				first = e.Created
			}
			first = first.UTC().Truncate(time.Second)
			if seen == nil {
				seen = map[string]time.Time{}
			}
			seen[e.Cluster] = first
		}
		e.NotBefore = first
		if !known && first.Sub(e.Created) > backdatedBy {
			c.Log.Info("An export claims to be older than when this cluster first saw it: it counts as created when first seen in the oldest-export rule",
				"cluster", e.Cluster, "service", key.String(), "created", e.Created, "firstSeen", e.NotBefore)
		}
		out[i] = e
	}
	return out, seen
}

// withOwnExport records our own export in seen (as created, which our API
// server vouches for), so that an import made by our export alone is
// recorded: a remote export that arrives later is then first seen when it
// arrives. Without it, the exporting cluster took a later, backdated
// export at its word, and the export won over ours in our own import.
func withOwnExport(seen map[string]time.Time, cluster string, created time.Time) map[string]time.Time {
	if _, ok := seen[cluster]; ok {
		return seen
	}
	if seen == nil {
		seen = map[string]time.Time{}
	}
	seen[cluster] = created.UTC().Truncate(time.Second)
	return seen
}

// firstSeen reads the FirstSeenAnnotation of one of our ServiceImports;
// recorded is false when there is none to read.
func firstSeen(si *mcsv1beta1.ServiceImport) (seen map[string]time.Time, recorded bool) {
	if si == nil || !ours(si.Labels) {
		return nil, false
	}
	raw, ok := si.Annotations[FirstSeenAnnotation]
	if !ok {
		return nil, false
	}
	if err := json.Unmarshal([]byte(raw), &seen); err != nil {
		// Damaged by hand: start again from what is seen now, as a new
		// import does.
		return nil, false
	}
	return seen, true
}

// withFirstSeen returns annotations with the FirstSeenAnnotation set.
func withFirstSeen(annotations map[string]string, seen map[string]time.Time) map[string]string {
	raw, err := json.Marshal(seen)
	if err != nil {
		return annotations
	}
	out := maps.Clone(annotations)
	if out == nil {
		out = map[string]string{}
	}
	out[FirstSeenAnnotation] = string(raw)
	return out
}
