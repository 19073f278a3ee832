package diagnose

import (
	"cmp"
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

// checkVersions compares the images of Wirespan's pods across clusters.
// The binaries expose no version of their own yet, so an install that
// runs them outside pods cannot be checked.
func checkVersions(in *input) []Result {
	images := map[*model.Cluster]string{}
	count := map[string]int{}
	for i := range in.set.Clusters {
		c := &in.set.Clusters[i]
		if len(c.Pods) == 0 {
			continue
		}
		v := podImages(c)
		images[c] = v
		count[v]++
	}
	if len(images) == 0 {
		return []Result{{Cluster: "*", Status: Skip,
			Summary: "no Wirespan pods found in --namespace: the binaries run outside pods, and expose no version of their own yet"}}
	}
	var ref string
	for _, v := range slices.Sorted(maps.Keys(count)) {
		if count[v] > count[ref] {
			ref = v
		}
	}
	var out []Result
	for i := range in.set.Clusters {
		c := &in.set.Clusters[i]
		v, ok := images[c]
		switch {
		case !ok:
			out = append(out, Result{Cluster: c.Name(), Status: Skip, Summary: "no Wirespan pods in --namespace"})
		case v != ref:
			out = append(out, Result{Cluster: c.Name(), Status: Warn, Summary: "runs other images than most clusters",
				Evidence: []string{c.Context + ": " + v, fmt.Sprintf("%d other clusters: %s", count[ref], ref)},
				Hint:     "finish the upgrade: mixed versions are supported only during a rolling upgrade"})
		default:
			out = append(out, Result{Cluster: c.Name(), Status: Pass, Summary: v})
		}
	}
	return out
}

// podImages is "operator=<image> gateway=<image>", each component's
// distinct images sorted.
func podImages(c *model.Cluster) string {
	byComp := map[string][]string{}
	for _, p := range c.Pods {
		comp := cmp.Or(p.Labels["app.kubernetes.io/component"], p.Name)
		for _, ctr := range p.Spec.Containers {
			if !slices.Contains(byComp[comp], ctr.Image) {
				byComp[comp] = append(byComp[comp], ctr.Image)
			}
		}
	}
	var parts []string
	for _, comp := range slices.Sorted(maps.Keys(byComp)) {
		slices.Sort(byComp[comp])
		parts = append(parts, comp+"="+strings.Join(byComp[comp], ","))
	}
	return strings.Join(parts, " ")
}
