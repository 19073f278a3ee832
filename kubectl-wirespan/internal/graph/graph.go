// Package graph draws a clusterset as Graphviz DOT: one box per cluster
// with its ranges and gateways, one edge per pair of clusters between
// their active gateways with the tunnel's state and latency as each side
// reports it, and each refused claim in red. It is pure: the command pipes
// the text to `dot -Tsvg` when asked for SVG.
package graph

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/model"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/status"
)

// Colors of tunnel edges.
const (
	colourUp   = "darkgreen"
	colourHalf = "orange"
	colourDown = "red"
)

// DOT returns the clusterset as a DOT digraph. Views of the same pair from
// several contexts are merged: an edge is up when every side that was read
// says Connected.
func DOT(set model.Clusterset) string {
	g := collect(set)
	var b strings.Builder
	contexts := make([]string, 0, len(set.Clusters))
	for _, c := range set.Clusters {
		contexts = append(contexts, c.Context)
	}
	fmt.Fprintf(&b, "digraph clusterset {\n")
	fmt.Fprintf(&b, "  graph [rankdir=LR, fontname=Helvetica, label=%s, labelloc=t];\n",
		quote("Wirespan clusterset, read through "+strings.Join(contexts, ", ")))
	b.WriteString("  node [shape=box, style=rounded, fontname=Helvetica];\n  edge [dir=none, fontname=Helvetica, fontsize=10];\n")
	for _, name := range g.names {
		writeCluster(&b, g.clusters[name])
	}
	for _, e := range g.edges() {
		writeEdge(&b, e)
	}
	b.WriteString("}\n")
	return b.String()
}

type cluster struct {
	name     string
	ranges   []string
	gateways []wirespanv1alpha1.GatewayStatus
	// endpoints are Git's, shown when no gateway is reported.
	endpoints []string
	// refused are claims of this cluster that some cluster refuses.
	refused []refused
}

type refused struct {
	by, rng, reason string
}

// view is what cluster from says about its tunnel to cluster to.
type view struct {
	from, to  string
	connected bool
	reason    string
	latency   *time.Duration
	handshake *time.Duration
}

type graph struct {
	names    []string
	clusters map[string]*cluster
	views    map[[2]string]view
}

func collect(set model.Clusterset) *graph {
	g := &graph{clusters: map[string]*cluster{}, views: map[[2]string]view{}}
	get := func(name string) *cluster {
		if c, ok := g.clusters[name]; ok {
			return c
		}
		c := &cluster{name: name}
		g.clusters[name] = c
		g.names = append(g.names, name)
		return c
	}
	report := status.Build(set)
	for i := range set.Clusters {
		mc, rc := &set.Clusters[i], report.Clusters[i]
		from := rc.Cluster
		for j := range mc.Peers {
			p, rp := &mc.Peers[j], rc.Peers[j]
			c := get(p.Name)
			// A cluster's own view of itself is the authority on its
			// ranges; a remote view fills in until one is read. Gateways
			// are written on remote ClusterPeers (learned over gossip),
			// so any view that has them will do.
			if p.Status.Role == wirespanv1alpha1.RoleSelf || c.ranges == nil {
				c.ranges = slices.Concat(p.Status.PodCIDRs, p.Status.ServiceCIDRs)
				c.endpoints = p.Spec.Endpoints
			}
			if len(c.gateways) == 0 {
				c.gateways = p.Status.Gateways
			}
			for _, rf := range rp.Refused {
				c.refused = append(c.refused, refused{by: from, rng: rf.Range, reason: rf.Reason})
			}
			if from == "" || p.Status.Role == wirespanv1alpha1.RoleSelf {
				continue
			}
			v := view{from: from, to: p.Name, connected: rp.Connected == "True",
				reason: model.Condition(p, wirespanv1alpha1.ConditionConnected).Reason}
			if rp.Latency != nil {
				v.latency = &rp.Latency.Duration
			}
			if rp.HandshakeAge != nil {
				v.handshake = &rp.HandshakeAge.Duration
			}
			g.views[[2]string{from, p.Name}] = v
		}
	}
	slices.Sort(g.names)
	return g
}

