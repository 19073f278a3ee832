package agent

import (
	"net/netip"
	"slices"

	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

// Passive is st for an active gateway that is cut off (it can neither
// renew the Lease nor hear any peer): its WireGuard peers have no endpoint
// and no keepalive, so the device starts no handshake and only answers a
// peer that dials in. A handshake it started when the network came back
// would take the peers' traffic from the gateway that took over meanwhile,
// for keys that go with this node's device when it steps down.
//
// The applier leaves an endpoint that is not wanted alone (it may be one
// WireGuard learned from a peer that dialed in), so turning passive also
// needs dataplane.Applier.Silence, which removes the endpoints there are.
func Passive(st dataplane.State) dataplane.State {
	if st.WireGuard == nil {
		return st
	}
	dev := *st.WireGuard
	dev.Peers = slices.Clone(dev.Peers)
	for i := range dev.Peers {
		p := &dev.Peers[i]
		p.Endpoint, p.AlsoAccepted, p.Keepalive = netip.AddrPort{}, nil, 0
	}
	st.WireGuard = &dev
	return st
}
