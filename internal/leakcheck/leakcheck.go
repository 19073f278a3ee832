// Package leakcheck fails a test binary whose goroutines outlive its tests:
// a package whose tests start servers or pools, and stop them in
// t.Cleanup, uses it in TestMain to prove that stopping leaves nothing
// running.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Main runs the tests, then, if they passed, waits up to 5 s for every
// goroutine whose stack mentions one of markers (such as a package path or
// "pkg.(*Type)") to end, and fails the run naming those that do not.
func Main(m *testing.M, markers ...string) int {
	code := m.Run()
	if code == 0 {
		if leaked := waitNone(5*time.Second, markers); leaked != "" {
			fmt.Fprintf(os.Stderr, "leaked goroutines:\n%s\n", leaked)
			code = 1
		}
	}
	return code
}

func waitNone(timeout time.Duration, markers []string) string {
	deadline := time.Now().Add(timeout)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			for _, m := range markers {
				if strings.Contains(g, m) {
					leaked = append(leaked, g)
					break
				}
			}
		}
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
