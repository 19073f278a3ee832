package dns

import (
	"os"
	"testing"

	"github.com/wirespan/wirespan/internal/leakcheck"
)

// TestMain fails the run if a Server's goroutines (its listeners, or
// queries in flight) outlive the tests: every Server is stopped in
// t.Cleanup, and a stopped Server leaves nothing running.
func TestMain(m *testing.M) {
	os.Exit(leakcheck.Main(m, "github.com/miekg/dns.", "internal/dns.(*Server)"))
}
