package peerstatus

import (
	"maps"
	"strings"
	"testing"

	v1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/internal/claims"
)

// A claim refused as outside its claimer's allowedCIDRs is no overlap: c3
// pinned to 10.3/16 claiming 10.2/16 must not put c2's rightful 10.2/16 in
// conflict.
func TestHostileRefusedClaimIsNoOverlap(t *testing.T) {
	in := Inputs{ClusterID: "c1", Discovery: discovered, Key: goodKey, Now: t0, Peers: []v1.ClusterPeer{
		peer("c1", v1.ClusterPeerSpec{PublicKey: keyA, AllowedCIDRs: []string{"10.1.0.0/16", "10.96.0.0/16", "fd00:1::/56"}}, v1.ClusterPeerStatus{}),
		peer("c2", v1.ClusterPeerSpec{PublicKey: keyB, AllowedCIDRs: []string{"10.2.0.0/16"}},
			v1.ClusterPeerStatus{Role: v1.RoleRemote, PodCIDRs: []string{"10.2.0.0/16"}}),
		peer("c3", v1.ClusterPeerSpec{PublicKey: keyB, AllowedCIDRs: []string{"10.3.0.0/16"}},
			v1.ClusterPeerStatus{Role: v1.RoleRemote, PodCIDRs: []string{"10.2.0.0/16", "10.3.0.0/16"}}),
	}}
	res := Compute(in)
	if got := cond(res.Statuses["c2"], v1.ConditionCIDRConflict); got != "False/NoConflict" {
		t.Errorf("c2 CIDRConflict = %s (%s), want False/NoConflict", got, message(res.Statuses["c2"], v1.ConditionCIDRConflict))
	}
	if got := cond(res.Statuses["c3"], v1.ConditionCIDRsAccepted); got != "False/OutsideAllowedCIDRs" {
		t.Errorf("c3 CIDRsAccepted = %s, want False/OutsideAllowedCIDRs", got)
	}
}

// An empty allowedCIDRs accepts nothing, and says what to put in Git.
func TestHostileEmptyAllowedAcceptsNothing(t *testing.T) {
	in := Inputs{ClusterID: "c1", Discovery: discovered, Key: goodKey, Now: t0, Peers: []v1.ClusterPeer{
		peer("c1", v1.ClusterPeerSpec{PublicKey: keyA, AllowedCIDRs: []string{"10.1.0.0/16", "10.96.0.0/16", "fd00:1::/56"}}, v1.ClusterPeerStatus{}),
		peer("c2", v1.ClusterPeerSpec{PublicKey: keyB},
			v1.ClusterPeerStatus{Role: v1.RoleRemote, PodCIDRs: []string{"10.2.0.0/16"}}),
	}}
	res := Compute(in)
	if got := cond(res.Statuses["c2"], v1.ConditionCIDRsAccepted); got == "True/Accepted" {
		t.Errorf("c2 without allowedCIDRs: CIDRsAccepted = %s (%s)", got, message(res.Statuses["c2"], v1.ConditionCIDRsAccepted))
	}
}

// The conditions say what to put in Git, as KeyMatches does for the key,
// and never suggest a range Git cannot make routed.
func TestEmptyAllowedSaysWhatToPutInGit(t *testing.T) {
	in := Inputs{ClusterID: "c1", Discovery: discovered, Key: goodKey, Now: t0, Peers: []v1.ClusterPeer{
		peer("c1", v1.ClusterPeerSpec{PublicKey: keyA}, v1.ClusterPeerStatus{}),
		peer("c2", v1.ClusterPeerSpec{PublicKey: keyB, Endpoints: []string{"172.28.2.10:51820"}},
			v1.ClusterPeerStatus{Role: v1.RoleRemote, PodCIDRs: []string{"10.2.0.0/16", "127.0.0.0/8", "172.28.2.0/24"}, ServiceCIDRs: []string{"10.102.0.0/16"}}),
		peer("c3", v1.ClusterPeerSpec{PublicKey: keyB}, v1.ClusterPeerStatus{}),
	}}
	res := Compute(in)
	for _, tt := range []struct{ peer, want, msg string }{
		{"c1", "False/NoAllowedCIDRs", "put allowedCIDRs: [10.1.0.0/16, 10.96.0.0/16, fd00:1::/56] in Git"},
		{"c2", "False/NoAllowedCIDRs", "put allowedCIDRs: [10.2.0.0/16, 10.102.0.0/16] in Git"},
		{"c2", "False/NoAllowedCIDRs", "127.0.0.0/8 (overlaps 127.0.0.0/8, never routed); 172.28.2.0/24 (overlaps 172.28.2.10/32, the endpoint of cluster c2)"},
		{"c3", "False/NoAllowedCIDRs", "spec.allowedCIDRs is empty, which accepts nothing"},
	} {
		st := res.Statuses[tt.peer]
		if got := cond(st, v1.ConditionCIDRsAccepted); got != tt.want {
			t.Errorf("%s CIDRsAccepted = %s, want %s", tt.peer, got, tt.want)
		}
		if msg := message(st, v1.ConditionCIDRsAccepted); !strings.Contains(msg, tt.msg) {
			t.Errorf("%s CIDRsAccepted message %q\ndoes not contain %q", tt.peer, msg, tt.msg)
		}
		if got := cond(st, v1.ConditionReady); got != "False/NotReady" {
			t.Errorf("%s Ready = %s, want False/NotReady", tt.peer, got)
		}
	}
	want := map[claims.Reason]int{claims.ReasonNoAllowedCIDRs: 2, claims.ReasonLoopback: 1, claims.ReasonPeerEndpoint: 1}
	if !maps.Equal(res.Refused, want) {
		t.Errorf("refused counts %v, want %v", res.Refused, want)
	}
}

// With allowedCIDRs that cover them, ranges Wirespan never routes are
// still refused, with reason NeverRouted.
func TestNeverRoutedWhateverGitSays(t *testing.T) {
	in := Inputs{ClusterID: "c1", Discovery: discovered, Key: goodKey, Now: t0, Peers: []v1.ClusterPeer{
		peer("c1", v1.ClusterPeerSpec{PublicKey: keyA, AllowedCIDRs: eastAllowed}, v1.ClusterPeerStatus{}),
		peer("c2", v1.ClusterPeerSpec{PublicKey: keyB, AllowedCIDRs: []string{"0.0.0.0/0"}},
			v1.ClusterPeerStatus{Role: v1.RoleRemote, PodCIDRs: []string{"0.0.0.0/5", "169.254.169.254/32", "10.2.0.0/16"}}),
	}}
	st := Compute(in).Statuses["c2"]
	if got := cond(st, v1.ConditionCIDRsAccepted); got != "False/NeverRouted" {
		t.Errorf("CIDRsAccepted = %s (%s), want False/NeverRouted", got, message(st, v1.ConditionCIDRsAccepted))
	}
	if msg := message(st, v1.ConditionCIDRsAccepted); strings.Contains(msg, "put allowedCIDRs") {
		t.Errorf("message suggests a Git change that cannot help: %q", msg)
	}
}
