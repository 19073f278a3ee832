// Package chart tests the Helm chart charts/wirespan with the pinned helm
// (`make bins`): helm lint, helm template with the default and a full set of
// values, the values schema, every rendered object applied with
// `kubectl apply --dry-run=server` to a real API server, and the real
// operator run with exactly the chart's RBAC, authenticated as its
// ServiceAccount. The gateway's RBAC is tested the same way in the lab
// (test/e2e), where gateways can run. It has only tests; docs/helm.md
// describes the chart.
package chart
