package dns

import (
	"errors"
	"fmt"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// rcodeNames are the response codes this server sends, as metric labels.
var rcodeNames = map[int]string{
	dns.RcodeSuccess:        "NOERROR",
	dns.RcodeFormatError:    "FORMERR",
	dns.RcodeServerFailure:  "SERVFAIL",
	dns.RcodeNameError:      "NXDOMAIN",
	dns.RcodeNotImplemented: "NOTIMP",
	dns.RcodeRefused:        "REFUSED",
	dns.RcodeBadVers:        "BADVERS",
}

type metrics struct {
	queries   *prometheus.CounterVec
	byRcode   map[int]prometheus.Counter // resolved once: no label hashing per query
	ignored   prometheus.Counter
	truncated prometheus.Counter
	duration  prometheus.Histogram
	services  prometheus.GaugeFunc
}

func newMetrics(store *Store) *metrics {
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wirespan_dns_queries_total",
			Help: "DNS queries answered by the clusterset DNS server, by response code (NOERROR includes NODATA).",
		}, []string{"rcode"}),
		ignored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wirespan_dns_messages_ignored_total",
			Help: "Messages the clusterset DNS server did not answer: shorter than a DNS header, or responses rather than queries.",
		}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wirespan_dns_truncated_responses_total",
			Help: "UDP responses sent with the TC flag because the answer did not fit the client's buffer; the client retries over TCP.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "wirespan_dns_query_duration_seconds",
			Help:    "Time from a parsed query to its response written to the socket.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 4, 8), // 10µs to 160ms
		}),
		services: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wirespan_dns_services",
			Help: "Imported services the clusterset DNS server holds, including those without records (no ready endpoint, no ClusterSetIP).",
		}, func() float64 { return float64(store.Len()) }),
		byRcode: map[int]prometheus.Counter{},
	}
	for code, name := range rcodeNames {
		m.byRcode[code] = m.queries.WithLabelValues(name)
	}
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.queries, m.ignored, m.truncated, m.duration, m.services}
}

// answered counts one response.
func (m *metrics) answered(rcode int, truncated bool) {
	c, ok := m.byRcode[rcode]
	if !ok {
		c = m.queries.WithLabelValues(fmt.Sprint(rcode))
	}
	c.Inc()
	if truncated {
		m.truncated.Inc()
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	if r == nil {
		return nil
	}
	var errs []error
	var done []prometheus.Collector
	for _, c := range m.collectors() {
		if err := r.Register(c); err != nil {
			errs = append(errs, err)
		} else {
			done = append(done, c)
		}
	}
	if err := errors.Join(errs...); err != nil {
		// Unregister only what this call registered: Unregister goes by
		// metric names, so it would remove another Server's collectors.
		for _, c := range done {
			r.Unregister(c)
		}
		return fmt.Errorf("register DNS metrics: %w", err)
	}
	return nil
}

// unregister removes the collectors, so that a Server can be created again
// on the same registry once the previous one has stopped.
func (m *metrics) unregister(r prometheus.Registerer) {
	if r == nil {
		return
	}
	for _, c := range m.collectors() {
		r.Unregister(c)
	}
}
