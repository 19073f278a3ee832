package app

import (
	"net/netip"
	"slices"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

// A cluster with several gateway nodes lists each one's endpoint in Git,
// but only its active gateway answers. endpointChooser decides which of a
// peer's endpoints the tunnel dials, by putting it first (package agent
// dials the first and accepts the others):
//
//   - while the tunnel is healthy (a handshake in the last healthyFor), the
//     endpoint WireGuard uses now, which is where the peer's active gateway
//     last spoke from (roaming);
//   - otherwise, first where the tunnel last worked as this cluster's
//     gateway recorded it (status.tunnel.endpoint), so a gateway that just
//     became active dials the peer's active gateway at once; then each
//     listed endpoint in turn, rotateAfter each, until one answers.
type endpointChooser struct {
	trying map[string]attempt
}

type attempt struct {
	endpoint netip.AddrPort
	since    time.Time
}

const (
	// healthyFor is WireGuard's own limit: a session with no handshake for
	// three minutes is dead (REJECT_AFTER_TIME).
	healthyFor = 3 * time.Minute
	// rotateAfter leaves WireGuard time for its first handshake retry
	// (REKEY_TIMEOUT, 5 s) before another endpoint is tried.
	rotateAfter = 6 * time.Second
)

// order returns listed with the endpoint to dial first, and whether the
// tunnel is healthy there. recorded is the endpoint the peer's status
// records (invalid: none); dev is the peer as the WireGuard device has it
// (nil: not there yet).
func (c *endpointChooser) order(cluster string, listed []netip.AddrPort, recorded netip.AddrPort, dev *wgtypes.Peer, now time.Time) ([]netip.AddrPort, bool) {
	if len(listed) < 2 {
		return listed, false
	}
	if dev == nil {
		// No tunnel here (a standby, or a gateway just activated): dial
		// where the tunnel last worked; rotation starts once it exists.
		delete(c.trying, cluster)
		return first(listed, pick(listed, recorded)), false
	}
	current := dataplane.UnmapAddrPort(addrPortOf(dev))
	if slices.Contains(listed, current) && now.Sub(dev.LastHandshakeTime) < healthyFor {
		delete(c.trying, cluster)
		return first(listed, current), true
	}
	if c.trying == nil {
		c.trying = map[string]attempt{}
	}
	a, ok := c.trying[cluster]
	switch {
	case !ok || !slices.Contains(listed, a.endpoint):
		a = attempt{endpoint: pick(listed, current, recorded), since: now}
	case now.Sub(a.since) >= rotateAfter:
		next := (slices.Index(listed, a.endpoint) + 1) % len(listed)
		a = attempt{endpoint: listed[next], since: now}
	}
	c.trying[cluster] = a
	return first(listed, a.endpoint), false
}

// pick is the first of candidates that is listed, else the first listed.
func pick(listed []netip.AddrPort, candidates ...netip.AddrPort) netip.AddrPort {
	for _, c := range candidates {
		if slices.Contains(listed, c) {
			return c
		}
	}
	return listed[0]
}

func addrPortOf(p *wgtypes.Peer) netip.AddrPort {
	if p.Endpoint == nil {
		return netip.AddrPort{}
	}
	return p.Endpoint.AddrPort()
}

// first is listed with ep moved to the front.
func first(listed []netip.AddrPort, ep netip.AddrPort) []netip.AddrPort {
	out := []netip.AddrPort{ep}
	for _, l := range listed {
		if l != ep {
			out = append(out, l)
		}
	}
	return out
}
