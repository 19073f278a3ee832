package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func (a *Applier) wireGuard(r *run, want State) {
	d := want.WireGuard
	if d == nil {
		return
	}
	link, err := a.wireGuardLink(r, d)
	if err != nil {
		r.refuseOn(KindLink, d.Name, d.Name, err)
		return
	}
	dev, err := a.wireGuardDevice(r, d)
	if err != nil {
		r.refuseOn(KindDevice, d.Name, d.Name, err)
		return
	}
	a.linkBasics(r, link, d.MTU, d.Addresses)
	a.configureDevice(r, dev, d)
}

// wireGuardLink finds the device's link, or creates it.
func (a *Applier) wireGuardLink(r *run, d *Device) (Link, error) {
	link, ok, err := a.Kernel.Link(d.Name)
	if err != nil || ok {
		return link, err
	}
	if err := a.Kernel.CreateWireGuard(d.Name, d.MTU); err != nil {
		return Link{}, err
	}
	r.note("create wireguard %s", d.Name)
	return Link{Name: d.Name, MTU: d.MTU}, nil
}

// wireGuardDevice reads the device's configuration. A userspace device's
// link outlives the process that served it; a new device attaches to the
// link as it is.
func (a *Applier) wireGuardDevice(r *run, d *Device) (*wgtypes.Device, error) {
	dev, err := a.Kernel.Device(d.Name)
	if !errors.Is(err, os.ErrNotExist) {
		return dev, err
	}
	if err := a.Kernel.CreateWireGuard(d.Name, d.MTU); err != nil {
		return nil, err
	}
	r.note("attach wireguard %s", d.Name)
	return a.Kernel.Device(d.Name)
}

// configureDevice sets the device's own settings in one call, then each
// peer that needs a change in a call of its own, so that a peer WireGuard
// refuses names itself and holds back no other. The peer list is never
// replaced.
func (a *Applier) configureDevice(r *run, dev *wgtypes.Device, want *Device) {
	if cfg, what := deviceSettings(dev, want); len(what) > 0 {
		if err := a.Kernel.ConfigureDevice(want.Name, cfg); err != nil {
			r.refuseOn(KindDevice, want.Name, want.Name+": "+strings.Join(what, ", "), err)
		} else {
			for _, w := range what {
				r.note("wireguard %s: %s", want.Name, w)
			}
		}
	}
	for _, pc := range peerChanges(dev, want) {
		configs := []wgtypes.PeerConfig{pc.config}
		if pc.kick {
			// WireGuard sends a keepalive at once when the keepalive goes
			// from off to on (kernel and wireguard-go alike), which starts
			// a handshake with the new endpoint now instead of at the next
			// retry, up to 5 s later: off, then on, in one call.
			off := time.Duration(0)
			configs = []wgtypes.PeerConfig{{PublicKey: pc.config.PublicKey, UpdateOnly: true, PersistentKeepaliveInterval: &off}, pc.config}
		}
		if err := a.Kernel.ConfigureDevice(want.Name, wgtypes.Config{Peers: configs}); err != nil {
			r.refused = append(r.refused, Refusal{
				Kind: KindPeer, Object: fmt.Sprintf("%s on %s (%s)", short(pc.config.PublicKey), want.Name, pc.what),
				Peer: pc.config.PublicKey, Err: err,
			})
			continue
		}
		r.note("wireguard %s: %s", want.Name, pc.what)
	}
}

// deviceSettings is the change of the device's own settings (key, port,
// fwmark) that turns dev into want, and a line per change.
func deviceSettings(dev *wgtypes.Device, want *Device) (wgtypes.Config, []string) {
	var cfg wgtypes.Config
	var what []string
	if dev.PrivateKey != StoredKey(want.PrivateKey) {
		cfg.PrivateKey = &want.PrivateKey
		what = append(what, "set private key")
	}
	if want.ListenPort != 0 && dev.ListenPort != want.ListenPort {
		cfg.ListenPort = &want.ListenPort
		what = append(what, fmt.Sprintf("listen port %d", want.ListenPort))
	}
	if dev.FirewallMark != want.FirewallMark {
		cfg.FirewallMark = &want.FirewallMark
		what = append(what, fmt.Sprintf("fwmark %#x", want.FirewallMark))
	}
	return cfg, what
}

// peerChange is one peer's change and the line that describes it. kick:
// the peer is pointed at another endpoint, and must handshake there now.
type peerChange struct {
	config wgtypes.PeerConfig
	what   string
	kick   bool
}

// peerChanges are the peers to add, update and remove to turn dev into
// want.
func peerChanges(dev *wgtypes.Device, want *Device) []peerChange {
	found := make(map[wgtypes.Key]wgtypes.Peer, len(dev.Peers))
	for _, p := range dev.Peers {
		found[p.PublicKey] = p
	}
	var out []peerChange
	for _, p := range want.Peers {
		got, ok := found[p.PublicKey]
		pc, why := peerConfig(got, ok, p)
		if why != "" {
			kick := ok && pc.Endpoint != nil && p.Keepalive > 0
			if kick {
				ka := p.Keepalive
				pc.PersistentKeepaliveInterval = &ka
			}
			out = append(out, peerChange{pc, fmt.Sprintf("peer %s: %s", short(p.PublicKey), why), kick})
		}
	}
	for _, p := range dev.Peers {
		if !slices.ContainsFunc(want.Peers, func(w Peer) bool { return w.PublicKey == p.PublicKey }) {
			out = append(out, peerChange{wgtypes.PeerConfig{PublicKey: p.PublicKey, Remove: true}, "remove peer " + short(p.PublicKey), false})
		}
	}
	return out
}

