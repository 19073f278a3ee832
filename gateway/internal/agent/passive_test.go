package agent

import (
	"net/netip"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

func TestPassiveDialsNobody(t *testing.T) {
	ep := netip.MustParseAddrPort("172.28.2.10:51820")
	allowed := []netip.Prefix{netip.MustParsePrefix("10.2.0.0/16")}
	st := dataplane.State{Table: 51820, WireGuard: &dataplane.Device{Name: "wirespan0", Peers: []dataplane.Peer{{
		PublicKey: wgtypes.Key{1}, Endpoint: ep, AlsoAccepted: []netip.AddrPort{ep}, AllowedIPs: allowed, Keepalive: 25 * time.Second,
	}}}}
	got := Passive(st)
	p := got.WireGuard.Peers[0]
	if p.Endpoint.IsValid() || p.AlsoAccepted != nil || p.Keepalive != 0 || len(p.AllowedIPs) != 1 || got.Table != 51820 {
		t.Errorf("passive peer = %+v, want no endpoint, no keepalive, its allowed IPs", p)
	}
	if st.WireGuard.Peers[0].Endpoint != ep {
		t.Error("Passive changed the state it was given")
	}
	if Passive(dataplane.State{}).WireGuard != nil {
		t.Error("a node agent's state gained a device")
	}
}
