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
	if got := ch.order("c2", []netip.AddrPort{a}, b, nil, t0); !slices.Equal(got, []netip.AddrPort{a}) {
		t.Errorf("one endpoint: order %v", got)
	}
	check("new gateway, recorded endpoint", ch.order("c2", listed, b, nil, t0), b)
	check("no answer yet", ch.order("c2", listed, b, peerAt(b, time.Time{}), t0.Add(rotateAfter-time.Millisecond)), b)
	check("no answer: the next one", ch.order("c2", listed, b, peerAt(b, time.Time{}), t0.Add(rotateAfter)), c)
	check("and round", ch.order("c2", listed, b, peerAt(c, time.Time{}), t0.Add(2*rotateAfter)), a)
	// The peer's active gateway answered from c (WireGuard roamed there):
	// the tunnel stays on it.
	now := t0.Add(3 * rotateAfter)
	check("healthy on a roamed endpoint", ch.order("c2", listed, b, peerAt(c, now.Add(-time.Minute)), now), c)
	// A roam to an address Git does not list is not kept.
	check("unlisted endpoint", ch.order("c2", listed, netip.AddrPort{}, peerAt(netip.MustParseAddrPort("192.0.2.1:1"), now), now), a)
	// A dead session (no handshake for WireGuard's three minutes) starts
	// over from the recorded endpoint.
	var fresh endpointChooser
	check("stale session", fresh.order("c3", listed, c, peerAt(a, now.Add(-healthyFor)), now), c)
	if got := ch.order("c2", listed, a, nil, now); !slices.Contains(got, b) || !slices.Contains(got, c) {
		t.Errorf("order %v lost an endpoint", got)
	}
}
