package clusterpeer

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/wirespan/wirespan/internal/claims"
)

var (
	selfPresent = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "wirespan_operator_self_clusterpeer_present",
		Help: "1 when the ClusterPeer named by --cluster-id exists, 0 when it must still be applied.",
	})
	cidrOverlaps = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "wirespan_operator_cidr_overlaps",
		Help: "Pairs of overlapping ranges between ClusterPeers; such ranges are not routed.",
	})
	refusedCIDRs = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "wirespan_operator_refused_cidrs",
		Help: "Ranges remote ClusterPeers claim that are refused and never routed, by reason (see docs/security.md).",
	}, []string{"reason"})
	statusUpdates = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "wirespan_operator_clusterpeer_status_updates_total",
		Help: "ClusterPeer status writes. Flat while nothing changes.",
	})
)

func init() {
	metrics.Registry.MustRegister(selfPresent, cidrOverlaps, refusedCIDRs, statusUpdates)
}

// setRefused shows every reason, zeros included, so an alert on a reason
// has a series before the first refusal.
func setRefused(counts map[claims.Reason]int) {
	for _, r := range claims.Reasons {
		refusedCIDRs.WithLabelValues(string(r)).Set(float64(counts[r]))
	}
}
