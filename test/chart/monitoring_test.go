package chart

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// The dashboard and the alerts are off by default; on, the chart ships the
// files as they are (test/promql checks their PromQL and metric names), in
// the namespace and with the labels the values give.
func TestMonitoringValues(t *testing.T) {
	if r := render(t, "--set", "clusterID=east"); r.kinds()["ConfigMap"] != 0 || r.kinds()["PrometheusRule"] != 0 {
		t.Errorf("the default values render a dashboard or alerts: %v", r.kinds())
	}
	r := render(t, "-f", fullValues)

	var cm corev1.ConfigMap
	r.into(t, "ConfigMap", "wirespan-west-dashboard", &cm)
	if cm.Namespace != "kube-system" || cm.Labels["grafana_dashboard"] != "1" || cm.Labels["team"] != "network" ||
		cm.Annotations["grafana_folder"] != "Networking" {
		t.Errorf("dashboard ConfigMap %s/%s labels %v annotations %v", cm.Namespace, cm.Name, cm.Labels, cm.Annotations)
	}
	file := readChartFile(t, "dashboard.json")
	if cm.Data["wirespan.json"] != string(file[:len(file)-1]) { // |- drops the final newline
		t.Error("the ConfigMap's wirespan.json is not files/monitoring/dashboard.json")
	}
	if !json.Valid([]byte(cm.Data["wirespan.json"])) {
		t.Error("the dashboard is not valid JSON")
	}

	rule := r.get("PrometheusRule", "wirespan-west")
	if rule == nil || rule.GetNamespace() != namespace || rule.GetLabels()["release"] != "prometheus" {
		t.Fatalf("PrometheusRule %v", rule)
	}
	var want map[string]any
	if err := yaml.Unmarshal(readChartFile(t, "alerts.yaml"), &want); err != nil {
		t.Fatal(err)
	}
	if got := rule.Object["spec"]; !reflect.DeepEqual(got, want) {
		t.Errorf("the PrometheusRule's spec is not files/monitoring/alerts.yaml (Helm must not evaluate its {{ $labels }}):\n%v", got)
	}
}

func readChartFile(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir, "files", "monitoring", name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