// peerConfig is the change that turns a found peer into want; why is empty
// when there is nothing to change. An endpoint that is not wanted is left
// alone: it is what WireGuard learned from a peer that dialed in; so is one
// of the peer's other accepted endpoints (see Peer.AlsoAccepted).
func peerConfig(got wgtypes.Peer, exists bool, want Peer) (wgtypes.PeerConfig, string) {
	pc := wgtypes.PeerConfig{PublicKey: want.PublicKey, UpdateOnly: exists}
	var why []string
	if !exists {
		why = append(why, "add")
	}
	if want.Endpoint.IsValid() && (got.Endpoint == nil || !want.accepts(got.Endpoint.AddrPort())) {
		pc.Endpoint = udpAddr(want.Endpoint)
		why = append(why, "endpoint "+want.Endpoint.String())
	}
	if got.PersistentKeepaliveInterval != want.Keepalive {
		ka := want.Keepalive
		pc.PersistentKeepaliveInterval = &ka
		why = append(why, fmt.Sprintf("keepalive %s", want.Keepalive))
	}
	if !samePrefixes(ipNets(got.AllowedIPs), want.AllowedIPs) {
		pc.ReplaceAllowedIPs = true
		pc.AllowedIPs = ipNetsOf(want.AllowedIPs)
		why = append(why, "allowed-ips "+joinPrefixes(want.AllowedIPs))
	}
	return pc, strings.Join(why, ", ")
}

// accepts says whether the device may keep sending to ep.
func (p Peer) accepts(ep netip.AddrPort) bool {
	ep = UnmapAddrPort(ep)
	return ep == p.Endpoint || slices.Contains(p.AlsoAccepted, ep)
}

// UnmapAddrPort turns an IPv4-mapped IPv6 address into the IPv4 one:
// wireguard-go listens on a dual-stack socket and reports a peer that
// roamed to an IPv4 address as ::ffff:a.b.c.d, which would otherwise never
// equal the endpoint Git lists.
func UnmapAddrPort(ep netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ep.Addr().Unmap(), ep.Port())
}

// RestartPeers removes each of keys from the device named and adds it
// again as it was (endpoint, allowed IPs, keepalive, preshared key), one
// peer per call so that a peer the kernel refuses holds back no other.
// WireGuard then forgets the peer's sessions and handshake state, and the
// persistent keepalive of the new entry sends an initiation at once
// instead of at WireGuard's next retry, up to 5 s later
// (package tunnelwatch says when). A key the device does not hold is
// skipped.
func (a *Applier) RestartPeers(device string, keys []wgtypes.Key) error {
	return a.readdPeers(device, func(p wgtypes.Peer) bool { return slices.Contains(keys, p.PublicKey) }, false)
}

// Silence adds every peer of the device named again without its endpoint
// and keepalive, so that the device starts no handshake and only answers
// peers that dial in (see agent.Passive). Its sessions go;
// they went nowhere anyway.
func (a *Applier) Silence(device string) error {
	return a.readdPeers(device, func(p wgtypes.Peer) bool { return p.Endpoint != nil || p.PersistentKeepaliveInterval != 0 }, true)
}

// readdPeers removes the device's peers that match and adds each back in
// the same call, without endpoint and keepalive when silent.
func (a *Applier) readdPeers(device string, match func(wgtypes.Peer) bool, silent bool) error {
	dev, err := a.Kernel.Device(device)
	if err != nil {
		return fmt.Errorf("read wireguard %s: %w", device, err)
	}
	var errs []error
	for _, p := range dev.Peers {
		if !match(p) {
			continue
		}
		if err := a.Kernel.ConfigureDevice(device, wgtypes.Config{Peers: readdConfig(p, silent)}); err != nil {
			errs = append(errs, fmt.Errorf("add peer %s on %s again: %w", short(p.PublicKey), device, err))
		}
	}
	return errors.Join(errs...)
}

// readdConfig removes p and adds it back as it is, in one change; without
// its endpoint and keepalive when silent.
func readdConfig(p wgtypes.Peer, silent bool) []wgtypes.PeerConfig {
	var psk *wgtypes.Key
	if p.PresharedKey != (wgtypes.Key{}) {
		psk = &p.PresharedKey
	}
	add := wgtypes.PeerConfig{PublicKey: p.PublicKey, PresharedKey: psk, ReplaceAllowedIPs: true, AllowedIPs: p.AllowedIPs}
	if !silent {
		ka := p.PersistentKeepaliveInterval
		add.Endpoint, add.PersistentKeepaliveInterval = p.Endpoint, &ka
	}
	return []wgtypes.PeerConfig{{PublicKey: p.PublicKey, Remove: true}, add}
}
