// Package promql checks the chart's alerts and Grafana dashboard
// (charts/wirespan/files/monitoring) with Prometheus' own code: every rule
// file passes rulefmt (expressions, durations, annotation templates),
// every expression of every dashboard panel parses, and every metric they
// select is one the operator or the gateway declares. It is a module of its
// own because Prometheus' module would move the operator's dependencies
// (Kubernetes, client_golang) under minimal version selection; `make test`
// runs it. test/e2e then scrapes the binaries in a lab and checks that the
// names used are exposed.
package promql
