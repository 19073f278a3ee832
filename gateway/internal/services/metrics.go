package services

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the MCS controller's wirespan_mcs_* metrics.
type Metrics struct {
	localExports prometheus.Gauge
	imports      prometheus.Gauge
	badRecords   prometheus.Counter
	syncErrors   prometheus.Counter
	syncDuration prometheus.Histogram
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
		badRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wirespan_mcs_unusable_records_total",
			Help: "Export records from other clusters that were authentic but could not be decoded, and were ignored.",
		}),
		syncErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wirespan_mcs_sync_errors_total",
			Help: "MCS syncs that failed to write something; the next sync retries.",
		}),
		syncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wirespan_mcs_sync_duration_seconds",
			Help:    "Time of one MCS sync: compute every export and import and write the differences.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
	}
	if r != nil {
		r.MustRegister(m.localExports, m.imports, m.badRecords, m.syncErrors, m.syncDuration)
	}
	return m
}
