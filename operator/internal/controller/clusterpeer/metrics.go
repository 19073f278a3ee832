package clusterpeer

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
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
	statusUpdates = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "wirespan_operator_clusterpeer_status_updates_total",
		Help: "ClusterPeer status writes. Flat while nothing changes.",
	})
)

func init() {
	metrics.Registry.MustRegister(selfPresent, cidrOverlaps, statusUpdates)
}
