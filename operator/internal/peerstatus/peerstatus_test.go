package peerstatus

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/wirespan/wirespan/apis/v1alpha1"
)

const (
	keyA = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
	keyB = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="
)

func pfx(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, v := range s {
		out = append(out, netip.MustParsePrefix(v))
	}
	return out
}

func peer(name string, spec v1.ClusterPeerSpec, status v1.ClusterPeerStatus) v1.ClusterPeer {
	return v1.ClusterPeer{ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 3}, Spec: spec, Status: status}
}

var (
	t0          = metav1.NewTime(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC))
	discovered  = Discovery{PodCIDRs: pfx("10.1.0.0/16", "fd00:1::/56"), ServiceCIDRs: pfx("10.96.0.0/16"), PodSource: SourceCluster, ServiceSource: SourceCluster, PodDetail: "2 Nodes", ServiceDetail: "ServiceCIDR kubernetes"}
	goodKey     = Key{PublicKey: keyA, SecretName: "wirespan-system/wirespan-key"}
	eastAllowed = []string{"10.1.0.0/16", "10.96.0.0/16", "fd00:1::/56"}
	connectedOK = metav1.Condition{Type: v1.ConditionConnected, Status: metav1.ConditionTrue, Reason: v1.ReasonConnected, LastTransitionTime: t0}
)

// cond returns "Status/Reason" of a condition, or "absent".
func cond(st v1.ClusterPeerStatus, t string) string {
	c := meta.FindStatusCondition(st.Conditions, t)
	if c == nil {
		return "absent"
	}
	return string(c.Status) + "/" + c.Reason
}

func message(st v1.ClusterPeerStatus, t string) string {
	if c := meta.FindStatusCondition(st.Conditions, t); c != nil {
		return c.Message
	}
	return ""
}

