package linux

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wirespan/wirespan/gateway/internal/dataplane"
	"github.com/wirespan/wirespan/internal/testreq"
)

func mustKey(t testing.TB) wgtypes.Key {
	t.Helper()
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestUserspaceDevice(t *testing.T) {
	requireRoot(t)
	ns := newNS(t)
	// Auto mode: kernel WireGuard where the kernel has it, userspace here.
	k, err := New(Options{NetNS: ns, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	name := devName()

	if _, err := k.Device(name); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Device before create: got %v, want os.ErrNotExist", err)
	}
	if err := k.CreateWireGuard(name, 1420); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.DeleteLink(name) })
	if err := k.CreateWireGuard(name, 1420); err != nil {
		t.Fatalf("second CreateWireGuard: %v", err)
	}
	l, ok, err := k.Link(name)
	if err != nil || !ok {
		t.Fatalf("Link: %v %v", ok, err)
	}
	t.Logf("auto mode made a %q link", l.Kind)
	// Auto must choose kernel WireGuard exactly where the kernel has it.
	want := "tun"
	if kernelWireGuard(t) == nil {
		want = "wireguard"
	}
	if l.Kind != want {
		t.Errorf("Kind = %q, want %q (kernel WireGuard error: %v)", l.Kind, want, kernelWireGuard(t))
	}
	if l.MTU != 1420 || l.Up || len(l.Addresses) != 0 {
		t.Errorf("Link = %+v, want MTU 1420, down, no addresses", l)
	}

	priv, peer1, peer2 := mustKey(t), mustKey(t).PublicKey(), mustKey(t).PublicKey()
	port, keepalive := 51999, 25*time.Second
	cfg := wgtypes.Config{
		PrivateKey:   &priv,
		ListenPort:   &port,
		ReplacePeers: true,
		Peers: []wgtypes.PeerConfig{
			{
				PublicKey:                   peer1,
				Endpoint:                    &net.UDPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 51820},
				AllowedIPs:                  []net.IPNet{*ipNetFromPrefix(netip.MustParsePrefix("10.20.0.0/16"))},
				PersistentKeepaliveInterval: &keepalive,
			},
			{
				PublicKey:  peer2,
				AllowedIPs: []net.IPNet{*ipNetFromPrefix(netip.MustParsePrefix("10.30.0.0/16")), *ipNetFromPrefix(netip.MustParsePrefix("fd00:30::/64"))},
			},
		},
	}
	if err := k.ConfigureDevice(name, cfg); err != nil {
		t.Fatal(err)
	}
	d, err := k.Device(name)
	if err != nil {
		t.Fatal(err)
	}
	if d.PrivateKey != priv || d.PublicKey != priv.PublicKey() || d.ListenPort != port {
		t.Errorf("device key/port = %v/%d, want %v/%d", d.PublicKey, d.ListenPort, priv.PublicKey(), port)
	}
	if len(d.Peers) != 2 {
		t.Fatalf("got %d peers, want 2", len(d.Peers))
	}
	byKey := map[wgtypes.Key]wgtypes.Peer{}
	for _, p := range d.Peers {
		byKey[p.PublicKey] = p
	}
	p1, p2 := byKey[peer1], byKey[peer2]
	if p1.Endpoint.String() != "192.0.2.10:51820" || p1.PersistentKeepaliveInterval != keepalive ||
		len(p1.AllowedIPs) != 1 || p1.AllowedIPs[0].String() != "10.20.0.0/16" {
		t.Errorf("peer 1 = %+v", p1)
	}
	if p2.Endpoint != nil || len(p2.AllowedIPs) != 2 {
		t.Errorf("peer 2 = %+v", p2)
	}

	if err := k.DeleteLink(name); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := k.Link(name); ok {
		t.Error("link still there after DeleteLink")
	}
	if _, err := os.Stat(socketPath(name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after DeleteLink: %v, want gone", err)
	}
	if _, err := k.Device(name); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Device after DeleteLink: got %v, want os.ErrNotExist", err)
	}
	if err := k.DeleteLink(name); err != nil {
		t.Errorf("DeleteLink of a missing link: %v", err)
	}
}

