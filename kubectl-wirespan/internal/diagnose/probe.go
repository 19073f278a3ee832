package diagnose

import (
	"fmt"
	"net"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/model"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/status"
)

// probeChecks read the active gateway's answer to a ProbeRequest: without
// one, diagnose need not ask (handshake judges without it too).
var probeChecks = []string{"handshake", "path-mtu", "rp-filter", "gossip-members", "dns-answer"}

// NeedsProbe reports whether any of the checks to run (all when only is
// empty) reads a probe's answer.
func NeedsProbe(only []string) bool {
	return len(only) == 0 || slices.ContainsFunc(only, func(c string) bool { return slices.Contains(probeChecks, c) })
}

// answer returns the cluster's probe answer, or nil.
func answer(c *model.Cluster) *wirespanv1alpha1.ProbeRequestStatus {
	if c.Probe == nil || c.Probe.Answer == nil || c.Probe.Answer.Error != "" {
		return nil
	}
	return c.Probe.Answer
}

// probed returns the cluster's probe answer, or the result a check that
// needs one gives without it: SKIP where diagnose did not ask or the
// cluster has no ProbeRequest API, WARN where it asked and got nothing.
// Never FAIL: no answer says nothing about what the probe looks at.
func probed(c *model.Cluster) (*wirespanv1alpha1.ProbeRequestStatus, *Result) {
	p := c.Probe
	if p == nil {
		return nil, &Result{Status: Skip, Summary: "not probed (--probe=false): this check needs the active gateway's answer from its node"}
	}
	ev := []string{c.Context + ": " + p.Detail}
	switch {
	case p.Missing == model.ProbeUnsupported:
		return nil, &Result{Status: Skip, Summary: "this cluster has no ProbeRequest API (a Wirespan release older than this plugin)", Evidence: ev,
			Hint: "upgrade Wirespan: its chart installs the ProbeRequest CRD and its gateways answer them"}
	case p.Missing == model.ProbeForbidden:
		return nil, &Result{Status: Warn, Summary: "cannot create a ProbeRequest through context " + c.Context, Evidence: ev,
			Hint: "grant the kubeconfig user create, get and delete on proberequests.wirespan.io in namespace " + p.Namespace +
				" (a Role and RoleBinding), or run with --probe=false"}
	case p.Missing == model.ProbeTimeout:
		return nil, &Result{Status: Warn, Summary: "the active gateway did not answer the ProbeRequest in time", Evidence: ev,
			Hint: "the active gateway is down, or older than this plugin (it does not answer ProbeRequests): see the dns-endpoint and " +
				"versions checks and the gateway's log; or give a longer --probe-timeout"}
	case p.Missing != "":
		return nil, &Result{Status: Warn, Summary: "no answer to the ProbeRequest", Evidence: ev,
			Hint: "run diagnose again; if it fails the same way, see the error"}
	case p.Answer.Error != "":
		return nil, &Result{Status: Warn, Summary: "gateway " + p.Answer.Node + " could not probe",
			Evidence: []string{fmt.Sprintf("%s: ProbeRequest %s/%s: gateway %s: %s", c.Context, p.Namespace, p.Request, p.Answer.Node, p.Answer.Error)},
			Hint:     "see the log of the gateway on node " + p.Answer.Node}
	}
	return p.Answer, nil
}

// probedAt is when the answer was complete: ages in it count from then.
func probedAt(a *wirespanv1alpha1.ProbeRequestStatus, fallback time.Time) time.Time {
	if a.CompletionTime != nil {
		return a.CompletionTime.Time
	}
	return fallback
}

// peerProbe returns the answer's result for a peer, or nil.
func peerProbe(a *wirespanv1alpha1.ProbeRequestStatus, name string) *wirespanv1alpha1.PeerProbe {
	if a == nil {
		return nil
	}
	for i := range a.Peers {
		if a.Peers[i].Name == name {
			return &a.Peers[i]
		}
	}
	return nil
}

// tunnelUp is the handshake check's subject for one peer: as the probe
// saw it from the node when it probed the peer, else as the ClusterPeer's
// status says.
func tunnelUp(a *wirespanv1alpha1.ProbeRequestStatus, r status.Cluster, name string, now time.Time) bool {
	if pp := peerProbe(a, name); pp != nil && pp.UDP != "" {
		if pp.UDP == wirespanv1alpha1.UDPAnswered {
			return true
		}
		return pp.LastHandshakeTime != nil && probedAt(a, now).Sub(pp.LastHandshakeTime.Time) <= HandshakeMaxAge
	}
	i := slices.IndexFunc(r.Peers, func(p status.Peer) bool { return p.Name == name })
	return i >= 0 && r.Peers[i].Connected == "True" && r.Peers[i].HandshakeAge != nil && r.Peers[i].HandshakeAge.Duration <= HandshakeMaxAge
}

// udpHint says what to do about a peer whose endpoint did not complete a
// handshake, by what the UDP probe saw (pp nil: no probe).
func udpHint(peer string, pp *wirespanv1alpha1.PeerProbe) string {
	if pp == nil || (pp.UDP != wirespanv1alpha1.UDPRefused && pp.UDP != wirespanv1alpha1.UDPNoAnswer) {
		return "check that the peer's endpoint in Git is right and that UDP reaches it (its listen port, through firewalls and NAT); " +
			"a cluster behind NAT needs the other side to have an endpoint"
	}
	host, port, err := net.SplitHostPort(pp.Endpoint)
	if err != nil {
		host, port = pp.Endpoint, "(its port)"
	}
	if pp.UDP == wirespanv1alpha1.UDPRefused {
		return fmt.Sprintf("nothing listens on %s: is %s's gateway running on that node, and is %s its --listen-port?", pp.Endpoint, peer, port)
	}
	return fmt.Sprintf("open UDP %s from this cluster's gateways to %s (firewall, security group), or check that %s has this cluster's key (key-matches, read from %s's context)",
		port, host, peer, peer)
}

// timeOf is a metav1.Time's time, or nil.
func timeOf(t *metav1.Time) *time.Time {
	if t == nil {
		return nil
	}
	return &t.Time
}

// age says how long ago t was, from now, to the second.
func age(t *time.Time, now time.Time) string {
	if t == nil {
		return "never"
	}
	return now.Sub(*t).Round(time.Second).String() + " ago"
}
