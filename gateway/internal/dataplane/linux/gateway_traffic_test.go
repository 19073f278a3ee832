package linux

import (
	"bytes"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestGatewaysPodToPod runs two gateways in the tests' WireGuard mode (see
// testMode) and checks that each pod reaches the other with its own source
// address, then that teardown leaves nothing behind.
func TestGatewaysPodToPod(t *testing.T) {
	requireRoot(t)
	kernel := testMode() == WireGuardKernel
	peerPair(t, gatewayMode{testMode(), kernel}, gatewayMode{testMode(), kernel})
}

// TestGatewaysKernelWithUserspace peers a kernel WireGuard gateway with an
// embedded userspace one: the two implementations must speak to each
// other, as they do when a cluster's nodes differ.
func TestGatewaysKernelWithUserspace(t *testing.T) {
	requireRoot(t)
	requireKernelWireGuard(t)
	peerPair(t, gatewayMode{WireGuardKernel, true}, gatewayMode{WireGuardUserspace, false})
}

// TestGatewayAuto checks that a gateway in auto mode (the default) takes
// kernel WireGuard exactly where the kernel has it, and carries traffic.
func TestGatewayAuto(t *testing.T) {
	requireRoot(t)
	kernelErr := kernelWireGuard(t)
	t.Logf("kernel WireGuard here: %v", kernelErr == nil)
	peerPair(t, gatewayMode{WireGuardAuto, kernelErr == nil}, gatewayMode{testMode(), testMode() == WireGuardKernel})
}

// gatewayMode is the mode a test gateway runs in, and whether it must
// have made a kernel WireGuard device.
type gatewayMode struct {
	mode   WireGuardMode
	kernel bool
}

// peerPair runs a gateway pair in the given modes, checks traffic both
// ways, and tears both down.
func peerPair(t *testing.T, modeA, modeB gatewayMode) {
	t.Helper()
	a, b := gatewayPair(t)
	checkKind(t, a.start(t, modeA.mode), modeA.kernel)
	checkKind(t, b.start(t, modeB.mode), modeB.kernel)
	checkSource(t, a, b)
	checkSource(t, b, a)
	a.teardown(t)
	b.teardown(t)
}

// TestGatewayRestart kills a gateway (SIGKILL, as a crash would) while a
// pod streams pings through it and starts a new one; then kills it again
// and pings while no gateway runs at all. With kernel WireGuard the kernel
// keeps the device, its keys, peers and sessions: not one ping is lost,
// either across the restart or while the gateway is down, and the new
// process finds nothing to change. A userspace device dies with its
// process: the test measures and logs what that costs.
func TestGatewayRestart(t *testing.T) {
	requireRoot(t)
	kernel := testMode() == WireGuardKernel
	a, b := gatewayPair(t)
	a.start(t, testMode())
	b.start(t, testMode())
	checkSource(t, a, b)

	// 120 pings, 50 ms apart: the restart falls in the middle.
	const interval = 50 * time.Millisecond
	pings := startPings(t, a, b, interval, 120)
	time.Sleep(time.Second)
	a.gw.kill()
	restarted := a.start(t, testMode())
	t.Logf("restarted gateway changed: %q", restarted.report.Changes)
	lost := pings()
	t.Logf("%s: %d pings lost across the restart (about %v)", testMode(), lost, time.Duration(lost)*interval)
	if kernel && lost != 0 {
		t.Errorf("kernel WireGuard: %d pings lost across a gateway restart, want none", lost)
	}
	if kernel && len(restarted.report.Changes) != 0 {
		t.Errorf("restarted gateway changed %q, want nothing (the kernel kept it all)", restarted.report.Changes)
	}

	a.gw.kill()
	lost = startPings(t, a, b, interval, 20)()
	t.Logf("%s: %d of 20 pings lost with no gateway process running", testMode(), lost)
	if kernel && lost != 0 {
		t.Errorf("kernel WireGuard: %d of 20 pings lost while the gateway was down, want none", lost)
	}
	a.start(t, testMode())
	checkSource(t, a, b)
	a.teardown(t)
	b.teardown(t)
}

// startPings starts count pings, interval apart, from from's pod to to's,
// and returns a function that waits for them to end and returns how many
// got no reply (within a second each).
func startPings(t *testing.T, from, to *cluster, interval time.Duration, count int) func() int {
	t.Helper()
	ping := exec.Command("ip", "netns", "exec", from.pod, "ping", "-q", "-n", "-W", "1",
		"-i", strconv.FormatFloat(interval.Seconds(), 'f', 2, 64), "-c", strconv.Itoa(count), to.podIP.String())
	var out bytes.Buffer
	ping.Stdout, ping.Stderr = &out, &out
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = ping.Wait() // ping exits 1 when a reply was lost: the counts tell
		close(done)
	}()
	t.Cleanup(func() { _ = ping.Process.Kill(); <-done })
	return func() int {
		<-done
		sent, got := pingCounts(t, out.Bytes())
		return sent - got
	}
}

var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

func pingCounts(t *testing.T, out []byte) (sent, received int) {
	t.Helper()
	m := pingSummary.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no summary in ping's output: %s", out)
	}
	sent, _ = strconv.Atoi(string(m[1]))
	received, _ = strconv.Atoi(string(m[2]))
	return sent, received
}

func checkKind(t *testing.T, g *gatewayProc, kernel bool) {
	t.Helper()
	want := map[bool]string{true: "wireguard", false: "tun"}[kernel]
	if g.report.Kind != want {
		t.Errorf("gateway made a %q link, want %q", g.report.Kind, want)
	}
}

// checkSource connects from a pod of from to a pod of to, whose server
// answers with the source address it saw: it must be from's pod address
// (no NAT anywhere on the path).
func checkSource(t *testing.T, from, to *cluster) {
	t.Helper()
	connectFrom(t, from.pod, to.pod, from.podIP, to.podIP)
}

// listenIn listens on addr with a socket in namespace ns.
func listenIn(t *testing.T, ns, addr string) net.Listener {
	t.Helper()
	n, err := openNamespace(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = n.close() }()
	var ln net.Listener
	if err := n.do(func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, ns, err)
	}
	return ln
}
