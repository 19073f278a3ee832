package vm

import (
	"testing"
	"time"
)

// dataplaneTimeout bounds a guest running the whole dataplane/linux suite
// under software emulation (about 2 minutes here on a loaded machine).
const dataplaneTimeout = 10 * time.Minute

// TestDataplaneKernelWireGuard runs the gateway/internal/dataplane/linux
// suite in the guest with kernel WireGuard: the tests that use userspace
// devices on the host use kernel ones there (WIRESPAN_WIREGUARD_MODE), and
// the tests that need kernel WireGuard (TestKernelMode, the kernel peer of
// a userspace one, auto choosing kernel) must run rather than skip
// (WIRESPAN_REQUIRE_KERNEL_WIREGUARD).
func TestDataplaneKernelWireGuard(t *testing.T) {
	needGuest(t)
	script := `set -e
echo "guest: linux $(uname -r), $(nproc) CPUs"
export WIRESPAN_WIREGUARD_MODE=kernel WIRESPAN_REQUIRE_KERNEL_WIREGUARD=1 WIRESPAN_REQUIRE_PRIVILEGED=1
/work/linux.test -test.v -test.count=1 -test.timeout=8m
`
	if status := runGuest(t, script, dataplaneTimeout); status != 0 {
		t.Fatalf("the dataplane/linux suite failed in the guest (exit status %d): its output is above", status)
	}
}
