package linux

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

// TestRestartPeersHandshakesAtOnce: a first initiation that goes
// unanswered (here B does not know A yet, as a remote peer in the middle
// of a failover may not answer) is sent again by WireGuard only 5 s later.
// RestartPeers makes A initiate again at once, with the peer as it was.
func TestRestartPeersHandshakesAtOnce(t *testing.T) {
	requireRoot(t)
	tp := newTunnelPair(t)
	nsA, kA, kB, endA, endB := tp.nsA, tp.kA, tp.kB, tp.endA, tp.endB
	devA, devB, keyA, keyB, stranger := endA.Dev, endB.Dev, endA.Key, endB.Key, mustKey(t)
	// B answers only the peers it knows: a stranger's key for now.
	endB.PeerKey = stranger.PublicKey()
	for _, e := range []struct {
		k   *Kernel
		end tunnelEnd
	}{{kB, endB}, {kA, endA}} {
		t.Cleanup(func() { _ = e.k.DeleteLink(e.end.Dev) })
		if err := e.end.setup(e.k); err != nil {
			t.Fatal(err)
		}
	}
	// Turning the keepalive on sends A's first initiation now.
	keepalive := 25 * time.Second
	if err := kA.ConfigureDevice(devA, wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: keyB.PublicKey(), UpdateOnly: true, PersistentKeepaliveInterval: &keepalive}}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	peerOf := func(k *Kernel, dev string) wgtypes.Peer {
		t.Helper()
		d, err := k.Device(dev)
		if err != nil || len(d.Peers) != 1 {
			t.Fatalf("device %s: %v, %d peers", dev, err, len(d.Peers))
		}
		return d.Peers[0]
	}
	// The initiation leaves once the device is up, which wireguard-go
	// learns from the TUN a moment later.
	var firstInitiation time.Time
	for peerOf(kA, devA).TransmitBytes == 0 {
		if time.Since(start) > 3*time.Second {
			t.Fatal("A sent no initiation")
		}
		time.Sleep(5 * time.Millisecond)
	}
	firstInitiation = time.Now()
	// Now B knows A, but A's initiation went unanswered.
	if err := kB.ConfigureDevice(devB, wgtypes.Config{ReplacePeers: true, Peers: []wgtypes.PeerConfig{{
		PublicKey: keyA.PublicKey(), AllowedIPs: []net.IPNet{*ipNetFromPrefix(netip.MustParsePrefix("10.99.0.1/32"))},
	}}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	before := peerOf(kA, devA)
	if !before.LastHandshakeTime.IsZero() || before.TransmitBytes == 0 {
		t.Fatalf("A before the restart: handshake %v, tx %d; want an initiation sent and unanswered", before.LastHandshakeTime, before.TransmitBytes)
	}

	a := &dataplane.Applier{Kernel: kA, WireGuardName: devA}
	restarted := time.Now()
	if err := a.RestartPeers(devA, []wgtypes.Key{keyB.PublicKey(), stranger.PublicKey()}); err != nil {
		t.Fatal(err)
	}
	// WireGuard's own retry comes 5 s after the first initiation: a
	// handshake before then is the restart's.
	deadline := firstInitiation.Add(4 * time.Second)
	var after wgtypes.Peer
	for after = peerOf(kA, devA); after.LastHandshakeTime.IsZero(); after = peerOf(kA, devA) {
		if time.Now().After(deadline) {
			t.Fatalf("no handshake %v after the restart (WireGuard's own retry would come 5 s after the first initiation)", time.Since(restarted))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("handshake %v after the restart", time.Since(restarted).Round(time.Millisecond))
	if after.Endpoint.String() != before.Endpoint.String() || after.PersistentKeepaliveInterval != keepalive ||
		len(after.AllowedIPs) != 1 || after.AllowedIPs[0].String() != "10.99.0.2/32" {
		t.Errorf("peer after the restart = %+v, want it as it was: %+v", after, before)
	}
	pingThrough(t, nsA, "10.99.0.2")
}

// TestSilencedDeviceOnlyAnswers: a silenced device (a cut-off gateway's)
// starts no handshake however much it has to send, and still completes
// one that its peer starts, after which traffic flows both ways.
func TestSilencedDeviceOnlyAnswers(t *testing.T) {
	requireRoot(t)
	tp := newTunnelPair(t)
	nsA, nsB, kA, kB, endA, endB := tp.nsA, tp.nsB, tp.kA, tp.kB, tp.endA, tp.endB
	devA, devB, keyB := endA.Dev, endB.Dev, endB.Key
	if err := endA.setup(kA); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kA.DeleteLink(devA) })
	keepalive := 25 * time.Second
	if err := kA.ConfigureDevice(devA, wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: keyB.PublicKey(), UpdateOnly: true, PersistentKeepaliveInterval: &keepalive}}}); err != nil {
		t.Fatal(err)
	}
	a := &dataplane.Applier{Kernel: kA, WireGuardName: devA}
	if err := a.Silence(devA); err != nil {
		t.Fatal(err)
	}
	d, err := kA.Device(devA)
	if err != nil || len(d.Peers) != 1 {
		t.Fatalf("device A: %v %+v", err, d)
	}
	if p := d.Peers[0]; p.Endpoint != nil || p.PersistentKeepaliveInterval != 0 || len(p.AllowedIPs) != 1 {
		t.Fatalf("silenced peer %+v, want no endpoint, no keepalive, its allowed IPs", p)
	}
	// B is up now: whatever A sends goes nowhere and starts nothing.
	t.Cleanup(func() { _ = kB.DeleteLink(devB) })
	if err := endB.setup(kB); err != nil {
		t.Fatal(err)
	}
	if _, err := runErr("ip", "netns", "exec", nsA, "ping", "-c3", "-i0.2", "-W1", "10.99.0.2"); err == nil {
		t.Fatal("a silenced device reached its peer on its own")
	}
	if d, _ := kA.Device(devA); d.Peers[0].TransmitBytes != 0 || !d.Peers[0].LastHandshakeTime.IsZero() {
		t.Fatalf("the silenced device sent %d bytes, handshake %v; want none", d.Peers[0].TransmitBytes, d.Peers[0].LastHandshakeTime)
	}
	// B dials in: A answers.
	pingThrough(t, nsB, "10.99.0.1")
	pingThrough(t, nsA, "10.99.0.2")
}
