package peerstatus

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/internal/cidr"
	"github.com/wirespan/wirespan/internal/claims"
)

// Source says where a family of the self cluster's ranges came from.
type Source string

const (
	// SourceNone means nothing was found.
	SourceNone Source = ""
	// SourceFlag is the operator's --pod-cidrs or --service-cidrs flag.
	SourceFlag Source = "flag"
	// SourceCluster is Node.spec.podCIDRs or ServiceCIDR objects.
	SourceCluster Source = "cluster"
)

// Discovery is what the operator found out about its own cluster's ranges.
type Discovery struct {
	PodCIDRs      []netip.Prefix
	ServiceCIDRs  []netip.Prefix
	PodSource     Source
	ServiceSource Source
	// PodDetail and ServiceDetail say, for people, what was read: "3 Nodes",
	// "ServiceCIDR kubernetes".
	PodDetail     string
	ServiceDetail string
}

// Key is the state of the cluster key Secret.
type Key struct {
	// PublicKey is the public half of the key in use; empty when the Secret
	// is missing or invalid.
	PublicKey string
	// SecretName is namespace/name of the Secret, for messages.
	SecretName string
	// Reason and Message explain an empty PublicKey, with a KeyMatches
	// reason such as ReasonKeySecretInvalid.
	Reason  string
	Message string
}

// Inputs is everything the statuses are computed from.
type Inputs struct {
	ClusterID string
	Peers     []wirespanv1alpha1.ClusterPeer
	Discovery Discovery
	Key       Key
	// Now stamps conditions whose status changes.
	Now metav1.Time
	// OperatorVersion is this operator's version, published on the self
	// ClusterPeer.
	OperatorVersion string
}

// Result is the computed status of every peer, by name, the number of
// overlapping range pairs found, and the number of refused claims by
// reason, for metrics.
type Result struct {
	Statuses map[string]wirespanv1alpha1.ClusterPeerStatus
	Overlaps int
	Refused  map[claims.Reason]int
}

// Compute returns the desired status of every peer in in.Peers. Which
// claims are accepted is claims.Decide's decision, the one the gateways
// route by.
func Compute(in Inputs) Result {
	decided := claims.Decide(claims.FromPeers(in.ClusterID, concat(in.Discovery.PodCIDRs, in.Discovery.ServiceCIDRs), in.Peers))
	res := Result{Statuses: make(map[string]wirespanv1alpha1.ClusterPeerStatus, len(in.Peers)), Refused: map[claims.Reason]int{}}
	for _, d := range decided {
		res.Overlaps += len(d.Overlaps)
	}
	res.Overlaps /= 2 // every pair is listed on both of its peers
	for i := range in.Peers {
		// Counted as the conditions show them: a peer that has announced
		// nothing has no claims refused, whatever its allowedCIDRs.
		if p := &in.Peers[i]; p.Name != in.ClusterID {
			if learned, _ := claims.LearnedRanges(p); len(learned) > 0 {
				for r, n := range claims.Count(decided[p.Name].Refused) {
					res.Refused[r] += n
				}
			}
		}
	}
	for i := range in.Peers {
		p := &in.Peers[i]
		if p.Name == in.ClusterID {
			res.Statuses[p.Name] = selfStatus(p, in, decided[p.Name].Overlaps)
		} else {
			res.Statuses[p.Name] = remoteStatus(p, in, decided[p.Name])
		}
	}
	return res
}

func selfStatus(p *wirespanv1alpha1.ClusterPeer, in Inputs, overlaps []cidr.Overlap) wirespanv1alpha1.ClusterPeerStatus {
	st := p.Status.DeepCopy()
	st.Role = wirespanv1alpha1.RoleSelf
	st.PublicKey = in.Key.PublicKey
	st.OperatorVersion = in.OperatorVersion
	st.PodCIDRs = cidr.Strings(in.Discovery.PodCIDRs)
	st.ServiceCIDRs = cidr.Strings(in.Discovery.ServiceCIDRs)
	st.Tunnel = nil
	st.ObservedGeneration = p.Generation
	meta.RemoveStatusCondition(&st.Conditions, wirespanv1alpha1.ConditionConnected)

	set := conditionSetter(st, p.Generation, in.Now)
	set(discoveredCondition(in.Discovery))
	set(keyCondition(p, in.Key))
	allowed, _ := claims.ParseLoose(p.Spec.AllowedCIDRs)
	discovered := concat(in.Discovery.PodCIDRs, in.Discovery.ServiceCIDRs)
	self := claims.Check(claims.Claimer{Name: p.Name, Allowed: allowed, Claims: discovered}, nil)
	set(acceptedCondition(accepted{
		claims: discovered, decision: self, allowed: allowed,
		what: "this cluster's discovered ranges", consequence: "other clusters will refuse them",
	}))
	set(conflictCondition(overlaps))
	set(readyCondition(st.Conditions, false, ""))
	return *st
}

