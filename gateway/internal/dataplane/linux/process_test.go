package linux

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

// The helper process: TestMain runs helperMain instead of the tests when
// helperEnv is set. It works on the namespace it runs in (Options.NetNS
// empty), as the gateway does under `ip netns exec`, and exits without
// closing its Kernel, as a crashed gateway would.
const (
	helperEnv    = "WIRESPAN_LINUX_TEST_HELPER"
	helperDevEnv = "WIRESPAN_LINUX_TEST_DEV"
	// helperTunnelEnv holds a tunnelEnd in JSON for the "tunnel" helper.
	helperTunnelEnv = "WIRESPAN_LINUX_TEST_TUNNEL"
)

type helperReport struct {
	Index int
	// DeviceMissing is whether Device reported os.ErrNotExist before
	// CreateWireGuard.
	DeviceMissing bool
	Routes        int
	PublicKey     string
}

var (
	helperAddr  = netip.MustParsePrefix("10.77.0.1/24")
	helperRoute = dataplane.Route{Dst: netip.MustParsePrefix("10.78.0.0/16")}
)

func helperMain(mode string) int {
	var err error
	switch mode {
	case "tunnel":
		err = serveTunnel(os.Getenv(helperTunnelEnv))
	case "gateway":
		err = serveGateway(os.Getenv(helperGatewayEnv))
	default:
		err = helper(mode, os.Getenv(helperDevEnv))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func helper(mode, dev string) error {
	k, err := New(Options{WireGuardMode: testMode()})
	if err != nil {
		return err
	}
	var rep helperReport
	_, err = k.Device(dev)
	rep.DeviceMissing = errors.Is(err, os.ErrNotExist)
	if err := k.CreateWireGuard(dev, 1400); err != nil {
		return err
	}
	if mode == "create" {
		route := helperRoute
		route.Dev = dev
		for _, err := range []error{
			k.AddAddress(dev, helperAddr),
			k.SetUp(dev),
			k.ReplaceRoute(51820, route),
		} {
			if err != nil {
				return err
			}
		}
	}
	priv, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		return err
	}
	if err := k.ConfigureDevice(dev, wgtypes.Config{PrivateKey: &priv}); err != nil {
		return err
	}
	d, err := k.Device(dev)
	if err != nil {
		return err
	}
	rep.PublicKey = d.PublicKey.String()
	l, err := k.nl.LinkByName(dev)
	if err != nil {
		return err
	}
	rep.Index = l.Attrs().Index
	routes, err := k.Routes(51820)
	if err != nil {
		return err
	}
	rep.Routes = len(routes)
	// Exit without k.Close: the socket file stays, nobody answers on it.
	return json.NewEncoder(os.Stdout).Encode(rep)
}

func runHelper(t *testing.T, ns, mode, dev string) helperReport {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperDevEnv+"="+dev)
	var stderr []byte
	out, err := cmd.Output()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		stderr = ee.Stderr
	}
	if err != nil {
		t.Fatalf("helper %s: %v: %s", mode, err, stderr)
	}
	var rep helperReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("helper %s output %q: %v", mode, out, err)
	}
	return rep
}

