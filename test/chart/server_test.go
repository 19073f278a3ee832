package chart

import (
	"strings"
	"testing"
)

// Every object the chart renders, with the default and the full values, is
// accepted by a real API server: the CRDs are applied for real first (the
// other objects' kinds need them), then everything with
// --dry-run=server, which runs admission and validation (CEL rules, the
// ServiceMonitor's schema, Service IP ranges, PriorityClasses) without
// storing anything.
func TestAPIServerAcceptsEveryObject(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"default values", []string{"--set", "clusterID=east"}},
		{"full values", []string{"-f", fullValues}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := render(t, tc.args...)
			crds := r.without(t, "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount", "Service",
				"Deployment", "DaemonSet", "PodDisruptionBudget", "ServiceMonitor", "ConfigMap", "PrometheusRule")
			// Server-side: the CRDs are too large for client-side apply's
			// annotation, and the test control plane installed them already.
			if out, err := env.Kubectl(crds, "apply", "--server-side", "--force-conflicts", "-f", "-"); err != nil {
				t.Fatalf("apply the chart's CRDs: %v\n%s", err, out)
			}
			out, err := env.Kubectl(r.yaml, "apply", "--dry-run=server", "-f", "-")
			if err != nil {
				t.Fatalf("the API server refused an object: %v\n%s", err, out)
			}
			if accepted := strings.Count(out, "(server dry run)"); accepted != len(r.objects) {
				t.Errorf("%d of %d objects accepted:\n%s", accepted, len(r.objects), out)
			}
		})
	}
}
