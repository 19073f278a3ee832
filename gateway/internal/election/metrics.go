package election

import "github.com/prometheus/client_golang/prometheus"

// Metrics count what the Elector does; a nil *Metrics counts nothing.
type Metrics struct {
	transitions   *prometheus.CounterVec
	writeFailures *prometheus.CounterVec
}

// NewMetrics registers the election's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wirespan_gateway_lease_transitions_total",
			Help: "Changes of this gateway's hold on the active role's Lease, by event: acquired, released (a planned handover), lost (another gateway took it).",
		}, []string{"event"}),
		writeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wirespan_gateway_lease_write_failures_total",
			Help: "Writes of the active role's Lease that failed, by action (create, acquire, renew, release); a holder keeps the role while renewals fail.",
		}, []string{"action"}),
	}
	reg.MustRegister(m.transitions, m.writeFailures)
	return m
}

func (m *Metrics) transition(event string) {
	if m != nil {
		m.transitions.WithLabelValues(event).Inc()
	}
}

func (m *Metrics) writeFailed(a Action) {
	if m != nil {
		m.writeFailures.WithLabelValues(a.String()).Inc()
	}
}
