package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// metricToken finds the metric names in the chart's alerts and dashboard.
// test/promql parses every expression with Prometheus' parser and checks
// that each selects only wirespan_ names, so this finds them all.
var metricToken = regexp.MustCompile(`\bwirespan_[a-z0-9_]+\b`)

// notBeforeAnEvent are metric families with labels whose series exist only
// once what they count has happened: a healthy lab exposes none of them
// (Prometheus' exposition leaves out a family without series).
var notBeforeAnEvent = map[string]string{
	"wirespan_gateway_refused_cidrs":             "a peer's claim refused (TestHostileClaimsAreRefused scrapes it)",
	"wirespan_gateway_dataplane_refusals_total":  "the kernel refusing an object",
	"wirespan_gateway_dataplane_refused_objects": "the kernel refusing an object",
	"wirespan_mcs_unusable_records_total":        "a remote export record refused",
}

// TestChartMonitoringNamesOnlyExposedMetrics scrapes the operator and the
// active gateway of every lab cluster and checks that every metric the
// chart's alerts and dashboard use is exposed.
func TestChartMonitoringNamesOnlyExposedMetrics(t *testing.T) {
	peeredLab(t)
	used := map[string]bool{}
	for _, f := range []string{"alerts.yaml", "dashboard.json"} {
		raw, err := os.ReadFile(filepath.Join(repo, "charts", "wirespan", "files", "monitoring", f))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range metricToken.FindAllString(string(raw), -1) {
			used[m] = true
		}
	}
	if len(used) < 20 {
		t.Fatalf("only %d metric names found in the chart's monitoring files", len(used))
	}
	// Not in the chart's files, but every binary exposes it (docs/gateway.md).
	used["wirespan_build_info"] = true
	// The latency gauge appears after the first probe through a tunnel;
	// the DNS server's after the active gateway starts it.
	eventually(t, 60*time.Second, "every metric the chart uses is exposed", func() error {
		var scraped strings.Builder
		for _, c := range shared.Clusters {
			text, err := scrapeOperator(c.APIServer)
			if err != nil {
				return err
			}
			scraped.WriteString(text)
			gw, err := inPod(c.Name, c.Nodes[0].Name, "bash", "-c",
				"exec 3<>/dev/tcp/127.0.0.1/9090; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3")
			if err != nil {
				return fmt.Errorf("scrape %s's gateway: %w", c.Name, err)
			}
			scraped.WriteString(gw)
		}
		exposed := map[string]bool{}
		for _, line := range strings.Split(scraped.String(), "\n") {
			if name, _, ok := strings.Cut(line, "{"); ok || strings.HasPrefix(line, "wirespan_") {
				if !ok {
					name, _, _ = strings.Cut(line, " ")
				}
				exposed[name] = true
			}
		}
		var missing []string
		for name := range used {
			if !exposed[name] && notBeforeAnEvent[name] == "" {
				missing = append(missing, name)
			}
		}
		slices.Sort(missing)
		if len(missing) > 0 {
			return fmt.Errorf("the chart uses metrics no binary exposes: %v", missing)
		}
		return nil
	})
}

func scrapeOperator(apiServer string) (string, error) {
	u, err := url.Parse(apiServer)
	if err != nil {
		return "", err
	}
	// The lab runs each operator's metrics on its API server's address,
	// port 8080 (plan.OperatorMetrics).
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort(u.Hostname(), "8080") + "/metrics")
	if err != nil {
		return "", fmt.Errorf("scrape operator: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("scrape operator: %s", resp.Status)
	}
	return string(body), nil
}
