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
	nsA, nsB := vethPair(t)
	kA, kB := newKernel(t, nsA), newKernel(t, nsB)
	devA, devB := devName(), devName()
	keyA, keyB, stranger := mustKey(t), mustKey(t), mustKey(t)
	// B answers only the peers it knows: a stranger's key for now.
	endB := tunnelEnd{Dev: devB, Key: keyB, PeerKey: stranger.PublicKey(), Addr: "10.99.0.2", PeerAddr: "10.99.0.1", PeerUnderlay: "192.168.77.1"}
	endA := tunnelEnd{Dev: devA, Key: keyA, PeerKey: keyB.PublicKey(), Addr: "10.99.0.1", PeerAddr: "10.99.0.2", PeerUnderlay: "192.168.77.2"}
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
