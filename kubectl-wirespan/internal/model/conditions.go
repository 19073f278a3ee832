package model

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
)

// Condition returns the peer's condition of that type, or a zero one with
// status Unknown: "not reported" and "Unknown" read the same to a person.
func Condition(p *wirespanv1alpha1.ClusterPeer, typ string) metav1.Condition {
	if c := meta.FindStatusCondition(p.Status.Conditions, typ); c != nil {
		return *c
	}
	return metav1.Condition{Type: typ, Status: metav1.ConditionUnknown}
}

// ActiveGateway returns the gateway the status marks active, or nil.
func ActiveGateway(p *wirespanv1alpha1.ClusterPeer) *wirespanv1alpha1.GatewayStatus {
	for i := range p.Status.Gateways {
		if p.Status.Gateways[i].Active {
			return &p.Status.Gateways[i]
		}
	}
	return nil
}
