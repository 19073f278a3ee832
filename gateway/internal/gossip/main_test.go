package gossip

import (
	"os"
	"testing"

	"github.com/wirespan/wirespan/internal/leakcheck"
)

// TestMain fails the run if memberlist or Gossip goroutines outlive the
// tests (every Gossip is shut down in t.Cleanup).
func TestMain(m *testing.M) {
	os.Exit(leakcheck.Main(m, "hashicorp/memberlist", "internal/gossip.(*Gossip)"))
}