// TestTunnelPing joins two namespaces by a veth pair, runs a userspace
// device in each, makes them peers and pings through the tunnel.
func TestTunnelPing(t *testing.T) {
	requireRoot(t)
	nsA, nsB := vethPair(t)
	kA, kB := newKernel(t, nsA), newKernel(t, nsB)
	devA, devB := devName(), devName()
	keyA, keyB := mustKey(t), mustKey(t)
	for _, end := range []struct {
		k   *Kernel
		cfg tunnelEnd
	}{
		{kA, tunnelEnd{Dev: devA, Key: keyA, PeerKey: keyB.PublicKey(), Addr: "10.99.0.1", PeerAddr: "10.99.0.2", PeerUnderlay: "192.168.77.2"}},
		{kB, tunnelEnd{Dev: devB, Key: keyB, PeerKey: keyA.PublicKey(), Addr: "10.99.0.2", PeerAddr: "10.99.0.1", PeerUnderlay: "192.168.77.1"}},
	} {
		t.Cleanup(func() { _ = end.k.DeleteLink(end.cfg.Dev) })
		if err := end.cfg.setup(end.k); err != nil {
			t.Fatal(err)
		}
	}
	pingThrough(t, nsA, "10.99.0.2")

	d, err := kA.Device(devA)
	if err != nil {
		t.Fatal(err)
	}
	p := d.Peers[0]
	if p.LastHandshakeTime.IsZero() || p.ReceiveBytes == 0 || p.TransmitBytes == 0 {
		t.Errorf("peer after ping: handshake %v, rx %d, tx %d", p.LastHandshakeTime, p.ReceiveBytes, p.TransmitBytes)
	}
	// The UDP socket must be in the namespace, not the test's.
	if out := inNS(t, nsA, "ss", "-Hlun", "sport", "= :51820"); out == "" {
		t.Error("no UDP socket on port 51820 in the device's namespace")
	}
}

// tunnelPair is two namespaces joined by a veth pair (vethPair), a Kernel
// in each, and the two ends of a tunnel between them, not yet set up.
type tunnelPair struct {
	nsA, nsB   string
	kA, kB     *Kernel
	endA, endB tunnelEnd
}

func newTunnelPair(t *testing.T) tunnelPair {
	t.Helper()
	nsA, nsB := vethPair(t)
	devA, devB := devName(), devName()
	keyA, keyB := mustKey(t), mustKey(t)
	return tunnelPair{
		nsA: nsA, nsB: nsB, kA: newKernel(t, nsA), kB: newKernel(t, nsB),
		endA: tunnelEnd{Dev: devA, Key: keyA, PeerKey: keyB.PublicKey(), Addr: "10.99.0.1", PeerAddr: "10.99.0.2", PeerUnderlay: "192.168.77.2"},
		endB: tunnelEnd{Dev: devB, Key: keyB, PeerKey: keyA.PublicKey(), Addr: "10.99.0.2", PeerAddr: "10.99.0.1", PeerUnderlay: "192.168.77.1"},
	}
}

// TestTunnelPingCurrentNamespace is TestTunnelPing with one end run as the
// gateway runs: a process started in the namespace (`ip netns exec`) with
// a Kernel for its own namespace.
func TestTunnelPingCurrentNamespace(t *testing.T) {
	requireRoot(t)
	tp := newTunnelPair(t)
	nsA, nsB, kA, kB, endA, endB := tp.nsA, tp.nsB, tp.kA, tp.kB, tp.endA, tp.endB
	devA, devB := endA.Dev, endB.Dev
	t.Cleanup(func() { _ = kA.DeleteLink(devA) })
	if err := endA.setup(kA); err != nil {
		t.Fatal(err)
	}
	// Runs after the helper ended: removes its link and stale socket.
	t.Cleanup(func() { _ = kB.DeleteLink(devB) })
	startTunnelHelper(t, nsB, endB)
	pingThrough(t, nsA, "10.99.0.2")
	if out := inNS(t, nsB, "ss", "-Hlun", "sport", "= :51820"); out == "" {
		t.Error("no UDP socket on port 51820 in the helper's namespace")
	}
	// A second gateway in the namespace must not take over a running
	// userspace device. A kernel device belongs to no process: creating it
	// again is a no-op.
	err := kB.CreateWireGuard(devB, 1420)
	switch {
	case testMode() == WireGuardKernel && err != nil:
		t.Errorf("CreateWireGuard of an existing kernel device: %v", err)
	case testMode() != WireGuardKernel && (err == nil || !strings.Contains(err.Error(), "another process")):
		t.Errorf("CreateWireGuard of another process's device: %v, want refusal", err)
	}
}

