package promql

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// promQL is Prometheus' parser with its default options: no experimental
// functions, which a stock Prometheus would refuse.
var promQL = parser.NewParser(parser.Options{})

// repo is the repository root, from this package's folder.
const repo = "../.."

var monitoring = filepath.Join(repo, "charts", "wirespan", "files", "monitoring")

// expression is one PromQL expression and where it is.
type expression struct {
	where, expr string
}

func TestAlertsPassRulefmt(t *testing.T) {
	groups, errs := rulefmt.ParseFile(filepath.Join(monitoring, "alerts.yaml"), false, model.LegacyValidation, promQL, slog.Default())
	for _, err := range errs {
		t.Errorf("alerts.yaml: %v", err)
	}
	if groups == nil || len(groups.Groups) == 0 {
		t.Fatal("alerts.yaml has no rule groups")
	}
	var alerts []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s lacks a severity, summary or description", r.Alert)
			}
		}
	}
	// What the chart promises (docs/helm.md).
	for _, want := range []string{"WirespanTunnelHandshakeStale", "WirespanTunnelsDown", "WirespanRangesRefused", "WirespanGossipRefused",
		"WirespanExportConflicts", "WirespanClusterLostFromGossip", "WirespanDNSEndpointMissing"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("alerts.yaml has no %s", want)
		}
	}
}

func TestEveryExpressionNamesDeclaredMetrics(t *testing.T) {
	exprs := append(alertExpressions(t), dashboardExpressions(t)...)
	declared := declaredMetrics(t)
	used := map[string]bool{}
	for _, e := range exprs {
		parsed, err := promQL.ParseExpr(e.expr)
		if err != nil {
			t.Errorf("%s: %q does not parse: %v", e.where, e.expr, err)
			continue
		}
		names := selectedNames(parsed)
		if len(names) == 0 {
			t.Errorf("%s: %q selects no metric by name", e.where, e.expr)
		}
		for _, n := range names {
			used[n] = true
			if !strings.HasPrefix(n, "wirespan_") {
				// test/e2e finds the names to scrape for by this prefix.
				t.Errorf("%s: %s is not a wirespan_ metric", e.where, n)
			}
			if !declared[n] && !declared[histogramBase(n)] {
				t.Errorf("%s: %s is declared by neither the operator nor the gateway", e.where, n)
			}
		}
	}
	t.Logf("%d expressions use %d metrics", len(exprs), len(used))
}

// selectedNames are the metric names an expression's selectors name.
func selectedNames(e parser.Expr) []string {
	var out []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				out = append(out, m.Value)
			}
		}
		return nil
	})
	return out
}

func histogramBase(name string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			return base
		}
	}
	return name
}

func alertExpressions(t *testing.T) []expression {
	t.Helper()
	groups, errs := rulefmt.ParseFile(filepath.Join(monitoring, "alerts.yaml"), false, model.LegacyValidation, promQL, slog.Default())
	if len(errs) > 0 {
		t.Fatalf("alerts.yaml: %v", errs)
	}
	var out []expression
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			out = append(out, expression{"alert " + r.Alert, r.Expr})
		}
	}
	return out
}

// dashboard is the part of Grafana's dashboard model the test reads.
type dashboard struct {
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID      int     `json:"id"`
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

func dashboardExpressions(t *testing.T) []expression {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(monitoring, "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	var d dashboard
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("dashboard.json is not valid JSON: %v", err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard.json has no uid, title or panels")
	}
	var out []expression
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				out = append(out, expression{"panel " + p.Title + " " + tg.RefID, tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// metricName is a metric's Name in a prometheus Opts literal.
var metricName = regexp.MustCompile(`Name:\s*"(wirespan_[a-z0-9_]+)"`)

// declaredMetrics are the names the operator and the gateway declare:
// every `Name: "wirespan_..."` of their non-test Go files. (This module
// cannot import their internal packages; the lab scrape in test/e2e checks
// the running binaries.)
func declaredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, dir := range []string{"operator", "gateway"} {
		err := filepath.WalkDir(filepath.Join(repo, dir), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range metricName.FindAllStringSubmatch(string(src), -1) {
				out[m[1]] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(out) < 20 {
		t.Fatalf("found only %d declared metrics: the pattern no longer matches how they are declared", len(out))
	}
	return out
}
