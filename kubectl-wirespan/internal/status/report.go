package status

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/internal/cidr"
	"github.com/wirespan/wirespan/internal/claims"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/model"
)

// Report is the clusterset as each context sees it.
type Report struct {
	Clusters []Cluster `json:"clusters"`
}

// Cluster is one context's view.
type Cluster struct {
	Context string `json:"context"`
	// Cluster is the cluster's ID, its self ClusterPeer's name; empty when
	// no ClusterPeer says Self (the operator is not running, or the self
	// ClusterPeer is not applied).
	Cluster   string `json:"cluster,omitempty"`
	Peers     []Peer `json:"peers"`
	Exports   int    `json:"exports"`
	Imports   int    `json:"imports"`
	Conflicts int    `json:"conflicts"`
	// Versions are what the operator and the active gateway report; nil
	// when neither reports one.
	Versions *model.Versions   `json:"versions,omitempty"`
	Errors   map[string]string `json:"errors,omitempty"`
}

// Peer is one ClusterPeer as one cluster sees it.
type Peer struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// Ready and Connected are the conditions' status, with Reason and
	// Message of the first one that is not as it should be.
	Ready     string `json:"ready"`
	Connected string `json:"connected,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Message   string `json:"message,omitempty"`
	// ActiveGateway is the Node of the active gateway; Endpoint where
	// the remote cluster's traffic last came from (or Git's first).
	ActiveGateway string `json:"activeGateway,omitempty"`
	Endpoint      string `json:"endpoint,omitempty"`
	// HandshakeAge is rounded to the second; nil before the first one.
	HandshakeAge *metav1.Duration `json:"handshakeAge,omitempty"`
	RxBytes      int64            `json:"rxBytes,omitempty"`
	TxBytes      int64            `json:"txBytes,omitempty"`
	Latency      *metav1.Duration `json:"latency,omitempty"`
	Routed       []string         `json:"routed,omitempty"`
	Refused      []Refusal        `json:"refused,omitempty"`
}

// Refusal is a range that is not routed, and why.
type Refusal struct {
	Range  string `json:"range"`
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

// Build makes the report.
func Build(set model.Clusterset) Report {
	r := Report{Clusters: make([]Cluster, 0, len(set.Clusters))}
	for i := range set.Clusters {
		r.Clusters = append(r.Clusters, buildCluster(&set.Clusters[i], set.Now))
	}
	return r
}

func buildCluster(c *model.Cluster, now time.Time) Cluster {
	out := Cluster{Context: c.Context, Exports: len(c.Exports), Imports: len(c.Imports),
		Conflicts: conflicts(c.Exports), Peers: []Peer{}}
	// Only what status shows: a missing CoreDNS ConfigMap is diagnose's.
	for _, what := range []string{model.ReadPeers, model.ReadExports, model.ReadImports} {
		if msg, ok := c.Errors[what]; ok {
			if out.Errors == nil {
				out.Errors = map[string]string{}
			}
			out.Errors[what] = msg
		}
	}
	if v := c.Versions(); v != (model.Versions{}) {
		out.Versions = &v
	}
	self := c.Self()
	var selfRanges []netip.Prefix
	if self != nil {
		out.Cluster = self.Name
		selfRanges, _ = claims.ParseLoose(slices.Concat(self.Status.PodCIDRs, self.Status.ServiceCIDRs))
	}
	decided := claims.Decide(claims.FromPeers(out.Cluster, selfRanges, c.Peers))
	for i := range c.Peers {
		out.Peers = append(out.Peers, buildPeer(&c.Peers[i], decided, now))
	}
	return out
}

func buildPeer(p *wirespanv1alpha1.ClusterPeer, decided map[string]claims.Decision, now time.Time) Peer {
	out := Peer{Name: p.Name, Role: string(p.Status.Role)}
	if out.Role == "" {
		out.Role = "Unknown"
	}
	ready := model.Condition(p, wirespanv1alpha1.ConditionReady)
	out.Ready = string(ready.Status)
	if p.Status.Role != wirespanv1alpha1.RoleSelf {
		out.Connected = string(model.Condition(p, wirespanv1alpha1.ConditionConnected).Status)
	}
	if bad := firstProblem(p); bad != nil {
		out.Reason, out.Message = bad.Type+"/"+bad.Reason, bad.Message
	}
	if gw := model.ActiveGateway(p); gw != nil {
		out.ActiveGateway = gw.Node
		out.Endpoint = gw.Endpoint
	}
	if t := p.Status.Tunnel; t != nil {
		if t.Endpoint != "" {
			out.Endpoint = t.Endpoint
		}
		if t.LastHandshakeTime != nil {
			out.HandshakeAge = &metav1.Duration{Duration: now.Sub(t.LastHandshakeTime.Time).Round(time.Second)}
		}
		out.RxBytes, out.TxBytes, out.Latency = t.RxBytes, t.TxBytes, t.Latency
	}
	if out.Endpoint == "" && len(p.Spec.Endpoints) > 0 {
		out.Endpoint = p.Spec.Endpoints[0]
	}
	if p.Status.Role == wirespanv1alpha1.RoleSelf {
		out.Routed = slices.Concat(p.Status.PodCIDRs, p.Status.ServiceCIDRs)
		return out
	}
	// A peer that has announced nothing has nothing routed or refused yet:
	// ClaimedRanges would judge its allowedCIDRs, which are not claims.
	if learned, _ := claims.LearnedRanges(p); len(learned) > 0 {
		d := decided[p.Name]
		out.Routed = cidr.Strings(d.Accepted)
		for _, rf := range d.Refused {
			out.Refused = append(out.Refused, Refusal{Range: rf.Prefix.String(), Reason: string(rf.Reason), Detail: rf.Detail})
		}
	}
	return out
}

// goodStatus is each condition's healthy status.
var goodStatus = []struct {
	typ  string
	want metav1.ConditionStatus
}{
	{wirespanv1alpha1.ConditionKeyMatches, metav1.ConditionTrue},
	{wirespanv1alpha1.ConditionCIDRsDiscovered, metav1.ConditionTrue},
	{wirespanv1alpha1.ConditionCIDRsAccepted, metav1.ConditionTrue},
	{wirespanv1alpha1.ConditionCIDRConflict, metav1.ConditionFalse},
	{wirespanv1alpha1.ConditionConnected, metav1.ConditionTrue},
	{wirespanv1alpha1.ConditionReady, metav1.ConditionTrue},
}

// firstProblem returns the first condition present that is not healthy,
// most specific first, so the table says why rather than "NotReady".
func firstProblem(p *wirespanv1alpha1.ClusterPeer) *metav1.Condition {
	for _, g := range goodStatus {
		if c := meta.FindStatusCondition(p.Status.Conditions, g.typ); c != nil && c.Status != g.want {
			return c
		}
	}
	return nil
}

// conflicts counts exports whose Conflict condition is True.
func conflicts(exports []mcsv1beta1.ServiceExport) int {
	n := 0
	for i := range exports {
		if meta.IsStatusConditionTrue(exports[i].Status.Conditions, string(mcsv1beta1.ServiceExportConditionConflict)) {
			n++
		}
	}
	return n
}

// join is a list for a table cell.
func join(values []string) string {
	if len(values) == 0 {
		return "-"
	}
	return strings.Join(values, ",")
}