// vethPair makes two namespaces joined by a veth pair, 192.168.77.1/24 on
// va in the first, 192.168.77.2/24 on vb in the second.
func vethPair(t testing.TB) (nsA, nsB string) {
	t.Helper()
	nsA, nsB = newNS(t), newNS(t)
	run(t, "ip", "link", "add", "va", "netns", nsA, "type", "veth", "peer", "name", "vb", "netns", nsB)
	inNS(t, nsA, "ip", "addr", "add", "192.168.77.1/24", "dev", "va")
	inNS(t, nsB, "ip", "addr", "add", "192.168.77.2/24", "dev", "vb")
	inNS(t, nsA, "ip", "link", "set", "va", "up")
	inNS(t, nsB, "ip", "link", "set", "vb", "up")
	return nsA, nsB
}

// pingThrough pings addr from ns until it answers, at most ten times (the
// first packets wait for the handshake).
func pingThrough(t testing.TB, ns, addr string) {
	t.Helper()
	start := time.Now()
	var err error
	for range 10 {
		if _, err = runErr("ip", "netns", "exec", ns, "ping", "-c1", "-W1", addr); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("ping through the tunnel: %v", err)
	}
	t.Logf("first ping through the tunnel answered after %v", time.Since(start).Round(time.Millisecond))
}