func remoteStatus(p *wirespanv1alpha1.ClusterPeer, in Inputs, d claims.Decision) wirespanv1alpha1.ClusterPeerStatus {
	st := p.Status.DeepCopy()
	if st.Role == wirespanv1alpha1.RoleSelf {
		// The cluster ID changed: what was discovered here is not what the
		// peer announced.
		st.PodCIDRs, st.ServiceCIDRs = nil, nil
	}
	st.Role = wirespanv1alpha1.RoleRemote
	// Like the key: what this cluster's operator runs says nothing of
	// the remote cluster (it was the self ClusterPeer before an ID change).
	st.PublicKey = ""
	st.OperatorVersion = ""
	st.ObservedGeneration = p.Generation
	meta.RemoveStatusCondition(&st.Conditions, wirespanv1alpha1.ConditionKeyMatches)
	meta.RemoveStatusCondition(&st.Conditions, wirespanv1alpha1.ConditionCIDRsDiscovered)

	set := conditionSetter(st, p.Generation, in.Now)
	learned, garbage := claims.LearnedRanges(p)
	allowed, _ := claims.ParseLoose(p.Spec.AllowedCIDRs)
	if len(learned) == 0 {
		// Until the peer announces ranges, its allowedCIDRs stand in for
		// them in Decide; they are not claims to judge here.
		d.Refused = nil
	}
	set(acceptedCondition(accepted{
		claims: learned, garbage: garbage, decision: d, allowed: allowed,
		what: "announced ranges", consequence: "they are not routed",
	}))
	set(conflictCondition(d.Overlaps))
	blocker := ""
	if p.Spec.PublicKey == "" {
		blocker = "spec.publicKey is empty, so no tunnel can be built; put the key from this cluster's self ClusterPeer status.publicKey in Git"
	}
	set(readyCondition(st.Conditions, true, blocker))
	return *st
}

// conditionSetter returns a function that sets a condition on st, stamping
// the peer's generation and keeping the transition time when the status of
// the condition does not change.
func conditionSetter(st *wirespanv1alpha1.ClusterPeerStatus, generation int64, now metav1.Time) func(metav1.Condition) {
	return func(c metav1.Condition) {
		c.ObservedGeneration = generation
		c.LastTransitionTime = now
		meta.SetStatusCondition(&st.Conditions, c)
	}
}

func discoveredCondition(d Discovery) metav1.Condition {
	c := metav1.Condition{Type: wirespanv1alpha1.ConditionCIDRsDiscovered}
	switch {
	case len(d.PodCIDRs) == 0:
		c.Status, c.Reason = metav1.ConditionFalse, wirespanv1alpha1.ReasonNoPodCIDRs
		c.Message = "no Node has spec.podCIDRs; if the CNI manages pod addresses itself, set the operator's --pod-cidrs flag"
	case len(d.ServiceCIDRs) == 0:
		c.Status, c.Reason = metav1.ConditionFalse, wirespanv1alpha1.ReasonNoServiceCIDRs
		c.Message = "no networking.k8s.io ServiceCIDR object exists; set the operator's --service-cidrs flag"
	default:
		c.Status, c.Reason = metav1.ConditionTrue, wirespanv1alpha1.ReasonDiscovered
		if d.PodSource == SourceFlag || d.ServiceSource == SourceFlag {
			c.Reason = wirespanv1alpha1.ReasonOverridden
		}
		c.Message = fmt.Sprintf("pod CIDRs from %s; Service CIDRs from %s", describe(d.PodSource, d.PodDetail, "--pod-cidrs"),
			describe(d.ServiceSource, d.ServiceDetail, "--service-cidrs"))
	}
	return c
}

func describe(s Source, detail, flag string) string {
	if s == SourceFlag {
		return "the " + flag + " flag"
	}
	return detail
}

