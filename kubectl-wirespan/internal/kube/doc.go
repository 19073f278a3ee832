// Package kube is kubectl-wirespan's only contact with API servers: it
// turns the kubeconfig flags into one client per context and reads what
// the commands need into model.Cluster values. It only reads (get and
// list); everything that judges what was read lives in the pure packages.
package kube
