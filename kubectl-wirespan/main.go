// Command kubectl-wirespan is the kubectl plugin for Wirespan: `kubectl
// wirespan status`, `graph` and `diagnose` show a clusterset as one or
// more of its clusters see it, through the usual kubeconfig flags. It goes
// through the Kubernetes API and its authorization only: it reads, and
// diagnose creates (then deletes) ProbeRequests that the gateways answer.
package main

import (
	"os"

	"github.com/wirespan/wirespan/kubectl-wirespan/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