func TestCompute(t *testing.T) {
	tests := []struct {
		name      string
		in        Inputs
		peer      string
		want      map[string]string // condition type -> Status/Reason
		wantInMsg map[string]string // condition type -> substring of its message
		check     func(t *testing.T, st v1.ClusterPeerStatus)
	}{{
		name: "self all good",
		in: Inputs{ClusterID: "east", Discovery: discovered, Key: goodKey, OperatorVersion: "v0.3.0", Peers: []v1.ClusterPeer{
			peer("east", v1.ClusterPeerSpec{PublicKey: keyA, AllowedCIDRs: eastAllowed}, v1.ClusterPeerStatus{})}},
		peer: "east",
		want: map[string]string{v1.ConditionReady: "True/Ready", v1.ConditionKeyMatches: "True/Matches",
			v1.ConditionCIDRsDiscovered: "True/Discovered", v1.ConditionCIDRsAccepted: "True/Accepted",
			v1.ConditionCIDRConflict: "False/NoConflict", v1.ConditionConnected: "absent"},
		check: func(t *testing.T, st v1.ClusterPeerStatus) {
			if st.Role != v1.RoleSelf || st.PublicKey != keyA || st.ObservedGeneration != 3 {
				t.Errorf("role %q key %q generation %d", st.Role, st.PublicKey, st.ObservedGeneration)
			}
			if strings.Join(st.PodCIDRs, ",") != "10.1.0.0/16,fd00:1::/56" || strings.Join(st.ServiceCIDRs, ",") != "10.96.0.0/16" {
				t.Errorf("CIDRs %v %v", st.PodCIDRs, st.ServiceCIDRs)
			}
			if st.OperatorVersion != "v0.3.0" {
				t.Errorf("operatorVersion %q, want the operator's v0.3.0", st.OperatorVersion)
			}
		},
	}, {
		// The cluster ID changed: the old self ClusterPeer is a remote now,
		// and this operator's version says nothing about that cluster.
		name: "former self keeps no operator version",
		in: Inputs{ClusterID: "east", Discovery: discovered, Key: goodKey, OperatorVersion: "v0.3.0", Peers: []v1.ClusterPeer{
			peer("east", v1.ClusterPeerSpec{PublicKey: keyA}, v1.ClusterPeerStatus{}),
			peer("west", v1.ClusterPeerSpec{PublicKey: keyB}, v1.ClusterPeerStatus{Role: v1.RoleSelf, PublicKey: keyB, OperatorVersion: "v0.2.0"})}},
		peer: "west",
		check: func(t *testing.T, st v1.ClusterPeerStatus) {
			if st.Role != v1.RoleRemote || st.PublicKey != "" || st.OperatorVersion != "" {
				t.Errorf("role %q key %q operatorVersion %q, want Remote with neither", st.Role, st.PublicKey, st.OperatorVersion)
			}
		},
	}, {
		name: "self key not in Git yet",
		in: Inputs{ClusterID: "east", Discovery: discovered, Key: goodKey, Peers: []v1.ClusterPeer{
			peer("east", v1.ClusterPeerSpec{}, v1.ClusterPeerStatus{})}},
		peer:      "east",
		want:      map[string]string{v1.ConditionKeyMatches: "False/NotSet", v1.ConditionReady: "False/NotReady"},
		wantInMsg: map[string]string{v1.ConditionKeyMatches: "put publicKey: " + keyA + " in Git", v1.ConditionReady: "KeyMatches is False (NotSet)"},
	}, {
		name: "self key mismatch",
		in: Inputs{ClusterID: "east", Discovery: discovered, Key: goodKey, Peers: []v1.ClusterPeer{
			peer("east", v1.ClusterPeerSpec{PublicKey: keyB}, v1.ClusterPeerStatus{})}},
		peer:      "east",
		want:      map[string]string{v1.ConditionKeyMatches: "False/Mismatch", v1.ConditionReady: "False/NotReady"},
		wantInMsg: map[string]string{v1.ConditionKeyMatches: "spec.publicKey " + keyB + " is not the key in Secret wirespan-system/wirespan-key; put publicKey: " + keyA},
	}, {
		name: "self key Secret invalid",
		in: Inputs{ClusterID: "east", Discovery: discovered, Key: Key{Reason: v1.ReasonKeySecretInvalid, Message: "privateKey is not a WireGuard key"}, Peers: []v1.ClusterPeer{
			peer("east", v1.ClusterPeerSpec{PublicKey: keyA}, v1.ClusterPeerStatus{})}},
		peer: "east",
		want: map[string]string{v1.ConditionKeyMatches: "False/SecretInvalid", v1.ConditionReady: "False/NotReady"},
		check: func(t *testing.T, st v1.ClusterPeerStatus) {
			if st.PublicKey != "" {
				t.Errorf("publicKey %q shown for an invalid Secret", st.PublicKey)
			}
		},
	}, {
		name: "self without pod CIDRs",
		in: Inputs{ClusterID: "east", Discovery: Discovery{ServiceCIDRs: pfx("10.96.0.0/16"), ServiceSource: SourceCluster}, Key: goodKey, Peers: []v1.ClusterPeer{
			peer("east", v1.ClusterPeerSpec{PublicKey: keyA}, v1.ClusterPeerStatus{})}},
		peer:      "east",
		want:      map[string]string{v1.ConditionCIDRsDiscovered: "False/NoPodCIDRs", v1.ConditionReady: "False/NotReady"},
		wantInMsg: map[string]string{v1.ConditionCIDRsDiscovered: "--pod-cidrs"},
	}, {
		name: "self CIDRs from flags",
		in: Inputs{ClusterID: "east", Discovery: Discovery{PodCIDRs: pfx("10.1.0.0/16"), ServiceCIDRs: pfx("10.96.0.0/16"), PodSource: SourceFlag, ServiceSource: SourceCluster, ServiceDetail: "ServiceCIDR kubernetes"}, Key: goodKey, Peers: []v1.ClusterPeer{
			peer("east", v1.ClusterPeerSpec{PublicKey: keyA}, v1.ClusterPeerStatus{})}},
		peer:      "east",
		want:      map[string]string{v1.ConditionCIDRsDiscovered: "True/Overridden"},
		wantInMsg: map[string]string{v1.ConditionCIDRsDiscovered: "pod CIDRs from the --pod-cidrs flag; Service CIDRs from ServiceCIDR kubernetes"},
	}, {
		name: "self outside its own allowedCIDRs",
		in: Inputs{ClusterID: "east", Discovery: discovered, Key: goodKey, Peers: []v1.ClusterPeer{
			peer("east", v1.ClusterPeerSpec{PublicKey: keyA, AllowedCIDRs: []string{"10.0.0.0/8"}}, v1.ClusterPeerStatus{})}},
		peer:      "east",
		want:      map[string]string{v1.ConditionCIDRsAccepted: "False/OutsideAllowedCIDRs", v1.ConditionReady: "False/NotReady"},
		wantInMsg: map[string]string{v1.ConditionCIDRsAccepted: "fd00:1::/56 (outside spec.allowedCIDRs); other clusters will refuse them; if these ranges are the cluster's, put allowedCIDRs: [10.0.0.0/8, fd00:1::/56] in Git"},
	}, {
		name: "remote allowedCIDRs overlap self: reported on the remote",
		in: Inputs{ClusterID: "east", Discovery: discovered, Key: goodKey, Peers: []v1.ClusterPeer{
			peer("east", v1.ClusterPeerSpec{PublicKey: keyA}, v1.ClusterPeerStatus{}),
			peer("west", v1.ClusterPeerSpec{PublicKey: keyB, AllowedCIDRs: []string{"10.1.128.0/17"}}, v1.ClusterPeerStatus{})}},
		peer:      "west",
		want:      map[string]string{v1.ConditionCIDRConflict: "True/Overlap", v1.ConditionReady: "False/NotReady", v1.ConditionCIDRsAccepted: "Unknown/NoCIDRsKnown"},
		wantInMsg: map[string]string{v1.ConditionCIDRConflict: "10.1.128.0/17 overlaps 10.1.0.0/16 of east"},
	}, {
		name: "remote allowedCIDRs overlap self: reported on self",
		in: Inputs{ClusterID: "east", Discovery: discovered, Key: goodKey, Peers: []v1.ClusterPeer{
			peer("east", v1.ClusterPeerSpec{PublicKey: keyA}, v1.ClusterPeerStatus{}),
			peer("west", v1.ClusterPeerSpec{PublicKey: keyB, AllowedCIDRs: []string{"10.1.128.0/17"}}, v1.ClusterPeerStatus{})}},
		peer:      "east",
		want:      map[string]string{v1.ConditionCIDRConflict: "True/Overlap", v1.ConditionReady: "False/NotReady"},
		wantInMsg: map[string]string{v1.ConditionCIDRConflict: "10.1.0.0/16 overlaps 10.1.128.0/17 of west"},
	}, {
		name: "announced ranges win over allowedCIDRs for overlap",
		in: Inputs{ClusterID: "east", Discovery: discovered, Key: goodKey, Peers: []v1.ClusterPeer{
			peer("east", v1.ClusterPeerSpec{PublicKey: keyA}, v1.ClusterPeerStatus{}),
			peer("west", v1.ClusterPeerSpec{PublicKey: keyB, AllowedCIDRs: []string{"10.0.0.0/8"}}, v1.ClusterPeerStatus{PodCIDRs: []string{"10.2.0.0/16"}, ServiceCIDRs: []string{"10.97.0.0/16"}})}},
		peer: "west",
		want: map[string]string{v1.ConditionCIDRConflict: "False/NoConflict", v1.ConditionCIDRsAccepted: "True/Accepted", v1.ConditionReady: "False/AwaitingTunnel"},
		check: func(t *testing.T, st v1.ClusterPeerStatus) {
			if st.Role != v1.RoleRemote || st.PublicKey != "" || len(st.PodCIDRs) != 1 {
				t.Errorf("remote status changed fields it does not own: %+v", st)
			}
		},
	}, {
		name: "two remotes overlap each other",
		in: Inputs{ClusterID: "east", Discovery: discovered, Key: goodKey, Peers: []v1.ClusterPeer{
			peer("east", v1.ClusterPeerSpec{PublicKey: keyA}, v1.ClusterPeerStatus{}),
			peer("north", v1.ClusterPeerSpec{PublicKey: keyB, AllowedCIDRs: []string{"10.5.0.0/16"}}, v1.ClusterPeerStatus{PodCIDRs: []string{"10.5.0.0/16"}}),
			peer("west", v1.ClusterPeerSpec{PublicKey: keyB, AllowedCIDRs: []string{"10.5.0.0/16"}}, v1.ClusterPeerStatus{PodCIDRs: []string{"10.5.3.0/24"}})}},
		peer:      "north",
		want:      map[string]string{v1.ConditionCIDRConflict: "True/Overlap"},
		wantInMsg: map[string]string{v1.ConditionCIDRConflict: "10.5.0.0/16 overlaps 10.5.3.0/24 of west"},
	}, {
		name: "remote announces outside allowedCIDRs",
		in: Inputs{ClusterID: "east", Discovery: discovered, Key: goodKey, Peers: []v1.ClusterPeer{
			peer("east", v1.ClusterPeerSpec{PublicKey: keyA}, v1.ClusterPeerStatus{}),
			peer("west", v1.ClusterPeerSpec{PublicKey: keyB, AllowedCIDRs: []string{"10.2.0.0/16"}}, v1.ClusterPeerStatus{PodCIDRs: []string{"10.2.0.0/16", "192.168.0.0/16"}})}},
		peer:      "west",
		want:      map[string]string{v1.ConditionCIDRsAccepted: "False/OutsideAllowedCIDRs", v1.ConditionReady: "False/NotReady"},
		wantInMsg: map[string]string{v1.ConditionCIDRsAccepted: "announced ranges refused: 192.168.0.0/16 (outside spec.allowedCIDRs); they are not routed; if these ranges are the cluster's, put allowedCIDRs: [10.2.0.0/16, 192.168.0.0/16] in Git"},
	}, {
		name: "remote with garbage in status does not crash",
		in: Inputs{ClusterID: "east", Discovery: discovered, Key: goodKey, Peers: []v1.ClusterPeer{
			peer("east", v1.ClusterPeerSpec{PublicKey: keyA}, v1.ClusterPeerStatus{}),
			peer("west", v1.ClusterPeerSpec{PublicKey: keyB, AllowedCIDRs: []string{"not-a-cidr"}}, v1.ClusterPeerStatus{PodCIDRs: []string{"banana", "10.2.0.0/16"}})}},
		peer:      "west",
		want:      map[string]string{v1.ConditionCIDRsAccepted: "False/NoAllowedCIDRs"},
		wantInMsg: map[string]string{v1.ConditionCIDRsAccepted: `["banana"] are not CIDRs`},
	}, {
		name: "remote connected and clean is ready",
		in: Inputs{ClusterID: "east", Discovery: discovered, Key: goodKey, Peers: []v1.ClusterPeer{
			peer("east", v1.ClusterPeerSpec{PublicKey: keyA}, v1.ClusterPeerStatus{}),
			peer("west", v1.ClusterPeerSpec{PublicKey: keyB, AllowedCIDRs: []string{"10.2.0.0/16"}}, v1.ClusterPeerStatus{PodCIDRs: []string{"10.2.0.0/16"}, Conditions: []metav1.Condition{connectedOK}})}},
		peer: "west",
		want: map[string]string{v1.ConditionReady: "True/Ready", v1.ConditionConnected: "True/Connected", v1.ConditionKeyMatches: "absent"},
	}, {
		name: "remote without key cannot be ready",
		in: Inputs{ClusterID: "east", Discovery: discovered, Key: goodKey, Peers: []v1.ClusterPeer{
			peer("east", v1.ClusterPeerSpec{PublicKey: keyA}, v1.ClusterPeerStatus{}),
			peer("west", v1.ClusterPeerSpec{}, v1.ClusterPeerStatus{PodCIDRs: []string{"10.2.0.0/16"}, Conditions: []metav1.Condition{connectedOK}})}},
		peer:      "west",
		want:      map[string]string{v1.ConditionReady: "False/NotReady"},
		wantInMsg: map[string]string{v1.ConditionReady: "spec.publicKey is empty"},
	}, {
		name: "former self becomes remote: discovered CIDRs and self conditions dropped",
		in: Inputs{ClusterID: "east", Discovery: discovered, Key: goodKey, Peers: []v1.ClusterPeer{
			peer("east", v1.ClusterPeerSpec{PublicKey: keyA}, v1.ClusterPeerStatus{}),
			peer("old", v1.ClusterPeerSpec{PublicKey: keyB, AllowedCIDRs: []string{"10.9.0.0/16"}}, v1.ClusterPeerStatus{Role: v1.RoleSelf, PublicKey: keyB, PodCIDRs: []string{"10.9.0.0/16"},
				Conditions: []metav1.Condition{{Type: v1.ConditionKeyMatches, Status: metav1.ConditionTrue, Reason: "Matches", LastTransitionTime: t0}}})}},
		peer: "old",
		want: map[string]string{v1.ConditionKeyMatches: "absent", v1.ConditionCIDRsAccepted: "Unknown/NoCIDRsKnown"},
		check: func(t *testing.T, st v1.ClusterPeerStatus) {
			if st.Role != v1.RoleRemote || st.PublicKey != "" || st.PodCIDRs != nil {
				t.Errorf("former self kept self fields: %+v", st)
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Now = t0
			res := Compute(tt.in)
			st, ok := res.Statuses[tt.peer]
			if !ok {
				t.Fatalf("no status for %s", tt.peer)
			}
			for ct, want := range tt.want {
				if got := cond(st, ct); got != want {
					t.Errorf("%s = %s, want %s (message %q)", ct, got, want, message(st, ct))
				}
			}
			for ct, want := range tt.wantInMsg {
				if got := message(st, ct); !strings.Contains(got, want) {
					t.Errorf("%s message %q does not contain %q", ct, got, want)
				}
			}
			if tt.check != nil {
				tt.check(t, st)
			}
		})
	}
}

// TestComputeIsStable checks that feeding a computed status back in, later,
// gives the very same status: this is what keeps the controller from writing
// when nothing changed.
func TestComputeIsStable(t *testing.T) {
	in := Inputs{ClusterID: "east", Discovery: discovered, Key: goodKey, Now: t0, Peers: []v1.ClusterPeer{
		peer("east", v1.ClusterPeerSpec{PublicKey: keyA}, v1.ClusterPeerStatus{}),
		peer("west", v1.ClusterPeerSpec{PublicKey: keyB, AllowedCIDRs: []string{"10.1.0.0/16"}}, v1.ClusterPeerStatus{})}}
	first := Compute(in)
	for i := range in.Peers {
		in.Peers[i].Status = first.Statuses[in.Peers[i].Name]
	}
	in.Now = metav1.NewTime(t0.Add(time.Hour))
	second := Compute(in)
	for name, st := range first.Statuses {
		if !equality.Semantic.DeepEqual(st, second.Statuses[name]) {
			t.Errorf("%s: status changed with no input change:\nfirst  %+v\nsecond %+v", name, st, second.Statuses[name])
		}
	}
	if first.Overlaps != 1 {
		t.Errorf("Overlaps = %d, want 1", first.Overlaps)
	}
}

func TestTransitionTimeMovesOnlyOnChange(t *testing.T) {
	in := Inputs{ClusterID: "east", Discovery: discovered, Key: goodKey, Now: t0, Peers: []v1.ClusterPeer{
		peer("east", v1.ClusterPeerSpec{}, v1.ClusterPeerStatus{})}}
	first := Compute(in).Statuses["east"]
	in.Peers[0].Status = first
	in.Peers[0].Spec.PublicKey = keyA
	t1 := metav1.NewTime(t0.Add(time.Minute))
	in.Now = t1
	second := Compute(in).Statuses["east"]
	if got := meta.FindStatusCondition(second.Conditions, v1.ConditionKeyMatches).LastTransitionTime; !got.Equal(&t1) {
		t.Errorf("KeyMatches flipped but transition time is %v, want %v", got, t1)
	}
	if got := meta.FindStatusCondition(second.Conditions, v1.ConditionCIDRsDiscovered).LastTransitionTime; !got.Equal(&t0) {
		t.Errorf("CIDRsDiscovered did not change but transition time moved to %v", got)
	}
}