// edge is one pair of clusters and what each side read says.
type edge struct {
	a, b  string
	views []view
	gwA   string
	gwB   string
}

func (g *graph) edges() []edge {
	var out []edge
	for i, a := range g.names {
		for _, b := range g.names[i+1:] {
			e := edge{a: a, b: b, gwA: nodeID(g.clusters[a]), gwB: nodeID(g.clusters[b])}
			for _, k := range [][2]string{{a, b}, {b, a}} {
				if v, ok := g.views[k]; ok {
					e.views = append(e.views, v)
				}
			}
			if len(e.views) > 0 {
				out = append(out, e)
			}
		}
	}
	return out
}

func writeCluster(b *strings.Builder, c *cluster) {
	fmt.Fprintf(b, "  subgraph %s {\n", quote("cluster_"+c.name))
	fmt.Fprintf(b, "    label=%s;\n", quote(c.name+"\n"+strings.Join(c.ranges, ", ")))
	if len(c.gateways) == 0 {
		// No gateway has written status.gateways: one node stands for
		// the cluster's gateways, labeled with Git's endpoints.
		where := "no endpoint (dials out)"
		if len(c.endpoints) > 0 {
			where = strings.Join(c.endpoints, "\n")
		}
		fmt.Fprintf(b, "    %s [label=%s, style=dashed];\n", quote(nodeID(c)), quote("gateway\n"+where))
	}
	for _, gw := range c.gateways {
		label, style := gw.Node, "rounded"
		if gw.Active {
			label += "\nactive gateway"
			style = "rounded,bold"
		}
		if gw.Endpoint != "" {
			label += "\n" + gw.Endpoint
		}
		fmt.Fprintf(b, "    %s [label=%s, style=%s];\n", quote(c.name+"/"+gw.Node), quote(label), quote(style))
	}
	slices.SortFunc(c.refused, func(x, y refused) int {
		return cmp.Or(cmp.Compare(x.rng, y.rng), cmp.Compare(x.by, y.by))
	})
	for _, rf := range c.refused {
		fmt.Fprintf(b, "    %s [label=%s, color=red, fontcolor=red, shape=note];\n",
			quote(c.name+"/refused/"+rf.rng+"/"+rf.by), quote(rf.rng+"\nrefused by "+rf.by+": "+rf.reason))
	}
	b.WriteString("  }\n")
}

func writeEdge(b *strings.Builder, e edge) {
	up := 0
	var parts []string
	for _, v := range e.views {
		s := v.from + "→" + v.to + ": "
		if v.connected {
			up++
			s += "up"
		} else {
			s += "down"
			if v.reason != "" {
				s += " (" + v.reason + ")"
			}
		}
		if v.latency != nil {
			s += ", " + v.latency.String()
		}
		if v.handshake != nil {
			s += ", handshake " + duration.HumanDuration(*v.handshake) + " ago"
		}
		parts = append(parts, s)
	}
	colour, style := colourDown, "dashed"
	switch up {
	case len(e.views):
		colour, style = colourUp, "solid"
	case 0:
	default:
		colour = colourHalf
	}
	fmt.Fprintf(b, "  %s -> %s [label=%s, color=%s, fontcolor=%s, style=%s];\n",
		quote(e.gwA), quote(e.gwB), quote(strings.Join(parts, "\n")), colour, colour, style)
}

// nodeID is the node an edge to the cluster starts at: its active
// gateway, or the placeholder when none is reported.
func nodeID(c *cluster) string {
	for _, gw := range c.gateways {
		if gw.Active {
			return c.name + "/" + gw.Node
		}
	}
	if len(c.gateways) > 0 {
		return c.name + "/" + c.gateways[0].Node
	}
	return c.name + "/gateway"
}

// quote makes a DOT string; a newline becomes DOT's centered line break.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
