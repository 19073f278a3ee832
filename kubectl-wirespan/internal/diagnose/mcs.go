package diagnose

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/model"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/status"
)

// checkImported checks, for each cluster, that every valid export of
// every cluster read is imported there with an address: what the
// clusterset DNS server answers from. (Asking the DNS server itself needs
// a pod's or node's point of view, which this command does not have yet.)
func checkImported(in *input) []Result {
	type export struct{ cluster, ns, name string }
	var exports []export
	for i := range in.set.Clusters {
		c := &in.set.Clusters[i]
		for _, e := range c.Exports {
			if meta.IsStatusConditionTrue(e.Status.Conditions, string(mcsv1beta1.ServiceExportConditionValid)) {
				exports = append(exports, export{c.Name(), e.Namespace, e.Name})
			}
		}
	}
	return in.eachSelf(func(c *model.Cluster, _ *wirespanv1alpha1.ClusterPeer, _ status.Cluster) Result {
		if bad := unreadable(c, model.ReadImports, model.ReadExports); bad != nil {
			return *bad
		}
		if len(exports) == 0 {
			return Result{Status: Skip, Summary: "no cluster read has a valid ServiceExport"}
		}
		var missing []string
		for _, e := range exports {
			i := slices.IndexFunc(c.Imports, func(si mcsv1beta1.ServiceImport) bool { return si.Namespace == e.ns && si.Name == e.name })
			switch {
			case i < 0:
				missing = append(missing, fmt.Sprintf("%s: no ServiceImport %s/%s (exported by %s)", c.Context, e.ns, e.name, e.cluster))
			case !slices.ContainsFunc(c.Imports[i].Status.Clusters, func(s mcsv1beta1.ClusterStatus) bool { return s.Cluster == e.cluster }):
				missing = append(missing, fmt.Sprintf("%s: ServiceImport %s/%s does not list %s among its clusters", c.Context, e.ns, e.name, e.cluster))
			case c.Imports[i].Spec.Type == mcsv1beta1.ClusterSetIP && len(c.Imports[i].Spec.IPs) == 0:
				missing = append(missing, fmt.Sprintf("%s: ServiceImport %s/%s has no clusterset IP yet", c.Context, e.ns, e.name))
			}
		}
		if len(missing) > 0 {
			return Result{Status: Fail, Summary: "some exported services are not imported here, so their clusterset names do not resolve",
				Evidence: missing,
				Hint:     "the active gateway imports what gossip brings: check the handshake check, the gateway's log and wirespan_mcs_* metrics"}
		}
		return Result{Status: Pass, Summary: fmt.Sprintf("all %d exported services are imported with an address", len(exports))}
	})
}

func checkConflicts(in *input) []Result {
	return in.eachSelf(func(c *model.Cluster, _ *wirespanv1alpha1.ClusterPeer, _ status.Cluster) Result {
		if bad := unreadable(c, model.ReadExports); bad != nil {
			return *bad
		}
		var ev []string
		for _, e := range c.Exports {
			if cond := meta.FindStatusCondition(e.Status.Conditions, string(mcsv1beta1.ServiceExportConditionConflict)); cond != nil && cond.Status == "True" {
				ev = append(ev, fmt.Sprintf("%s: ServiceExport %s/%s Conflict=True (%s) %s", c.Context, e.Namespace, e.Name, cond.Reason, oneLine(cond.Message)))
			}
		}
		if len(ev) == 0 {
			return Result{Status: Pass, Summary: fmt.Sprintf("no conflict among %d exports", len(c.Exports))}
		}
		return Result{Status: Warn, Summary: "exports conflict with other clusters' exports of the same name; the oldest export's properties win",
			Evidence: ev, Hint: "make the Services of the same name agree (type, ports, session affinity) in every exporting cluster"}
	})
}
