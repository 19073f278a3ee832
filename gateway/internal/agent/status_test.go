package agent

import (
	"errors"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

func TestConnectedCondition(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	ok := PeerPlan{Cluster: "c2", Key: keyC2.PublicKey(), Endpoint: netip.MustParseAddrPort("172.28.2.10:51820"),
		Routed: pfx("10.2.0.0/16")}
	endpoint := &net.UDPAddr{IP: net.IPv4(172, 28, 2, 10), Port: 51820}
	fresh := &wgtypes.Peer{LastHandshakeTime: now.Add(-30 * time.Second), Endpoint: endpoint, ReceiveBytes: 10, TransmitBytes: 20}
	stale := &wgtypes.Peer{LastHandshakeTime: now.Add(-10 * time.Minute), Endpoint: endpoint}
	refusedAll := ok
	refusedAll.Routed, refusedAll.Refused = nil, []Refusal{{Prefix: netip.MustParsePrefix("10.2.0.0/16"), Reason: "outside spec.allowedCIDRs"}}
	refusedPeer := dataplane.Refusal{Kind: dataplane.KindPeer, Object: "AgICAgIC on wirespan0", Peer: ok.Key, Err: errors.New("invalid argument")}
	refusedRoute := dataplane.Refusal{Kind: dataplane.KindRoute, Object: "10.2.0.0/16 dev wirespan0 table 51820", Dst: ok.Routed[0], Err: errors.New("no such device")}
	noEndpoint := ok
	noEndpoint.Endpoint = netip.AddrPort{}
	noSharedFamily := ok
	noSharedFamily.Routed, noSharedFamily.Refused = nil, []Refusal{{Prefix: netip.MustParsePrefix("10.2.0.0/16"), Code: ReasonFamily,
		Reason: "IPv4 is not routed: cluster c1 has no IPv4 pod or Service range (it is IPv6)"}}
	for _, tc := range []struct {
		name    string
		plan    PeerPlan
		obs     Observation
		status  metav1.ConditionStatus
		reason  string
		inWords string
	}{
		{"handshake fresh", ok, Observation{WireGuard: fresh}, metav1.ConditionTrue, wirespanv1alpha1.ReasonConnected, "handshake completed within the last 3m0s"},
		{"handshake stale", ok, Observation{WireGuard: stale}, metav1.ConditionFalse, wirespanv1alpha1.ReasonNoHandshake, "172.28.2.10:51820"},
		{"never", ok, Observation{WireGuard: &wgtypes.Peer{}}, metav1.ConditionFalse, wirespanv1alpha1.ReasonNoHandshake, "UDP port"},
		{"no key", PeerPlan{Cluster: "c2", Problem: "spec.publicKey is empty"}, Observation{}, metav1.ConditionFalse, wirespanv1alpha1.ReasonNoPublicKey, "publicKey is empty"},
		{"tunnel address clash", PeerPlan{Cluster: "c2", Key: keyC2.PublicKey(), Problem: "tunnel address 100.96.0.7 is also derived for cluster c3"}, Observation{}, metav1.ConditionFalse, wirespanv1alpha1.ReasonTunnelAddressConflict, "c3"},
		{"no endpoint either way", noEndpoint, Observation{WireGuard: &wgtypes.Peer{}}, metav1.ConditionFalse, wirespanv1alpha1.ReasonNoEndpoint, "dialed in"},
		{"own key wrong in Git", ok, Observation{WireGuard: &wgtypes.Peer{}, SelfKeyMismatch: true}, metav1.ConditionFalse, wirespanv1alpha1.ReasonSelfKeyMismatch, "KeyMatches"},
		{"kernel refused the peer", ok, Observation{WireGuard: &wgtypes.Peer{}, Refused: []dataplane.Refusal{refusedPeer}}, metav1.ConditionFalse, wirespanv1alpha1.ReasonKernelRefused, "invalid argument"},
		{"kernel refused a route", ok, Observation{WireGuard: fresh, Refused: []dataplane.Refusal{refusedRoute}}, metav1.ConditionTrue, wirespanv1alpha1.ReasonConnected, "kernel refused, and is asked again every sync: route 10.2.0.0/16"},
		{"everything refused", refusedAll, Observation{WireGuard: fresh}, metav1.ConditionFalse, wirespanv1alpha1.ReasonCIDRsRefused, "outside spec.allowedCIDRs"},
		// An IPv6-only and an IPv4-only cluster in one clusterset: as
		// connected as they can be, and saying why nothing is routed.
		{"no IP family in common", noSharedFamily, Observation{WireGuard: fresh}, metav1.ConditionTrue, wirespanv1alpha1.ReasonConnected, "no IP family in common"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.obs.Now = now
			st := RemoteStatus(wirespanv1alpha1.ClusterPeerStatus{}, 3, tc.plan, tc.obs)
			c := meta.FindStatusCondition(st.Conditions, wirespanv1alpha1.ConditionConnected)
			if c == nil || c.Status != tc.status || c.Reason != tc.reason || !strings.Contains(c.Message, tc.inWords) || c.ObservedGeneration != 3 {
				t.Errorf("Connected = %+v; want %s %s saying %q", c, tc.status, tc.reason, tc.inWords)
			}
		})
	}
}

