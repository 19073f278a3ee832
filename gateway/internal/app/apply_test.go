package app

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wirespan/wirespan/gateway/internal/agent"
	"github.com/wirespan/wirespan/gateway/internal/dataplane"
	"github.com/wirespan/wirespan/gateway/internal/dataplane/fake"
)

// A route the kernel refuses on every sync is logged once, when it first
// fails, and once when it is taken; it is counted on every sync, and the
// gauge says how many are refused now.
func TestRefusalsLoggedOnceCountedEverySync(t *testing.T) {
	var lines []string
	k := fake.New()
	k.AddLink(dataplane.Link{Name: "eth0", Kind: "veth", MTU: 1500, Up: true})
	s := &syncer{
		log:     funcr.New(func(_, args string) { lines = append(lines, args) }, funcr.Options{}),
		applier: &dataplane.Applier{Kernel: k},
		metrics: newMetrics(prometheus.NewRegistry()),
	}
	s.tunnels = newTunnels(s, func() bool { return true })
	good := dataplane.Route{Dst: netip.MustParsePrefix("10.2.0.0/16"), Dev: "eth0"}
	bad := dataplane.Route{Dst: netip.MustParsePrefix("10.3.0.0/16"), Dev: "nosuch0"}
	plan := func(routes ...dataplane.Route) agent.Plan {
		return agent.Plan{State: dataplane.State{Table: 51820, Routes: routes}}
	}
	count := func(want string) int {
		n := 0
		for _, l := range lines {
			if strings.Contains(l, want) {
				n++
			}
		}
		return n
	}
	for range 3 {
		if refused := s.apply(plan(good, bad)); len(refused) != 1 || refused[0].Dst != bad.Dst {
			t.Fatalf("refused %v, want the route to %s", refused, bad.Dst)
		}
	}
	if n := count("the kernel refused a change"); n != 1 {
		t.Errorf("%d log lines for one refusal over 3 syncs, want 1:\n%s", n, strings.Join(lines, "\n"))
	}
	if got := value(t, s.metrics.refusals.WithLabelValues(dataplane.KindRoute)); got != 3 {
		t.Errorf("refusals_total{kind=route} = %v, want 3", got)
	}
	if got := value(t, s.metrics.refusedObjects.WithLabelValues(dataplane.KindRoute)); got != 1 {
		t.Errorf("refused_objects{kind=route} = %v, want 1", got)
	}
	if !strings.Contains(k.Dump(), "10.2.0.0/16 dev eth0") {
		t.Errorf("the good route is missing:\n%s", k.Dump())
	}

	s.apply(plan(good))
	if n := count("the kernel took a change it refused before"); n != 1 {
		t.Errorf("%d log lines for a cleared refusal, want 1", n)
	}
	if got := value(t, s.metrics.refusedObjects.WithLabelValues(dataplane.KindRoute)); got != 0 {
		t.Errorf("refused_objects{kind=route} = %v after it cleared, want 0", got)
	}
}

// value reads a counter's or a gauge's value.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}