func keyCondition(p *wirespanv1alpha1.ClusterPeer, k Key) metav1.Condition {
	c := metav1.Condition{Type: wirespanv1alpha1.ConditionKeyMatches, Status: metav1.ConditionFalse}
	switch {
	case k.PublicKey == "":
		c.Status, c.Reason, c.Message = metav1.ConditionUnknown, k.Reason, k.Message
		if k.Reason == wirespanv1alpha1.ReasonKeySecretInvalid {
			c.Status = metav1.ConditionFalse
		}
	case p.Spec.PublicKey == "":
		c.Reason = wirespanv1alpha1.ReasonKeyNotSet
		c.Message = fmt.Sprintf("spec.publicKey is empty; put publicKey: %s in Git", k.PublicKey)
	case p.Spec.PublicKey != k.PublicKey:
		c.Reason = wirespanv1alpha1.ReasonKeyMismatch
		c.Message = fmt.Sprintf("spec.publicKey %s is not the key in Secret %s; put publicKey: %s in Git, or replace the Secret's privateKey with the matching private key",
			p.Spec.PublicKey, k.SecretName, k.PublicKey)
	default:
		c.Status, c.Reason = metav1.ConditionTrue, wirespanv1alpha1.ReasonKeyMatches
		c.Message = fmt.Sprintf("spec.publicKey is the key in Secret %s", k.SecretName)
	}
	return c
}

// accepted is what the CIDRsAccepted condition is computed from.
type accepted struct {
	claims   []netip.Prefix
	garbage  []string // status entries that are not CIDRs
	decision claims.Decision
	allowed  []netip.Prefix
	// what names the claims, consequence says what refusal means, in the
	// message.
	what, consequence string
}

// acceptedCondition says which claims are refused on their own, and why.
// Overlaps are the CIDRConflict condition's. When the fix is in Git, the
// message says what to put there, as KeyMatches does for the key.
func acceptedCondition(a accepted) metav1.Condition {
	c := metav1.Condition{Type: wirespanv1alpha1.ConditionCIDRsAccepted, Status: metav1.ConditionFalse}
	refused := slices.DeleteFunc(slices.Clone(a.decision.Refused), func(r claims.Refusal) bool { return r.Reason == claims.ReasonOverlap })
	notAllowed := claims.Prefixes(refused, claims.ReasonNoAllowedCIDRs, claims.ReasonOutsideAllowedCIDRs)
	switch {
	case len(a.allowed) == 0 && len(a.claims) == 0:
		c.Reason = wirespanv1alpha1.ReasonNoAllowedCIDRs
		c.Message = "spec.allowedCIDRs is empty, which accepts nothing; put allowedCIDRs in Git with the cluster's pod and Service CIDRs"
	case len(refused) > 0 || len(a.garbage) > 0:
		c.Reason = wirespanv1alpha1.ReasonNeverRouted
		if len(notAllowed) > 0 {
			c.Reason = wirespanv1alpha1.ReasonOutsideAllowedCIDRs
		}
		if len(a.allowed) == 0 {
			c.Reason = wirespanv1alpha1.ReasonNoAllowedCIDRs
		}
		c.Message = refusedMessage(a, refused, notAllowed)
	case len(a.claims) == 0:
		c.Status, c.Reason = metav1.ConditionUnknown, wirespanv1alpha1.ReasonNoCIDRsKnown
		c.Message = "no ranges known yet"
	default:
		c.Status, c.Reason = metav1.ConditionTrue, wirespanv1alpha1.ReasonAccepted
		c.Message = "every range is inside spec.allowedCIDRs"
	}
	return c
}

// refusedMessage lists every refusal with its reason and, when ranges are
// refused only for want of an allowedCIDRs entry, the list to put in Git:
// what is allowed now plus those ranges. Ranges refused for any other
// reason are never suggested: Git cannot make them routed.
func refusedMessage(a accepted, refused []claims.Refusal, notAllowed []netip.Prefix) string {
	var parts []string
	if len(refused) > 0 {
		parts = append(parts, fmt.Sprintf("%s refused: %s", a.what, groupByDetail(refused)))
	}
	if len(a.garbage) > 0 {
		parts = append(parts, fmt.Sprintf("%q are not CIDRs", a.garbage))
	}
	msg := strings.Join(parts, "; ") + "; " + a.consequence
	if len(notAllowed) > 0 {
		want := cidr.Summarize(concat(a.allowed, notAllowed))
		msg += fmt.Sprintf("; if these ranges are the cluster's, put allowedCIDRs: [%s] in Git", strings.Join(cidr.Strings(want), ", "))
	}
	return msg
}

