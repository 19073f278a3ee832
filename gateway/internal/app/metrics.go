package app

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wirespan/wirespan/gateway/internal/agent"
	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

// metrics are the gateway's own Prometheus metrics. Per-peer figures are
// gauges set from WireGuard's counters on every sync, so a peer removed
// from Git disappears from them.
type metrics struct {
	peersUp       prometheus.Gauge
	handshakeAge  *prometheus.GaugeVec
	rxBytes       *prometheus.GaugeVec
	txBytes       *prometheus.GaugeVec
	latency       *prometheus.GaugeVec
	refused       *prometheus.GaugeVec
	syncErrors    prometheus.Counter
	applyDuration prometheus.Histogram
	changes       prometheus.Counter
	// refusals counts kernel objects refused, on every apply that tried
	// them; refusedObjects is how many the last apply left out.
	refusals       *prometheus.CounterVec
	refusedObjects *prometheus.GaugeVec
	// tunnelRestarts counts sessions restarted because the peer stopped
	// answering (tunnels.go).
	tunnelRestarts *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		peersUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wirespan_gateway_peers_up", Help: "Remote clusters with a WireGuard handshake in the last 3 minutes."}),
		handshakeAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wirespan_gateway_peer_handshake_age_seconds", Help: "Seconds since the last WireGuard handshake with the peer; absent before the first."}, []string{"peer"}),
		rxBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wirespan_gateway_peer_receive_bytes", Help: "Bytes received from the peer, as WireGuard counts them since the device started."}, []string{"peer"}),
		txBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wirespan_gateway_peer_transmit_bytes", Help: "Bytes sent to the peer, as WireGuard counts them since the device started."}, []string{"peer"}),
		latency: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wirespan_gateway_peer_latency_seconds", Help: "Last gossip probe round-trip time to the peer's gateway, through the tunnel."}, []string{"peer"}),
		refused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wirespan_gateway_refused_cidrs", Help: "Ranges a peer claims that are refused and not routed, by reason (see docs/security.md)."}, []string{"peer", "reason"}),
		syncErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wirespan_gateway_sync_errors_total", Help: "Syncs that failed to read inputs, apply the data plane or write status."}),
		applyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "wirespan_gateway_apply_duration_seconds", Help: "Time to compare and apply the data plane.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wirespan_gateway_dataplane_changes_total", Help: "Kernel changes made (links, peers, routes, rules, clamp, sysctls)."}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wirespan_gateway_dataplane_refusals_total", Help: "Kernel objects the kernel refused (or that could not be read), by kind, counted on every apply that tried them."}, []string{"kind"}),
		tunnelRestarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wirespan_gateway_tunnel_restarts_total", Help: "WireGuard sessions the active gateway started again because the peer stopped answering while traffic was sent to it."}, []string{"peer"}),
		refusedObjects: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wirespan_gateway_dataplane_refused_objects", Help: "Kernel objects the last apply could not put in place, by kind; the next apply tries them again."}, []string{"kind"}),
	}
	reg.MustRegister(m.peersUp, m.handshakeAge, m.rxBytes, m.txBytes, m.latency, m.refused, m.syncErrors, m.applyDuration, m.changes,
		m.refusals, m.refusedObjects, m.tunnelRestarts)
	return m
}

// peer records one peer's figures; w is nil when the device has no entry.
func (m *metrics) peer(name string, w *wgtypes.Peer, rtt time.Duration, refused []agent.Refusal, now time.Time) {
	for _, r := range refused {
		m.refused.WithLabelValues(name, string(r.Code)).Inc()
	}
	if w == nil {
		return
	}
	m.rxBytes.WithLabelValues(name).Set(float64(w.ReceiveBytes))
	m.txBytes.WithLabelValues(name).Set(float64(w.TransmitBytes))
	if !w.LastHandshakeTime.IsZero() {
		m.handshakeAge.WithLabelValues(name).Set(now.Sub(w.LastHandshakeTime).Seconds())
	}
	if rtt > 0 {
		m.latency.WithLabelValues(name).Set(rtt.Seconds())
	}
}

// reset forgets every per-peer series before a sync sets them again.
func (m *metrics) reset() {
	for _, v := range []*prometheus.GaugeVec{m.handshakeAge, m.rxBytes, m.txBytes, m.latency, m.refused} {
		v.Reset()
	}
}

// kernelRefusals records what one apply could not put in place.
func (m *metrics) kernelRefusals(refused []dataplane.Refusal) {
	m.refusedObjects.Reset()
	for _, r := range refused {
		m.refusals.WithLabelValues(r.Kind).Inc()
		m.refusedObjects.WithLabelValues(r.Kind).Inc()
	}
}
