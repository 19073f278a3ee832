// Package kube is kubectl-wirespan's only contact with API servers: it
// turns the kubeconfig flags into one client per context and reads what
// the commands need into model.Cluster values. It reads (get and list),
// with one exception: for diagnose, ProbeAll creates a ProbeRequest per
// cluster, waits for the active gateway's answer and always deletes it.
// Everything that judges what was read lives in the pure packages.
package kube
