package diagnose

import (
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/internal/claims"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/model"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/status"
)

// HandshakeMaxAge is how old a tunnel's last handshake may be. WireGuard
// renews a session every 2 minutes while packets flow, and the gateways
// probe each other through every tunnel, so a live tunnel never gets
// past it; the gateway's wirespan_gateway_peers_up uses the same bound.
const HandshakeMaxAge = 3 * time.Minute

// each runs judge on every cluster whose ClusterPeers could be read; the
// others get WARN.
func (in *input) each(judge func(i int, c *model.Cluster) Result) []Result {
	var out []Result
	for i := range in.set.Clusters {
		c := &in.set.Clusters[i]
		if bad := unreadable(c, model.ReadPeers); bad != nil {
			out = append(out, *bad)
			continue
		}
		out = append(out, judge(i, c))
	}
	return out
}

// eachSelf runs judge on every cluster that has a self ClusterPeer; the
// others get SKIP (self-clusterpeer fails for them).
func (in *input) eachSelf(judge func(c *model.Cluster, self *wirespanv1alpha1.ClusterPeer, r status.Cluster) Result) []Result {
	report := status.Build(in.set)
	return in.each(func(i int, c *model.Cluster) Result {
		self := c.Self()
		if self == nil {
			return Result{Cluster: c.Context, Status: Skip, Summary: "no self ClusterPeer (see self-clusterpeer)"}
		}
		r := judge(c, self, report.Clusters[i])
		r.Cluster = self.Name
		return r
	})
}

func checkSelf(in *input) []Result {
	return in.each(func(_ int, c *model.Cluster) Result {
		if self := c.Self(); self != nil {
			return Result{Cluster: self.Name, Status: Pass,
				Summary: fmt.Sprintf("ClusterPeer %s is this cluster's (status.role Self)", self.Name)}
		}
		return Result{Cluster: c.Context, Status: Fail,
			Summary:  fmt.Sprintf("no ClusterPeer of context %s has status.role Self", c.Context),
			Evidence: []string{fmt.Sprintf("%s: %d ClusterPeers, none with role Self", c.Context, len(c.Peers))},
			Hint: "the operator marks its own ClusterPeer Self: check it runs (kubectl -n wirespan-system get pods) and that " +
				"the ClusterPeer named by its --cluster-id is applied; until then it logs the manifest to apply"}
	})
}

func checkKeys(in *input) []Result {
	return in.eachSelf(func(c *model.Cluster, self *wirespanv1alpha1.ClusterPeer, _ status.Cluster) Result {
		cond := model.Condition(self, wirespanv1alpha1.ConditionKeyMatches)
		ev := []string{fmt.Sprintf("%s: ClusterPeer %s KeyMatches=%s (%s) %s", c.Context, self.Name, cond.Status, cond.Reason, oneLine(cond.Message)),
			fmt.Sprintf("%s: spec.publicKey %q, status.publicKey %q", c.Context, self.Spec.PublicKey, self.Status.PublicKey)}
		switch {
		case cond.Status == metav1.ConditionTrue && self.Spec.PublicKey == self.Status.PublicKey:
			return Result{Status: Pass, Summary: "spec.publicKey in Git is the key the gateways use"}
		case cond.Status == metav1.ConditionUnknown:
			return Result{Status: Warn, Summary: "the operator has not said whether the key matches yet", Evidence: ev,
				Hint: "wait for the operator, or look at its log"}
		}
		hint := "put publicKey: " + self.Status.PublicKey + " in ClusterPeer " + self.Name + " in Git and apply the folder to every cluster"
		if self.Status.PublicKey == "" {
			hint = "the operator shows no key: " + oneLine(cond.Message)
		}
		return Result{Status: Fail, Summary: "spec.publicKey in Git is not the key " + self.Name + "'s gateways use: no cluster can complete a handshake with it",
			Evidence: ev, Hint: hint}
	})
}

func checkAllowed(in *input) []Result {
	return in.eachSelf(func(c *model.Cluster, self *wirespanv1alpha1.ClusterPeer, r status.Cluster) Result {
		var ev, hints []string
		refused := func(owner, rng, reason, detail string) {
			ev = append(ev, fmt.Sprintf("%s: %s refuses %s of %s: %s (%s)", c.Context, self.Name, rng, owner, reason, detail))
			if reason == string(claims.ReasonOutsideAllowedCIDRs) || reason == string(claims.ReasonNoAllowedCIDRs) {
				hints = append(hints, "add "+rng+" to spec.allowedCIDRs of ClusterPeer "+owner+" in Git, if it is "+owner+"'s")
			} else {
				hints = append(hints, rng+" is never routed ("+reason+"): "+owner+" must not claim it")
			}
		}
		// This cluster's own ranges, judged as every other cluster judges
		// them (the operator's CIDRsAccepted on the self ClusterPeer).
		if cond := model.Condition(self, wirespanv1alpha1.ConditionCIDRsAccepted); cond.Status == metav1.ConditionFalse {
			ev = append(ev, fmt.Sprintf("%s: ClusterPeer %s (self) CIDRsAccepted=False (%s) %s", c.Context, self.Name, cond.Reason, oneLine(cond.Message)))
		}
		allowed, _ := claims.ParseLoose(self.Spec.AllowedCIDRs)
		own, _ := claims.ParseLoose(slices.Concat(self.Status.PodCIDRs, self.Status.ServiceCIDRs))
		for _, rf := range claims.Check(claims.Claimer{Name: self.Name, Allowed: allowed, Claims: own}, nil).Refused {
			refused(self.Name, rf.Prefix.String(), string(rf.Reason), rf.Detail)
		}
		for _, p := range r.Peers {
			for _, rf := range p.Refused {
				if rf.Reason != string(claims.ReasonOverlap) { // the overlaps check's subject
					refused(p.Name, rf.Range, rf.Reason, rf.Detail)
				}
			}
		}
		if len(ev) == 0 {
			return Result{Status: Pass, Summary: "every claimed range is allowed"}
		}
		if len(hints) == 0 {
			hints = append(hints, "fix "+self.Name+"'s spec.allowedCIDRs in Git as its CIDRsAccepted condition says")
		}
		return Result{Status: Fail, Summary: "some ranges are refused and not routed", Evidence: ev, Hint: strings.Join(dedupe(hints), "; ")}
	})
}

