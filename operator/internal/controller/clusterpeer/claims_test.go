package clusterpeer

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/internal/claims"
)

// A hostile peer pinned to 10.53/16 claims the rightful owner's 10.52/16
// and a link-local range. Through the real API server: its claims are
// refused and counted by reason, the owner's range has no conflict, and
// a peer with no allowedCIDRs is told what to put in Git.
func TestHostileClaimsAreRefusedAndCounted(t *testing.T) {
	ctx := context.Background()
	createPeer(t, clusterID, v1.ClusterPeerSpec{})
	createPeer(t, "rightful", v1.ClusterPeerSpec{PublicKey: otherKey, AllowedCIDRs: []string{"10.52.0.0/16"}})
	createPeer(t, "hostile", v1.ClusterPeerSpec{PublicKey: otherKey, AllowedCIDRs: []string{"10.53.0.0/16", "169.254.0.0/16"}})
	createPeer(t, "unbounded", v1.ClusterPeerSpec{PublicKey: otherKey})
	announce := func(name string, pods ...string) {
		t.Helper()
		p := waitCondition(t, name, v1.ConditionCIDRsAccepted, metav1.ConditionUnknown, v1.ReasonNoCIDRsKnown)
		p.Status.Role, p.Status.PodCIDRs = v1.RoleRemote, pods
		if err := k8s.Status().Update(ctx, p); err != nil {
			t.Fatalf("announce %s: %v", name, err)
		}
	}
	announce("rightful", "10.52.0.0/16")
	announce("hostile", "10.52.0.0/16", "10.53.0.0/16", "169.254.169.254/32")
	waitCondition(t, "hostile", v1.ConditionCIDRsAccepted, metav1.ConditionFalse, v1.ReasonOutsideAllowedCIDRs,
		"10.52.0.0/16 (outside spec.allowedCIDRs)", "169.254.169.254/32 (overlaps 169.254.0.0/16, never routed)")
	waitCondition(t, "rightful", v1.ConditionCIDRConflict, metav1.ConditionFalse, v1.ReasonNoConflict)
	waitCondition(t, "rightful", v1.ConditionCIDRsAccepted, metav1.ConditionTrue, v1.ReasonAccepted)

	p, err := getPeer("unbounded")
	if err != nil {
		t.Fatal(err)
	}
	p.Status.Role, p.Status.PodCIDRs = v1.RoleRemote, []string{"10.54.0.0/16"}
	if err := k8s.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, "unbounded", v1.ConditionCIDRsAccepted, metav1.ConditionFalse, v1.ReasonNoAllowedCIDRs,
		"put allowedCIDRs: [10.54.0.0/16] in Git")

	eventually(t, 10*time.Second, "refusals counted by reason", func() error {
		for _, r := range []claims.Reason{claims.ReasonOutsideAllowedCIDRs, claims.ReasonLinkLocal, claims.ReasonNoAllowedCIDRs} {
			if v := gaugeValue(refusedCIDRs.WithLabelValues(string(r))); v < 1 {
				return fmt.Errorf("wirespan_operator_refused_cidrs{reason=%q} = %v", r, v)
			}
		}
		return nil
	})
}
