// Package poll waits in tests for something that becomes true eventually:
// a controller's write, a route, a DNS answer.
package poll

import (
	"testing"
	"time"
)

// Until calls check until it returns nil, and fails the test with check's
// last error if timeout passes first. It checks at most every 200 ms, and
// more often for short timeouts (timeout/100, at least every 10 ms), so
// that fast paths are not slowed down and slow checks (kubectl, dig) do
// not run back to back.
func Until(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	interval := min(200*time.Millisecond, max(10*time.Millisecond, timeout/100))
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after %v: %v", what, timeout, err)
		}
		time.Sleep(interval)
	}
}