func checkOverlaps(in *input) []Result {
	return in.eachSelf(func(c *model.Cluster, _ *wirespanv1alpha1.ClusterPeer, _ status.Cluster) Result {
		var ev []string
		for i := range c.Peers {
			p := &c.Peers[i]
			if cond := model.Condition(p, wirespanv1alpha1.ConditionCIDRConflict); cond.Status == metav1.ConditionTrue {
				ev = append(ev, fmt.Sprintf("%s: ClusterPeer %s CIDRConflict=True: %s", c.Context, p.Name, oneLine(cond.Message)))
			}
		}
		if len(ev) == 0 {
			return Result{Status: Pass, Summary: "no ranges overlap"}
		}
		return Result{Status: Fail, Summary: "ranges overlap and are not routed", Evidence: ev,
			Hint: "give each cluster its own pod and Service ranges; overlapping ranges are never routed"}
	})
}

func checkHandshakes(in *input) []Result {
	selfKeys := map[string]string{} // cluster → the key its gateways use, where its context was read
	for i := range in.set.Clusters {
		if s := in.set.Clusters[i].Self(); s != nil {
			selfKeys[s.Name] = s.Status.PublicKey
		}
	}
	return in.eachSelf(func(c *model.Cluster, self *wirespanv1alpha1.ClusterPeer, r status.Cluster) Result {
		var fails, caused, recovered, hints []string
		a := answer(c)
		for _, p := range r.Peers {
			if p.Role == string(wirespanv1alpha1.RoleSelf) {
				continue
			}
			if p.Connected == "True" && p.HandshakeAge != nil && p.HandshakeAge.Duration <= HandshakeMaxAge {
				continue
			}
			line := fmt.Sprintf("%s: tunnel to %s: Connected=%s, %s", c.Context, p.Name, p.Connected, handshakeWords(p))
			peer := c.Peer(p.Name)
			if cause := handshakeCause(self, peer, selfKeys); cause != "" {
				caused = append(caused, line+"; caused by "+cause)
				continue
			}
			conn := model.Condition(peer, wirespanv1alpha1.ConditionConnected)
			line += " (" + conn.Reason + ") " + oneLine(conn.Message)
			// The gateway's probe, when there is one, tells a closed port
			// from a silent one, and sees a handshake the status has not
			// caught up with.
			if pp := peerProbe(a, p.Name); pp != nil && pp.UDP != "" {
				line += fmt.Sprintf("; probe from %s to %s: udp %s: %s", a.Node, pp.Endpoint, pp.UDP, oneLine(pp.UDPMessage))
				if pp.UDP == wirespanv1alpha1.UDPAnswered {
					recovered = append(recovered, fmt.Sprintf("%s, last handshake %s", line, age(timeOf(pp.LastHandshakeTime), probedAt(a, in.set.Now))))
					continue
				}
				hints = append(hints, udpHint(p.Name, pp))
			} else {
				hints = append(hints, udpHint(p.Name, nil))
			}
			fails = append(fails, line)
		}
		switch {
		case len(fails) > 0:
			return Result{Status: Fail, Summary: "no recent handshake with some peers", Evidence: slices.Concat(fails, recovered, caused),
				Hint: strings.Join(dedupe(hints), "; ")}
		case len(recovered) > 0:
			return Result{Status: Warn, Summary: "some tunnels had no recent handshake until the gateway's probe completed one", Evidence: slices.Concat(recovered, caused),
				Hint: "the peer answered during the probe, so the tunnel works now: the ClusterPeer's status had not caught up, or the tunnel comes and goes; " +
					"run diagnose again in a minute, and see the gateway's log if it is down again"}
		case len(caused) > 0:
			return Result{Status: Warn, Summary: "no recent handshake with some peers, for a cause another check reports", Evidence: caused,
				Hint: "fix what the named check reports"}
		}
		return Result{Status: Pass, Summary: fmt.Sprintf("every tunnel had a handshake in the last %s", HandshakeMaxAge)}
	})
}

// handshakeCause names another check whose subject explains why a tunnel
// is down, or "".
func handshakeCause(self, peer *wirespanv1alpha1.ClusterPeer, selfKeys map[string]string) string {
	conn := model.Condition(peer, wirespanv1alpha1.ConditionConnected)
	switch {
	case conn.Reason == wirespanv1alpha1.ReasonSelfKeyMismatch ||
		model.Condition(self, wirespanv1alpha1.ConditionKeyMatches).Status == metav1.ConditionFalse:
		return "key-matches (this cluster's key in Git is wrong)"
	case selfKeys[peer.Name] != "" && selfKeys[peer.Name] != peer.Spec.PublicKey:
		return "key-matches (" + peer.Name + "'s key in Git is not the key it uses)"
	case conn.Reason == wirespanv1alpha1.ReasonCIDRsRefused:
		return "allowed-cidrs (every range of " + peer.Name + " is refused)"
	}
	return ""
}

func handshakeWords(p status.Peer) string {
	if p.HandshakeAge == nil {
		return "no handshake yet"
	}
	return "last handshake " + p.HandshakeAge.Duration.String() + " ago"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func dedupe(values []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range values {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
