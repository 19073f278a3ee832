// Command gateway will run on every node: WireGuard tunnels, routes and
// gossip on gateway nodes, routes to the active gateway on the others. It is
// not built yet (see docs/architecture.md, "What exists today"); this binary
// says so rather than pretending to work.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "wirespan-gateway: the gateway is not implemented yet; today Wirespan has the operator only (see docs/architecture.md)")
	os.Exit(2)
}
