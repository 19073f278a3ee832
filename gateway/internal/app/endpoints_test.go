package app

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func TestEndpointChooser(t *testing.T) {
	a, b, c := netip.MustParseAddrPort("172.28.2.10:51820"), netip.MustParseAddrPort("172.28.2.11:51820"), netip.MustParseAddrPort("172.28.2.12:51820")
	listed := []netip.AddrPort{a, b, c}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	peerAt := func(ep netip.AddrPort, handshake time.Time) *wgtypes.Peer {
		return &wgtypes.Peer{Endpoint: net.UDPAddrFromAddrPort(ep), LastHandshakeTime: handshake}
	}
	check := func(what string, got []netip.AddrPort, want netip.AddrPort) {
		t.Helper()
		if got[0] != want || len(got) != len(listed) {
			t.Errorf("%s: dials %v first (order %v), want %v", what, got[0], got, want)
		}
	}
	var ch endpointChooser
	if got, _ := ch.order("c2", []netip.AddrPort{a}, b, nil, t0); !slices.Equal(got, []netip.AddrPort{a}) {
		t.Errorf("one endpoint: order %v", got)
	}
	check("new gateway, recorded endpoint", order(ch.order("c2", listed, b, nil, t0)), b)
	check("device made, no answer yet", order(ch.order("c2", listed, b, peerAt(b, time.Time{}), t0)), b)
	check("still no answer", order(ch.order("c2", listed, b, peerAt(b, time.Time{}), t0.Add(rotateAfter-time.Millisecond))), b)
	check("no answer: the next one", order(ch.order("c2", listed, b, peerAt(b, time.Time{}), t0.Add(rotateAfter))), c)
	check("and round", order(ch.order("c2", listed, b, peerAt(c, time.Time{}), t0.Add(2*rotateAfter))), a)
	// A standby (no device) keeps no rotation: when it becomes active it
	// dials the recorded endpoint first, whatever time has passed.
	var standby endpointChooser
	for i := range 5 {
		check("standby", order(standby.order("c2", listed, c, nil, t0.Add(time.Duration(i)*rotateAfter))), c)
	}
	// The peer's active gateway answered from c (WireGuard roamed there):
	// the tunnel stays on it.
	now := t0.Add(3 * rotateAfter)
	check("healthy on a roamed endpoint", order(ch.order("c2", listed, b, peerAt(c, now.Add(-time.Minute)), now)), c)
	// A roam to an address Git does not list is not kept.
	check("unlisted endpoint", order(ch.order("c2", listed, netip.AddrPort{}, peerAt(netip.MustParseAddrPort("192.0.2.1:1"), now), now)), a)
	// A dead session (no handshake for WireGuard's three minutes) stays
	// on its endpoint for a rotation, then tries the others.
	var fresh endpointChooser
	check("stale session", order(fresh.order("c3", listed, c, peerAt(a, now.Add(-healthyFor)), now)), a)
	check("stale session, later", order(fresh.order("c3", listed, c, peerAt(a, now.Add(-healthyFor)), now.Add(rotateAfter))), b)
	if _, healthy := ch.order("c2", listed, b, peerAt(c, now.Add(-time.Minute)), now); !healthy {
		t.Error("a recent handshake on a listed endpoint is not healthy")
	}
	if got, healthy := ch.order("c2", listed, a, nil, now); !slices.Contains(got, b) || !slices.Contains(got, c) || healthy {
		t.Errorf("order %v lost an endpoint", got)
	}
}

// order drops the health of an order, for checks of the order alone.
func order(listed []netip.AddrPort, _ bool) []netip.AddrPort { return listed }
