package gossip

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	members  prometheus.GaugeFunc
	clusters prometheus.Gauge
	received *prometheus.CounterVec
	sent     *prometheus.CounterVec
	// exportsReceived counts export messages (batches and snapshots).
	exportsReceived *prometheus.CounterVec
	// refused counts what is refused before any message is decoded.
	refused *prometheus.CounterVec
}

// Reasons of wirespan_gossip_refused_total.
const (
	// refusedSource: a packet or stream from an address that is no peer's
	// tunnel address.
	refusedSource = "source"
	// refusedMembership: a memberlist membership message (alive, suspect,
	// dead, push/pull, compound...); Wirespan does not use memberlist's
	// membership.
	refusedMembership = "membership"
	// refusedBusy: a stream while MaxStreams are being read.
	refusedBusy = "busy"
	// refusedStreamSize: a stream longer than the largest message.
	refusedStreamSize = "stream_size"
	// refusedOverCap: export records of a cluster beyond MaxExports or
	// MaxExportSnapshotSize bytes held.
	refusedOverCap = "over_cap"
)

var refusedReasons = []string{refusedSource, refusedMembership, refusedBusy, refusedStreamSize, refusedOverCap}

// newMetrics makes the collectors; members counts the present members
// when scraped, so that it never disagrees with Members.
func newMetrics(members func() float64) *metrics {
	m := &metrics{
		members: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wirespan_gossip_members",
			Help: "Clusters present in the gossip pool (an authenticated, fresh message within the presence timeout), this one included.",
		}, members),
		clusters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wirespan_gossip_clusters",
			Help: "Remote clusters whose verified state this gateway holds.",
		}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wirespan_gossip_messages_received_total",
			Help: "Cluster state and heartbeat messages received, by result: accepted, duplicate (version already held), or the reason the message was dropped.",
		}, []string{"result"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wirespan_gossip_messages_sent_total",
			Help: "Cluster state messages sent directly to a member, by result (ok, error); push/pull exchanges are not counted.",
		}, []string{"result"}),
		exportsReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wirespan_gossip_export_messages_received_total",
			Help: "Export messages (batches of changes and snapshots of Multi-Cluster Services exports) received, by result, as for cluster state messages.",
		}, []string{"result"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wirespan_gossip_refused_total",
			Help: "Packets, streams and export records refused before any message was decoded, by reason: source (not a peer's tunnel address), membership (a memberlist membership message), busy (too many streams), stream_size, over_cap (records beyond a cluster's cap).",
		}, []string{"reason"}),
	}
	for _, r := range refusedReasons {
		m.refused.WithLabelValues(r)
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
	for _, c := range []prometheus.Collector{m.members, m.clusters, m.received, m.sent, m.exportsReceived, m.refused} {
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
	for _, c := range []prometheus.Collector{m.members, m.clusters, m.received, m.sent, m.exportsReceived, m.refused} {
		r.Unregister(c)
	}
}
