package diagnose

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/model"
)

// absent stands for a ClusterPeer a context does not have.
const absent = "(absent)"

// specText is a spec as one comparable line per field.
func specText(s *wirespanv1alpha1.ClusterPeerSpec) []string {
	return []string{
		"publicKey=" + s.PublicKey,
		"endpoints=" + strings.Join(s.Endpoints, ","),
		"allowedCIDRs=" + strings.Join(s.AllowedCIDRs, ","),
	}
}

// checkDrift compares every ClusterPeer's spec across the contexts: the
// same Git folder applied everywhere makes them equal. The version most
// contexts hold is taken as Git's (ties: the first context's), and each
// context that holds another fails.
func checkDrift(in *input) []Result {
	var readable []*model.Cluster
	for i := range in.set.Clusters {
		if _, bad := in.set.Clusters[i].Errors[model.ReadPeers]; !bad {
			readable = append(readable, &in.set.Clusters[i])
		}
	}
	if len(readable) < 2 {
		return []Result{{Cluster: "*", Status: Skip, Summary: "needs two contexts or more (--contexts, --all-contexts) to compare"}}
	}
	names := map[string]bool{}
	for _, c := range readable {
		for _, p := range c.Peers {
			names[p.Name] = true
		}
	}
	drift := map[*model.Cluster][]string{}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		held := map[*model.Cluster]string{}
		count := map[string]int{}
		for _, c := range readable {
			v := absent
			if p := c.Peer(name); p != nil {
				v = strings.Join(specText(&p.Spec), " ")
			}
			held[c] = v
			count[v]++
		}
		ref := held[readable[0]]
		for _, c := range readable {
			if count[held[c]] > count[ref] {
				ref = held[c]
			}
		}
		for _, c := range readable {
			if held[c] != ref {
				drift[c] = append(drift[c], fmt.Sprintf("%s: ClusterPeer %s has %s; %d of %d contexts have %s",
					c.Context, name, held[c], count[ref], len(readable), ref))
			}
		}
	}
	var out []Result
	for _, c := range readable {
		if ev := drift[c]; len(ev) > 0 {
			out = append(out, Result{Cluster: c.Name(), Status: Fail, Summary: "this cluster's ClusterPeers differ from the other clusters'",
				Evidence: ev, Hint: "apply the same ClusterPeer folder from Git to every cluster (Flux, Argo CD, or wirespan-lab apply); " +
					"a ClusterPeer edited by hand in one cluster is drift"})
			continue
		}
		out = append(out, Result{Cluster: c.Name(), Status: Pass, Summary: fmt.Sprintf("the same %d ClusterPeer specs as the other contexts", len(c.Peers))})
	}
	return out
}
