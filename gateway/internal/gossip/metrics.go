package gossip

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	members  prometheus.Gauge
	clusters prometheus.Gauge
	received *prometheus.CounterVec
	sent     *prometheus.CounterVec
	// exportsReceived counts export messages (batches and snapshots).
	exportsReceived *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		members: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wirespan_gossip_members",
			Help: "Members of the gossip pool (all clusters' gateways, this one included) that are alive or suspect.",
		}),
		clusters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wirespan_gossip_clusters",
			Help: "Remote clusters whose verified state this gateway holds.",
		}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wirespan_gossip_messages_received_total",
			Help: "Cluster state messages received, by result: accepted, duplicate (version already held), or the reason the message was dropped.",
		}, []string{"result"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wirespan_gossip_messages_sent_total",
			Help: "Cluster state messages sent directly to a member, by result (ok, error); push/pull exchanges are not counted.",
		}, []string{"result"}),
		exportsReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wirespan_gossip_export_messages_received_total",
			Help: "Export messages (batches of changes and snapshots of Multi-Cluster Services exports) received, by result, as for cluster state messages.",
		}, []string{"result"}),
	}
	for _, r := range results {
		m.received.WithLabelValues(r)
		m.exportsReceived.WithLabelValues(r)
	}
	m.sent.WithLabelValues("ok")
	m.sent.WithLabelValues("error")
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	if r == nil {
		return nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.members, m.clusters, m.received, m.sent, m.exportsReceived} {
		if err := r.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("register gossip metrics: %w", err)
	}
	return nil
}

// unregister removes the collectors, so that a Gossip can be recreated on
// the same registry after Shutdown.
func (m *metrics) unregister(r prometheus.Registerer) {
	if r == nil {
		return
	}
	for _, c := range []prometheus.Collector{m.members, m.clusters, m.received, m.sent, m.exportsReceived} {
		r.Unregister(c)
	}
}
