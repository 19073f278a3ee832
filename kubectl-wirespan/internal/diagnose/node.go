package diagnose

import (
	"fmt"
	"slices"
	"strings"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/model"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/status"
)

// The checks below judge what the active gateway saw from its node, in
// its answer to the ProbeRequest diagnose made (model.Probe).

// eachProbed runs judge on every cluster that has a self ClusterPeer and
// an answer from its active gateway; the others get what eachSelf and
// probed give them.
func (in *input) eachProbed(judge func(c *model.Cluster, a *wirespanv1alpha1.ProbeRequestStatus, r status.Cluster) Result) []Result {
	return in.eachSelf(func(c *model.Cluster, _ *wirespanv1alpha1.ClusterPeer, r status.Cluster) Result {
		a, res := probed(c)
		if res != nil {
			return *res
		}
		return judge(c, a, r)
	})
}

// wireGuardOverhead is what the gateway takes off its node's interface
// MTU for the tunnel's (gateway/internal/agent.WireGuardOverhead: the
// IPv6 encapsulation, so that the tunnel fits either way). Lowering the
// interface MTU to a path's MTU therefore always makes the tunnel fit.
const wireGuardOverhead = 80

// checkPathMTU fails where a tunnel does not carry packets of its own
// MTU: the largest don't-fragment echo that crossed it is smaller, or a
// full tunnel packet is larger than the underlay path to the endpoint.
func checkPathMTU(in *input) []Result {
	return in.eachProbed(func(c *model.Cluster, a *wirespanv1alpha1.ProbeRequestStatus, r status.Cluster) Result {
		if len(a.Peers) == 0 {
			return Result{Status: Skip, Summary: "gateway " + a.Node + " probed no peer"}
		}
		var fails, unmeasured, caused, fine, hints []string
		for _, pp := range a.Peers {
			line := fmt.Sprintf("%s: tunnel to %s: path MTU %d, tunnel MTU %d; underlay path MTU %d for %d-byte tunnel packets (overhead %d)",
				c.Context, pp.Name, pp.PathMTU, pp.TunnelMTU, pp.UnderlayMTU, pp.TunnelMTU+pp.Overhead, pp.Overhead)
			if pp.MTUMessage != "" {
				line += ": " + oneLine(pp.MTUMessage)
			}
			if !tunnelUp(a, r, pp.Name, in.set.Now) {
				caused = append(caused, line+"; caused by handshake (no handshake with "+pp.Name+": nothing crosses the tunnel)")
				continue
			}
			if pp.TunnelMTU == 0 || pp.PathMTU == 0 {
				unmeasured = append(unmeasured, line)
				continue
			}
			var why []string
			target := int32(0) // the interface MTU that makes the tunnel fit
			if pp.PathMTU < pp.TunnelMTU {
				why = append(why, fmt.Sprintf("packets of %d to %d bytes are lost in the tunnel", pp.PathMTU+1, pp.TunnelMTU))
				target = pp.PathMTU + wireGuardOverhead
			}
			if pp.UnderlayMTU > 0 && pp.UnderlayMTU < pp.TunnelMTU+pp.Overhead {
				why = append(why, fmt.Sprintf("full tunnel packets (%d bytes) exceed the underlay path's %d: fragmented, or lost where fragments are dropped",
					pp.TunnelMTU+pp.Overhead, pp.UnderlayMTU))
				if target == 0 || pp.UnderlayMTU < target {
					target = pp.UnderlayMTU
				}
			}
			if len(why) == 0 {
				fine = append(fine, line)
				continue
			}
			fails = append(fails, line+": "+strings.Join(why, "; "))
			hints = append(hints, fmt.Sprintf("raise the underlay path MTU towards %s to at least %d (tunnel MTU %d + %d), or lower the gateway nodes' interface MTU to %d (the tunnel's follows it, %d less)",
				pp.Name, pp.TunnelMTU+pp.Overhead, pp.TunnelMTU, pp.Overhead, target, wireGuardOverhead))
		}
		switch {
		case len(fails) > 0:
			return Result{Status: Fail, Summary: "some tunnels lose packets their MTU accepts", Evidence: slices.Concat(fails, unmeasured, caused, fine),
				Hint: strings.Join(dedupe(hints), "; ")}
		case len(unmeasured) > 0:
			return Result{Status: Warn, Summary: "no don't-fragment echo crossed some tunnels that are up: their path MTU is unknown",
				Evidence: slices.Concat(unmeasured, caused, fine),
				Hint:     "the peer's tunnel address must answer ICMP echo from this cluster's gateway: check the peer gateway's firewall, and the gateway's log"}
		case len(caused) > 0:
			return Result{Status: Warn, Summary: "some tunnels could not be measured, for a cause another check reports", Evidence: slices.Concat(caused, fine),
				Hint: "fix what the named check reports"}
		}
		return Result{Status: Pass, Summary: fmt.Sprintf("every tunnel carries packets of its full MTU (%s, measured by gateway %s)", counted(len(a.Peers), "peer"), a.Node),
			Evidence: fine}
	})
}