// TestRestartAcrossProcesses runs the gateway's part in two processes in
// the namespace, one after the other, each ending without cleaning up. A
// userspace device ends with its process and the second attaches a new one
// to the TUN link left behind; a kernel device stays, and the second finds
// it running.
func TestRestartAcrossProcesses(t *testing.T) {
	requireRoot(t)
	ns := newNS(t)
	dev := devName()
	kernelMode := testMode() == WireGuardKernel
	t.Cleanup(func() { _ = os.Remove(socketPath(dev)) }) // should be gone already

	first := runHelper(t, ns, "create", dev)
	if !first.DeviceMissing || first.Routes != 1 {
		t.Fatalf("first process: %+v", first)
	}
	k := newKernel(t, ns)
	if kernelMode {
		if d, err := k.Device(dev); err != nil || d.PublicKey.String() != first.PublicKey {
			t.Fatalf("kernel Device after its process ended: %v, %v; want it running with the first key", d, err)
		}
	} else {
		if _, err := os.Stat(socketPath(dev)); err != nil {
			t.Fatalf("stale socket of the ended process: %v, want it there", err)
		}
		if _, err := k.Device(dev); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Device with a stale socket: %v, want os.ErrNotExist", err)
		} else {
			t.Logf("Device with a stale socket: %v", err)
		}
	}

	second := runHelper(t, ns, "attach", dev)
	if second.DeviceMissing != !kernelMode {
		t.Errorf("second process: Device missing before CreateWireGuard = %v, want %v", second.DeviceMissing, !kernelMode)
	}
	if second.Index != first.Index {
		t.Errorf("ifindex in second process = %d, want %d", second.Index, first.Index)
	}
	if second.Routes != 1 {
		t.Errorf("second process found %d routes, want 1", second.Routes)
	}
	if second.PublicKey == first.PublicKey {
		t.Error("second process's device did not take its configuration")
	}
	wantKind := map[bool]string{true: "wireguard", false: "tun"}[kernelMode]
	l, ok, err := k.Link(dev)
	if err != nil || !ok || l.Kind != wantKind || len(l.Addresses) != 1 || l.Addresses[0] != helperAddr {
		t.Errorf("link after two processes: %+v, %v, %v; want a %s link", l, ok, err, wantKind)
	}

	if err := k.DeleteLink(dev); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(socketPath(dev)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale socket after DeleteLink: %v, want gone", err)
	}
}

// tunnelEnd is one end of a test tunnel.
type tunnelEnd struct {
	Dev                          string
	Key, PeerKey                 wgtypes.Key
	Addr, PeerAddr, PeerUnderlay string
}

const tunnelPort = 51820

// setup creates and configures the device, gives it Addr/24 and brings it
// up.
func (e tunnelEnd) setup(k *Kernel) error {
	if err := k.CreateWireGuard(e.Dev, 1420); err != nil {
		return err
	}
	port := tunnelPort
	err := k.ConfigureDevice(e.Dev, wgtypes.Config{
		PrivateKey: &e.Key,
		ListenPort: &port,
		Peers: []wgtypes.PeerConfig{{
			PublicKey:  e.PeerKey,
			Endpoint:   &net.UDPAddr{IP: net.ParseIP(e.PeerUnderlay), Port: port},
			AllowedIPs: []net.IPNet{*ipNetFromPrefix(netip.MustParsePrefix(e.PeerAddr + "/32"))},
		}},
	})
	if err != nil {
		return err
	}
	if err := k.AddAddress(e.Dev, netip.MustParsePrefix(e.Addr+"/24")); err != nil {
		return err
	}
	return k.SetUp(e.Dev)
}

// serveTunnel is the helper that runs one tunnel end in its own namespace
// until its stdin closes, then exits without closing the Kernel.
func serveTunnel(cfg string) error {
	var e tunnelEnd
	if err := json.Unmarshal([]byte(cfg), &e); err != nil {
		return err
	}
	k, err := New(Options{WireGuardMode: testMode()})
	if err != nil {
		return err
	}
	if err := e.setup(k); err != nil {
		return err
	}
	fmt.Println("ready")
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
}

// startTunnelHelper runs serveTunnel in a process in ns, and stops it when
// the test ends.
func startTunnelHelper(t *testing.T, ns string, e tunnelEnd) {
	t.Helper()
	cfg, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	cmd, stdin, line := startServing(t, ns, helperEnv+"=tunnel", helperTunnelEnv+"="+string(cfg))
	t.Cleanup(func() {
		_ = stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("tunnel helper: %v", err)
		}
	})
	if string(line) != "ready\n" {
		t.Fatalf("tunnel helper said %q", line)
	}
}

// startServing runs this test binary as a helper process in ns, with env
// added to its environment, and returns once the helper has printed its
// first line. The helper runs until its stdin closes; it is killed if the
// test process dies first.
func startServing(t *testing.T, ns string, env ...string) (*exec.Cmd, io.WriteCloser, []byte) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0])
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper in %s said %q: %v", ns, line, err)
	}
	return cmd, stdin, line
}
