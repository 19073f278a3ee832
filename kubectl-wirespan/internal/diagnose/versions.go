package diagnose

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/wirespan/wirespan/kubectl-wirespan/internal/model"
)

// upgradeHint is what to do about mixed versions.
const upgradeHint = "finish the rolling upgrade: upgrade every cluster's operator and gateways to the same release " +
	"(mixed versions are supported only while an upgrade is under way)"

// component is one binary's reported version in one cluster.
type component struct {
	what    string // "operator" or "gateway <node>"
	version string
}

// reported lists the versions a cluster's binaries report, and notes
// saying why one reports nothing.
func reported(c *model.Cluster) (comps []component, notes []string) {
	v := c.Versions()
	switch {
	case v.Operator != "":
		comps = append(comps, component{"operator", v.Operator})
	case c.Self() == nil:
		notes = append(notes, "no operator version: no self ClusterPeer (see self-clusterpeer)")
	default:
		notes = append(notes, "no operator version: the self ClusterPeer has no status.operatorVersion (an operator older than this plugin)")
	}
	switch {
	case v.Gateway != "":
		comps = append(comps, component{"gateway " + v.GatewayNode, v.Gateway})
	case c.Errors[model.ReadLease] != "":
		notes = append(notes, "no gateway version: cannot read "+c.Errors[model.ReadLease])
	case c.GatewayLease == nil:
		notes = append(notes, "no gateway version: no gateway Lease in --namespace (no gateway has been active; see --gateway-lease)")
	case v.GatewayNode == "":
		notes = append(notes, "no gateway version: the gateway Lease names no holder (a handover under way)")
	default:
		notes = append(notes, "no gateway version: the gateway Lease held by "+v.GatewayNode+" has no wirespan.io/version (a gateway older than this plugin)")
	}
	return comps, notes
}

// checkVersions compares the versions the binaries report of themselves:
// the operator's in the self ClusterPeer's status, the active gateway's on
// the gateway Lease. The version most of them report is taken as the
// clusterset's (ties: the lowest), and every cluster with another one
// warns. A cluster that reports none while others do runs an older
// release; when none reports any, the pods' images are compared instead.
func checkVersions(in *input) []Result {
	comps := map[*model.Cluster][]component{}
	notes := map[*model.Cluster][]string{}
	count := map[string]int{}
	total := 0
	for i := range in.set.Clusters {
		c := &in.set.Clusters[i]
		comps[c], notes[c] = reported(c)
		for _, x := range comps[c] {
			count[x.version]++
			total++
		}
	}
	if total == 0 {
		return checkImages(in, notes)
	}
	ref := mostCommon(count)
	var out []Result
	for i := range in.set.Clusters {
		c := &in.set.Clusters[i]
		out = append(out, versionResult(c, comps[c], notes[c], ref, count[ref], total))
	}
	return out
}

func versionResult(c *model.Cluster, comps []component, notes []string, ref string, refCount, total int) Result {
	majority := fmt.Sprintf("%d of the %d components that report a version run %s", refCount, total, ref)
	if len(comps) == 0 {
		if len(c.Pods) == 0 {
			return Result{Cluster: c.Name(), Status: Skip, Summary: "reports no version, and no Wirespan pods found in --namespace",
				Evidence: prefixed(c.Context, notes)}
		}
		return Result{Cluster: c.Name(), Status: Warn, Summary: "reports no version while other clusters do: it runs an older release",
			Evidence: slices.Concat(prefixed(c.Context, notes), []string{c.Context + ": images: " + podImages(c), majority}), Hint: upgradeHint}
	}
	var parts, differ []string
	for _, x := range comps {
		parts = append(parts, x.what+" "+x.version)
		if x.version != ref {
			differ = append(differ, c.Context+": "+x.what+" runs "+x.version)
		}
	}
	if len(differ) > 0 {
		return Result{Cluster: c.Name(), Status: Warn, Summary: "runs another version than most of the clusterset: " + strings.Join(parts, ", "),
			Evidence: append(differ, majority), Hint: upgradeHint}
	}
	summary := strings.Join(parts, ", ")
	if len(notes) > 0 {
		summary += " (" + strings.Join(notes, "; ") + ")"
	}
	return Result{Cluster: c.Name(), Status: Pass, Summary: summary, Evidence: []string{majority}}
}

// checkImages compares the images of Wirespan's pods across clusters: the
// fallback when no binary reports a version (a clusterset still on a
// release from before they did).
func checkImages(in *input, notes map[*model.Cluster][]string) []Result {
	images := map[*model.Cluster]string{}
	count := map[string]int{}
	for i := range in.set.Clusters {
		c := &in.set.Clusters[i]
		if len(c.Pods) > 0 {
			images[c] = podImages(c)
			count[images[c]]++
		}
	}
	ref := mostCommon(count)
	var out []Result
	for i := range in.set.Clusters {
		c := &in.set.Clusters[i]
		v, ok := images[c]
		switch {
		case !ok:
			out = append(out, Result{Cluster: c.Name(), Status: Skip, Summary: "reports no version, and no Wirespan pods found in --namespace",
				Evidence: prefixed(c.Context, notes[c])})
		case v != ref:
			out = append(out, Result{Cluster: c.Name(), Status: Warn, Summary: "reports no version, and runs other images than most clusters",
				Evidence: []string{c.Context + ": " + v, fmt.Sprintf("%d other clusters: %s", count[ref], ref)}, Hint: upgradeHint})
		default:
			out = append(out, Result{Cluster: c.Name(), Status: Pass, Summary: "reports no version; images " + v})
		}
	}
	return out
}

// mostCommon is the key with the highest count; ties go to the lowest key,
// so the verdict does not depend on map order.
func mostCommon(count map[string]int) string {
	var ref string
	for _, v := range slices.Sorted(maps.Keys(count)) {
		if count[v] > count[ref] {
			ref = v
		}
	}
	return ref
}

func prefixed(context string, lines []string) []string {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		out = append(out, context+": "+l)
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