// rpFilterWords names rp_filter's values.
var rpFilterWords = map[int32]string{0: "off", 1: "strict", 2: "loose"}

// checkRPFilter fails where the kernel's reverse-path filter drops
// packets from a peer's ranges on one of Wirespan's links.
func checkRPFilter(in *input) []Result {
	return in.eachProbed(func(c *model.Cluster, a *wirespanv1alpha1.ProbeRequestStatus, _ status.Cluster) Result {
		var notAsked []string
		for _, w := range a.Warnings {
			notAsked = append(notAsked, fmt.Sprintf("%s: node %s: %s", c.Context, a.Node, oneLine(w)))
		}
		if len(a.ReversePath) == 0 && len(notAsked) > 0 {
			return Result{Status: Warn, Summary: "gateway " + a.Node + " could not ask its kernel about the reverse path",
				Evidence: notAsked, Hint: "see why in the evidence, and the gateway's log on node " + a.Node}
		}
		if len(a.ReversePath) == 0 {
			return Result{Status: Skip, Summary: "gateway " + a.Node + " checked no link (no peer range to check)"}
		}
		var dropped, accepted, hints []string
		for _, rp := range a.ReversePath {
			line := fmt.Sprintf("%s: node %s, link %s, from %s to %s: rp_filter=%d (%s)", c.Context, a.Node, rp.Link, rp.Source, rp.Destination,
				rp.RPFilter, rpFilterWords[rp.RPFilter])
			if rp.Accepted {
				accepted = append(accepted, line+", accepted")
				continue
			}
			line += ", dropped"
			if rp.Message != "" {
				line += ": " + oneLine(rp.Message)
			}
			dropped = append(dropped, line)
			hints = append(hints, "net.ipv4.conf."+rp.Link+".rp_filter=2")
		}
		if len(dropped) == 0 {
			return Result{Status: Pass, Summary: fmt.Sprintf("the kernel accepts packets from every peer range on Wirespan's links (%d checked on %s)", len(accepted), a.Node),
				Evidence: append(accepted, notAsked...)}
		}
		return Result{Status: Fail, Summary: "the kernel's reverse-path filter drops packets from peer ranges on node " + a.Node,
			Evidence: append(append(dropped, accepted...), notAsked...),
			Hint: "Wirespan sets rp_filter=2 (loose) on its links itself: set it (sysctl -w " + strings.Join(dedupe(hints), " ") +
				") and check that the gateway can write /proc/sys (its --sysctl-dir; the chart mounts the host's /proc/sys/net)"}
	})
}

// checkGossip fails where a member the gateway expects has sent no fresh
// authenticated message while the tunnel to it is up: gossip runs inside
// the tunnel, so a down tunnel is the handshake check's subject.
func checkGossip(in *input) []Result {
	return in.eachProbed(func(c *model.Cluster, a *wirespanv1alpha1.ProbeRequestStatus, r status.Cluster) Result {
		if len(a.Gossip) == 0 {
			return Result{Status: Skip, Summary: "gateway " + a.Node + " expects no gossip member (no peer with a key)"}
		}
		now := probedAt(a, in.set.Now)
		var absent, caused, present []string
		var names []string
		for _, m := range a.Gossip {
			node := m.Node
			if node == "" {
				node = "unknown"
			}
			line := fmt.Sprintf("%s: member %s (node %s): last authenticated message %s", c.Context, m.Cluster, node, age(timeOf(m.LastAuthenticatedTime), now))
			switch {
			case m.Present:
				present = append(present, line)
			case !tunnelUp(a, r, m.Cluster, in.set.Now):
				caused = append(caused, line+"; absent, caused by handshake (the tunnel to "+m.Cluster+" is down, and gossip runs inside it)")
			default:
				absent = append(absent, line+"; absent")
				names = append(names, m.Cluster)
			}
		}
		switch {
		case len(absent) > 0:
			return Result{Status: Fail, Summary: "gateway " + a.Node + " hears no authenticated gossip from some clusters whose tunnel is up",
				Evidence: slices.Concat(absent, caused, present),
				Hint: "the tunnel carries the handshake but not gossip from " + strings.Join(names, ", ") + ": check that their active gateways run, " +
					"that gossip's port is open inside the tunnel, and the gateways' wirespan_gossip_refused_total and wirespan_gossip_messages_received_total by reason"}
		case len(caused) > 0:
			return Result{Status: Warn, Summary: "some gossip members are absent, for a cause another check reports", Evidence: slices.Concat(caused, present),
				Hint: "fix what the named check reports"}
		}
		return Result{Status: Pass, Summary: fmt.Sprintf("gateway %s hears every gossip member it expects (%s)", a.Node, counted(len(a.Gossip), "member")), Evidence: present}
	})
}

// counted is "1 peer", "2 peers".
func counted(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