// groupByDetail lists refusals as "a, b (why); c (why)", ranges that share
// a reason together, in the order their reasons first appear.
func groupByDetail(rs []claims.Refusal) string {
	var order []string
	byDetail := map[string][]string{}
	for _, r := range rs {
		if _, ok := byDetail[r.Detail]; !ok {
			order = append(order, r.Detail)
		}
		byDetail[r.Detail] = append(byDetail[r.Detail], r.Prefix.String())
	}
	parts := make([]string, 0, len(order))
	for _, d := range order {
		parts = append(parts, strings.Join(byDetail[d], ", ")+" ("+d+")")
	}
	return strings.Join(parts, "; ")
}

// maxListedOverlaps bounds the condition message; the count says the rest.
const maxListedOverlaps = 8

func conflictCondition(overlaps []cidr.Overlap) metav1.Condition {
	if len(overlaps) == 0 {
		return metav1.Condition{Type: wirespanv1alpha1.ConditionCIDRConflict, Status: metav1.ConditionFalse,
			Reason: wirespanv1alpha1.ReasonNoConflict, Message: "no range overlaps another peer's"}
	}
	var parts []string
	for i, o := range overlaps {
		if i == maxListedOverlaps {
			parts = append(parts, fmt.Sprintf("and %d more", len(overlaps)-i))
			break
		}
		parts = append(parts, fmt.Sprintf("%s overlaps %s of %s", o.Prefix, o.OtherPrefix, o.Other))
	}
	return metav1.Condition{Type: wirespanv1alpha1.ConditionCIDRConflict, Status: metav1.ConditionTrue,
		Reason: wirespanv1alpha1.ReasonOverlap, Message: strings.Join(parts, "; ") + "; overlapping ranges are not routed"}
}

// readyCondition summarises the other conditions. A remote peer needs its
// gateway-written Connected condition too; blocker, if set, is a reason the
// peer cannot be ready that no condition carries.
func readyCondition(conds []metav1.Condition, remote bool, blocker string) metav1.Condition {
	var problems []string
	want := map[string]metav1.ConditionStatus{
		wirespanv1alpha1.ConditionCIDRsDiscovered: metav1.ConditionTrue,
		wirespanv1alpha1.ConditionKeyMatches:      metav1.ConditionTrue,
		wirespanv1alpha1.ConditionCIDRsAccepted:   metav1.ConditionTrue,
		wirespanv1alpha1.ConditionCIDRConflict:    metav1.ConditionFalse,
	}
	for _, t := range []string{wirespanv1alpha1.ConditionCIDRsDiscovered, wirespanv1alpha1.ConditionKeyMatches,
		wirespanv1alpha1.ConditionCIDRsAccepted, wirespanv1alpha1.ConditionCIDRConflict} {
		c := meta.FindStatusCondition(conds, t)
		if c == nil || c.Status == want[t] {
			continue
		}
		// A remote peer that has announced nothing yet is waiting, not broken.
		if t == wirespanv1alpha1.ConditionCIDRsAccepted && c.Status == metav1.ConditionUnknown && remote {
			continue
		}
		problems = append(problems, fmt.Sprintf("%s is %s (%s): %s", t, c.Status, c.Reason, c.Message))
	}
	if blocker != "" {
		problems = append(problems, blocker)
	}
	ready := metav1.Condition{Type: wirespanv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: wirespanv1alpha1.ReasonNotReady}
	switch {
	case len(problems) > 0:
		ready.Message = strings.Join(problems, "; ")
	case remote && !meta.IsStatusConditionTrue(conds, wirespanv1alpha1.ConditionConnected):
		ready.Reason = wirespanv1alpha1.ReasonAwaitingTunnel
		ready.Message = "configuration accepted; no gateway has reported a tunnel to this cluster yet"
	default:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionTrue, wirespanv1alpha1.ReasonReady, "ready"
	}
	return ready
}

func concat[T any](a, b []T) []T {
	out := make([]T, 0, len(a)+len(b))
	return append(append(out, a...), b...)
}