// Learned ranges replace what status held; without gossip they stay, and
// conditions the operator owns are kept.
// A live tunnel's status is the same from one sync to the next, so the
// gateway does not rewrite it every resync.
func TestConnectedStatusIsStableWhileTheTunnelLives(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	plan := PeerPlan{Cluster: "c2", Key: keyC2.PublicKey(), Routed: pfx("10.2.0.0/16")}
	peer := &wgtypes.Peer{LastHandshakeTime: now.Add(-10 * time.Second)}
	first := RemoteStatus(wirespanv1alpha1.ClusterPeerStatus{}, 1, plan, Observation{WireGuard: peer, Now: now})
	second := RemoteStatus(first, 1, plan, Observation{WireGuard: peer, Now: now.Add(5 * time.Second)})
	if !reflect.DeepEqual(first, second) {
		t.Errorf("status changed between two syncs of an unchanged tunnel:\n%+v\n%+v", first, second)
	}
}

func TestRemoteStatusKeepsWhatItDoesNotOwn(t *testing.T) {
	now := time.Now()
	cur := wirespanv1alpha1.ClusterPeerStatus{
		Role: wirespanv1alpha1.RoleRemote, PodCIDRs: []string{"10.2.0.0/16"},
		Conditions: []metav1.Condition{{Type: wirespanv1alpha1.ConditionCIDRsAccepted, Status: metav1.ConditionTrue, Reason: "Accepted"}},
	}
	plan := PeerPlan{Cluster: "c2", Key: keyC2.PublicKey()}
	st := RemoteStatus(cur, 1, plan, Observation{Now: now})
	if len(st.PodCIDRs) != 1 || st.PodCIDRs[0] != "10.2.0.0/16" || meta.FindStatusCondition(st.Conditions, wirespanv1alpha1.ConditionCIDRsAccepted) == nil {
		t.Errorf("status without gossip lost fields: %+v", st)
	}
	st = RemoteStatus(cur, 1, plan, Observation{Now: now, Learned: &Learned{PodCIDRs: pfx("10.2.0.0/23"), ServiceCIDRs: pfx("10.102.0.0/16"), ActiveGateway: "c2-n0"}})
	if strings.Join(st.PodCIDRs, ",") != "10.2.0.0/23" || strings.Join(st.ServiceCIDRs, ",") != "10.102.0.0/16" ||
		len(st.Gateways) != 1 || st.Gateways[0].Node != "c2-n0" || !st.Gateways[0].Active {
		t.Errorf("learned state not written: %+v", st)
	}
	if cur.PodCIDRs[0] != "10.2.0.0/16" {
		t.Error("RemoteStatus changed its input")
	}
}

// A kernel refusal is put on the peer whose tunnel or range it is about.
func TestRefusalConcernsItsPeer(t *testing.T) {
	plan := Desired(threeClusters("c1-n0", RouteVXLAN))
	c2, c3 := plan.Peers[0], plan.Peers[1]
	for _, tc := range []struct {
		name   string
		r      dataplane.Refusal
		c2, c3 bool
	}{
		{"c2's range", dataplane.Refusal{Kind: dataplane.KindRoute, Dst: netip.MustParsePrefix("10.2.0.0/16")}, true, false},
		{"c3's tunnel address", dataplane.Refusal{Kind: dataplane.KindRoute, Dst: netip.PrefixFrom(c3.TunnelAddr, 32)}, false, true},
		{"c3's WireGuard peer", dataplane.Refusal{Kind: dataplane.KindPeer, Peer: c3.Key}, false, true},
		{"a range of nobody's", dataplane.Refusal{Kind: dataplane.KindRoute, Dst: netip.MustParsePrefix("10.9.0.0/16")}, false, false},
		{"the rule", dataplane.Refusal{Kind: dataplane.KindRule}, false, false},
		{"the WireGuard link", dataplane.Refusal{Kind: dataplane.KindLink, Link: "wirespan0"}, true, true},
		{"the tunnel address", dataplane.Refusal{Kind: dataplane.KindAddress, Link: "wirespan0"}, true, true},
		{"the VXLAN link", dataplane.Refusal{Kind: dataplane.KindLink, Link: "wirespan-vx"}, false, false},
	} {
		if c2.Concerns(tc.r, "wirespan0") != tc.c2 || c3.Concerns(tc.r, "wirespan0") != tc.c3 {
			t.Errorf("%s: concerns c2 %t, c3 %t; want %t, %t", tc.name, c2.Concerns(tc.r, "wirespan0"), c3.Concerns(tc.r, "wirespan0"), tc.c2, tc.c3)
		}
	}
}