// TestPersistence closes a Kernel as a process exit would and checks that a
// new one attaches to the link left behind.
//
// In kernel mode the device itself outlives the process, configuration and
// all; in userspace mode the TUN link does, and the new process attaches a
// new device to it.
func TestPersistence(t *testing.T) {
	requireRoot(t)
	ns := newNS(t)
	name := devName()
	k1, err := New(Options{NetNS: ns, WireGuardMode: testMode(), Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k1.Close() })
	if err := k1.CreateWireGuard(name, 1400); err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParsePrefix("10.77.0.1/24")
	route := dataplane.Route{Dst: netip.MustParsePrefix("10.78.0.0/16"), Dev: name}
	if err := k1.AddAddress(name, addr); err != nil {
		t.Fatal(err)
	}
	if err := k1.SetUp(name); err != nil {
		t.Fatal(err)
	}
	if err := k1.ReplaceRoute(51820, route); err != nil {
		t.Fatal(err)
	}
	priv1 := mustKey(t)
	if err := k1.ConfigureDevice(name, wgtypes.Config{PrivateKey: &priv1}); err != nil {
		t.Fatal(err)
	}
	index1 := linkIndex(t, k1, name)
	if err := k1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(socketPath(name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after Close: %v, want gone", err)
	}

	k2 := newKernel(t, ns)
	t.Cleanup(func() { _ = k2.DeleteLink(name) })
	l, ok, err := k2.Link(name)
	if err != nil || !ok {
		t.Fatalf("link after Close: ok %v, err %v", ok, err)
	}
	d, err := k2.Device(name)
	switch {
	case testMode() == WireGuardKernel && (err != nil || d.PublicKey != priv1.PublicKey()):
		t.Fatalf("kernel Device after its process closed: %v, %v; want it kept, with its key", d, err)
	case testMode() != WireGuardKernel && !errors.Is(err, os.ErrNotExist):
		t.Fatalf("Device with no process running it: %v, want os.ErrNotExist", err)
	}
	if err := k2.CreateWireGuard(name, 1280); err != nil {
		t.Fatal(err)
	}
	if index2 := linkIndex(t, k2, name); index2 != index1 {
		t.Errorf("ifindex after re-attach = %d, want %d", index2, index1)
	}
	l2, _, _ := k2.Link(name)
	if l2.MTU != 1400 || !l2.Up || !slices.Equal(l2.Addresses, []netip.Prefix{addr}) {
		t.Errorf("link after re-attach = %+v, want as before (%+v)", l2, l)
	}
	routes, err := k2.Routes(51820)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(routes, []dataplane.Route{route}) {
		t.Errorf("routes after re-attach = %+v, want %+v", routes, route)
	}
	priv := mustKey(t)
	if err := k2.ConfigureDevice(name, wgtypes.Config{PrivateKey: &priv}); err != nil {
		t.Fatal(err)
	}
	if d, err := k2.Device(name); err != nil || d.PublicKey != priv.PublicKey() {
		t.Fatalf("Device after re-attach: %v, %v", d, err)
	}

	if err := k2.DeleteLink(name); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := k2.Link(name); ok {
		t.Error("link still there after DeleteLink")
	}
	if _, err := os.Stat(socketPath(name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after DeleteLink: %v, want gone", err)
	}
}

func linkIndex(t *testing.T, k *Kernel, name string) int {
	t.Helper()
	l, err := k.nl.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Index
}

// TestSocketRemoved checks that a device whose UAPI socket someone deleted
// (so that wgctrl cannot reach it) is replaced by the next CreateWireGuard.
func TestSocketRemoved(t *testing.T) {
	requireRoot(t)
	ns := newNS(t)
	// Userspace devices only, in every mode: kernel ones have no socket.
	k := newKernelMode(t, ns, WireGuardUserspace)
	name := devName()
	if err := k.CreateWireGuard(name, 1420); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.DeleteLink(name) })
	index := linkIndex(t, k, name)
	if err := os.Remove(socketPath(name)); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Device(name); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Device without its socket: %v, want os.ErrNotExist", err)
	}
	// The device notices the removal through inotify, asynchronously.
	deadline := time.Now().Add(5 * time.Second)
	for k.devices[name].alive() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := k.CreateWireGuard(name, 1420); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Device(name); err != nil {
		t.Errorf("Device after CreateWireGuard: %v", err)
	}
	if got := linkIndex(t, k, name); got != index {
		t.Errorf("ifindex = %d, want %d", got, index)
	}
}

// TestKernelMode checks the kernel path where the kernel has WireGuard. It
// skips with the reason where the kernel has none (the VM tier runs it on
// one that has), after checking the error kernel mode gives there.
func TestKernelMode(t *testing.T) {
	requireRoot(t)
	ns := newNS(t)
	k, err := New(Options{NetNS: ns, WireGuardMode: WireGuardKernel, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	name := devName()
	err = k.CreateWireGuard(name, 1420)
	if err != nil {
		if !strings.Contains(err.Error(), "create kernel wireguard "+name) {
			t.Errorf("error lacks context: %v", err)
		}
		if _, ok, _ := k.Link(name); ok {
			t.Error("a failed CreateWireGuard left a link")
		}
		testreq.CannotRun(t, testreq.KernelWireGuard, fmt.Sprintf("no kernel WireGuard here: %v", err))
	}
	t.Cleanup(func() { _ = k.DeleteLink(name) })
	l, _, _ := k.Link(name)
	if l.Kind != "wireguard" {
		t.Errorf("Kind = %q, want wireguard", l.Kind)
	}
	priv := mustKey(t)
	if err := k.ConfigureDevice(name, wgtypes.Config{PrivateKey: &priv}); err != nil {
		t.Fatal(err)
	}
	if d, err := k.Device(name); err != nil || d.PublicKey != priv.PublicKey() {
		t.Errorf("Device: %v, %v", d, err)
	}
}
