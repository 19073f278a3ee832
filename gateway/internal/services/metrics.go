package services

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the MCS controller's wirespan_mcs_* metrics. The work
// queue's own (depth, latency, retries) are workqueue_* with
// name="wirespan_mcs", from controller-runtime's registry.
type Metrics struct {
	localExports      prometheus.Gauge
	imports           prometheus.Gauge
	conflicts         prometheus.Gauge
	badRecords        *prometheus.CounterVec
	refusedEndpoints  *prometheus.CounterVec
	reconcileErrors   prometheus.Counter
	requeues          prometheus.Counter
	reconcileDuration prometheus.Histogram
}

// NewMetrics creates the metrics and registers them with r, if not nil.
func NewMetrics(r prometheus.Registerer) *Metrics {
	m := &Metrics{
		localExports: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wirespan_mcs_service_exports",
			Help: "ServiceExports in this cluster, valid or not.",
		}),
		imports: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wirespan_mcs_imports",
			Help: "Services exported by at least one cluster of the clusterset.",
		}),
		conflicts: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wirespan_mcs_export_conflicts",
			Help: "ServiceExports of this cluster whose Conflict condition is True: another cluster's export of the same service disagrees, and the oldest export's properties win.",
		}),
		badRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wirespan_mcs_unusable_records_total",
			Help: "Export records from other clusters that were authentic but refused, by reason (json, name, type, ports, endpoints, metadata, over-cap): each is left out, the rest imported.",
		}, []string{"reason"}),
		refusedEndpoints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wirespan_mcs_refused_endpoints_total",
			Help: "Endpoints of another cluster's exports left out of an import because an address lies outside the ranges accepted from that cluster (counted each time the import is computed), by cluster.",
		}, []string{"cluster"}),
		reconcileErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wirespan_mcs_reconcile_errors_total",
			Help: "Reconciles of one service that failed to write something; that service is retried with backoff.",
		}),
		requeues: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wirespan_mcs_reconcile_races_total",
			Help: "Reconciles of one service whose write raced another writer (a conflict, or an object that already existed); retried at once, not an error.",
		}),
		reconcileDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wirespan_mcs_reconcile_duration_seconds",
			Help:    "Time of one reconcile of one service: merge every cluster's export and write the differences.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
	}
	if r != nil {
		r.MustRegister(m.localExports, m.imports, m.conflicts, m.badRecords, m.refusedEndpoints, m.reconcileErrors, m.requeues, m.reconcileDuration)
	}
	return m
}
