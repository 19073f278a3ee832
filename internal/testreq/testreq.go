// Package testreq is how a test that cannot run where it finds itself
// says so: it skips with the reason, unless the run says this test must
// run (an environment variable set to 1, as `make test` sets them), in
// which case it fails. A run that was meant to include a test never
// passes without it.
package testreq

import (
	"os"
	"testing"
)

// The environment variables `make test` sets.
const (
	// Privileged: root, and the tools `make deps` installs (ip, nft, dig,
	// busybox, setpriv, qemu, ...).
	Privileged = "WIRESPAN_REQUIRE_PRIVILEGED"
	// Modules: the Go modules the tests fetch from the proxy (the Flux and
	// Argo CD CRDs of test/gitops).
	Modules = "WIRESPAN_REQUIRE_MODULES"
	// KernelWireGuard: a kernel with WireGuard (the VM tier's guest sets
	// it; the project's machines have none).
	KernelWireGuard = "WIRESPAN_REQUIRE_KERNEL_WIREGUARD"
)

// Required reports whether env says the tests that need it must run.
func Required(env string) bool { return os.Getenv(env) == "1" }

// CannotRun skips t because of why, or fails it when Required(env).
func CannotRun(t testing.TB, env, why string) {
	t.Helper()
	if Required(env) {
		t.Fatalf("cannot run, but %s=1 says it must: %s", env, why)
	}
	t.Skip(why)
}
