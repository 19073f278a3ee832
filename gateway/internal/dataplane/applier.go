package dataplane

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Applier makes the kernel match a wanted State with the fewest changes.
// It only ever changes or deletes what Wirespan owns: the links it names,
// routes and rules tagged with RouteProtocol, neighbor entries on its own
// VXLAN link, and its own nftables table.
type Applier struct {
	Kernel Kernel
	// WireGuardName and VXLANName are the links Wirespan owns, so that a
	// link no longer wanted can be removed.
	WireGuardName string
	VXLANName     string
}

// Apply changes the kernel to match want and returns the changes it made,
// one line each, in the order made. Without prune it only adds and updates:
// nothing is removed (use this until every input has synced, so a restart
// never tears down state it has not yet learned is still wanted). Apply
// stops at the first error, so the changes before it stay and the next call
// carries on from there.
func (a *Applier) Apply(want State, prune bool) ([]string, error) {
	var c changes
	// Links first, since sysctls, neighbors and routes name them; links
	// no longer wanted go last, after the routes through them.
	steps := []func(*changes, State, bool) error{
		a.wireGuard, a.vxlan, a.sysctls, a.neighbors, a.routes, a.rule, a.mssClamp, a.removeLinks,
	}
	for _, step := range steps {
		if err := step(&c, want, prune); err != nil {
			return c, err
		}
	}
	return c, nil
}

// changes records what Apply did, for logs, metrics and tests.
type changes = []string

func note(c *changes, format string, args ...any) { *c = append(*c, fmt.Sprintf(format, args...)) }

func (a *Applier) sysctls(c *changes, want State, _ bool) error {
	for _, name := range slices.Sorted(maps.Keys(want.Sysctls)) {
		value := want.Sysctls[name]
		got, err := a.Kernel.Sysctl(name)
		if err != nil {
			return err
		}
		if strings.TrimSpace(got) == value {
			continue
		}
		if err := a.Kernel.SetSysctl(name, value); err != nil {
			return err
		}
		note(c, "sysctl %s=%s", name, value)
	}
	return nil
}

func (a *Applier) wireGuard(c *changes, want State, prune bool) error {
	d := want.WireGuard
	if d == nil {
		return nil
	}
	link, ok, err := a.Kernel.Link(d.Name)
	if err != nil {
		return err
	}
	if !ok {
		if err := a.Kernel.CreateWireGuard(d.Name, d.MTU); err != nil {
			return err
		}
		note(c, "create wireguard %s", d.Name)
		link = Link{Name: d.Name, MTU: d.MTU}
	}
	dev, err := a.Kernel.Device(d.Name)
	if errors.Is(err, os.ErrNotExist) {
		// A userspace device's link outlives the process that served it;
		// a new device attaches to the link as it is.
		if err := a.Kernel.CreateWireGuard(d.Name, d.MTU); err != nil {
			return err
		}
		note(c, "attach wireguard %s", d.Name)
		dev, err = a.Kernel.Device(d.Name)
	}
	if err != nil {
		return err
	}
	if err := a.linkBasics(c, link, d.MTU, []netip.Prefix{d.Address}); err != nil {
		return err
	}
	cfg, what := deviceConfig(dev, d, prune)
	if len(what) == 0 {
		return nil
	}
	if err := a.Kernel.ConfigureDevice(d.Name, cfg); err != nil {
		return err
	}
	for _, w := range what {
		note(c, "wireguard %s: %s", d.Name, w)
	}
	return nil
}

// linkBasics sets a link's MTU and addresses and brings it up.
func (a *Applier) linkBasics(c *changes, link Link, mtu int, addrs []netip.Prefix) error {
	if mtu != 0 && link.MTU != mtu {
		if err := a.Kernel.SetMTU(link.Name, mtu); err != nil {
			return err
		}
		note(c, "set %s mtu %d", link.Name, mtu)
	}
	for _, p := range addrs {
		if !p.IsValid() || slices.Contains(link.Addresses, p) {
			continue
		}
		if err := a.Kernel.AddAddress(link.Name, p); err != nil {
			return err
		}
		note(c, "add address %s dev %s", p, link.Name)
	}
	// The link is Wirespan's own, so any other address on it is stale.
	for _, p := range link.Addresses {
		if slices.Contains(addrs, p) || p.Addr().IsLinkLocalUnicast() {
			continue
		}
		if err := a.Kernel.DeleteAddress(link.Name, p); err != nil {
			return err
		}
		note(c, "delete address %s dev %s", p, link.Name)
	}
	if !link.Up {
		if err := a.Kernel.SetUp(link.Name); err != nil {
			return err
		}
		note(c, "set %s up", link.Name)
	}
	return nil
}

// deviceConfig is the wgctrl change that turns dev into want, and a line per
// change. Peers are changed one by one; the peer list is never replaced.
func deviceConfig(dev *wgtypes.Device, want *Device, prune bool) (wgtypes.Config, []string) {
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
	found := make(map[wgtypes.Key]wgtypes.Peer, len(dev.Peers))
	for _, p := range dev.Peers {
		found[p.PublicKey] = p
	}
	for _, p := range want.Peers {
		got, ok := found[p.PublicKey]
		pc, why := peerConfig(got, ok, p)
		if why == "" {
			continue
		}
		cfg.Peers = append(cfg.Peers, pc)
		what = append(what, fmt.Sprintf("peer %s: %s", short(p.PublicKey), why))
	}
	if prune {
		for _, p := range dev.Peers {
			if !slices.ContainsFunc(want.Peers, func(w Peer) bool { return w.PublicKey == p.PublicKey }) {
				cfg.Peers = append(cfg.Peers, wgtypes.PeerConfig{PublicKey: p.PublicKey, Remove: true})
				what = append(what, fmt.Sprintf("remove peer %s", short(p.PublicKey)))
			}
		}
	}
	return cfg, what
}

// peerConfig is the change that turns a found peer into want; why is empty
// when there is nothing to change. An endpoint that is not wanted is left
// alone: it is what WireGuard learned from a peer that dialed in.
func peerConfig(got wgtypes.Peer, exists bool, want Peer) (wgtypes.PeerConfig, string) {
	pc := wgtypes.PeerConfig{PublicKey: want.PublicKey, UpdateOnly: exists}
	var why []string
	if !exists {
		why = append(why, "add")
	}
	if want.Endpoint.IsValid() && (got.Endpoint == nil || got.Endpoint.AddrPort() != want.Endpoint) {
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

func (a *Applier) vxlan(c *changes, want State, prune bool) error {
	v := want.VXLAN
	if v == nil {
		return nil
	}
	link, ok, err := a.Kernel.Link(v.Name)
	if err != nil {
		return err
	}
	if ok && (link.VXLAN == nil || !sameVXLAN(*link.VXLAN, *v)) {
		// VXLAN attributes cannot be changed in place.
		if err := a.Kernel.DeleteLink(v.Name); err != nil {
			return err
		}
		note(c, "delete vxlan %s (attributes changed)", v.Name)
		ok = false
	}
	if !ok {
		if err := a.Kernel.CreateVXLAN(*v); err != nil {
			return err
		}
		note(c, "create vxlan %s vni %d remote %s", v.Name, v.VNI, v.Remote)
		link = Link{Name: v.Name, MTU: v.MTU}
	}
	// The reverse-path filter passes nothing in on an interface without an
	// IPv4 address, in loose mode too; the node's own address is the one
	// that means something there.
	return a.linkBasics(c, link, v.MTU, []netip.Prefix{netip.PrefixFrom(v.Local, 32)})
}

func sameVXLAN(a, b VXLAN) bool {
	return a.VNI == b.VNI && a.Port == b.Port && a.Underlay == b.Underlay && a.Local == b.Local &&
		a.Remote == b.Remote && a.MAC.String() == b.MAC.String()
}

// removeLinks deletes the links Wirespan owns that are no longer wanted.
func (a *Applier) removeLinks(c *changes, want State, prune bool) error {
	if !prune {
		return nil
	}
	if want.WireGuard == nil {
		if err := a.removeLink(c, a.WireGuardName); err != nil {
			return err
		}
	}
	if want.VXLAN == nil {
		return a.removeLink(c, a.VXLANName)
	}
	return nil
}

func (a *Applier) removeLink(c *changes, name string) error {
	if name == "" {
		return nil
	}
	_, ok, err := a.Kernel.Link(name)
	if err != nil || !ok {
		return err
	}
	if err := a.Kernel.DeleteLink(name); err != nil {
		return err
	}
	note(c, "delete link %s", name)
	return nil
}

func (a *Applier) neighbors(c *changes, want State, prune bool) error {
	if a.VXLANName == "" {
		return nil
	}
	if _, ok, err := a.Kernel.Link(a.VXLANName); err != nil || !ok {
		return err
	}
	found, err := a.Kernel.Neighbors(a.VXLANName)
	if err != nil {
		return err
	}
	for _, n := range want.Neighbors {
		if slices.ContainsFunc(found, func(f Neighbor) bool { return sameNeighbor(f, n) }) {
			continue
		}
		if err := a.Kernel.SetNeighbor(n); err != nil {
			return err
		}
		note(c, "set neighbor %s lladdr %s dev %s", n.IP, n.MAC, n.Dev)
	}
	if !prune {
		return nil
	}
	for _, f := range found {
		if slices.ContainsFunc(want.Neighbors, func(n Neighbor) bool { return sameNeighbor(f, n) }) {
			continue
		}
		if err := a.Kernel.DeleteNeighbor(f); err != nil {
			return err
		}
		note(c, "delete neighbor %s dev %s", f.IP, f.Dev)
	}
	return nil
}

func sameNeighbor(a, b Neighbor) bool {
	return a.Dev == b.Dev && a.IP == b.IP && a.MAC.String() == b.MAC.String()
}

func (a *Applier) routes(c *changes, want State, prune bool) error {
	if want.Table == 0 {
		return nil
	}
	found, err := a.Kernel.Routes(want.Table)
	if err != nil {
		return err
	}
	for _, r := range want.Routes {
		if slices.Contains(found, r) {
			continue
		}
		if err := a.Kernel.ReplaceRoute(want.Table, r); err != nil {
			return err
		}
		note(c, "replace route %s table %d", r.String(), want.Table)
	}
	if !prune {
		return nil
	}
	for _, r := range found {
		if slices.ContainsFunc(want.Routes, func(w Route) bool { return w.Dst == r.Dst }) {
			continue
		}
		if err := a.Kernel.DeleteRoute(want.Table, r); err != nil {
			return err
		}
		note(c, "delete route %s table %d", r.String(), want.Table)
	}
	return nil
}

// String is the route in `ip route` words.
func (r Route) String() string {
	s := r.Dst.String()
	if r.Via.IsValid() {
		s += " via " + r.Via.String()
	}
	s += " dev " + r.Dev
	if r.Onlink {
		s += " onlink"
	}
	if r.Src.IsValid() {
		s += " src " + r.Src.String()
	}
	if r.MTU != 0 {
		s += fmt.Sprintf(" mtu %d", r.MTU)
	}
	return s
}

func (a *Applier) rule(c *changes, want State, prune bool) error {
	found, err := a.Kernel.Rules()
	if err != nil {
		return err
	}
	if want.Rule != nil && !slices.Contains(found, *want.Rule) {
		if err := a.Kernel.AddRule(*want.Rule); err != nil {
			return err
		}
		note(c, "add rule priority %d table %d", want.Rule.Priority, want.Rule.Table)
	}
	if !prune {
		return nil
	}
	for _, r := range found {
		if want.Rule != nil && r == *want.Rule {
			continue
		}
		if err := a.Kernel.DeleteRule(r); err != nil {
			return err
		}
		note(c, "delete rule priority %d table %d", r.Priority, r.Table)
	}
	return nil
}

func (a *Applier) mssClamp(c *changes, want State, prune bool) error {
	found, err := a.Kernel.MSSClamp()
	if err != nil {
		return err
	}
	wantIfaces := slices.Sorted(slices.Values(want.MSSClamp))
	if !prune {
		// Keep what is there until pruning is allowed.
		for _, f := range found {
			if !slices.Contains(wantIfaces, f) {
				wantIfaces = append(wantIfaces, f)
			}
		}
		slices.Sort(wantIfaces)
	}
	if slices.Equal(slices.Sorted(slices.Values(found)), wantIfaces) {
		return nil
	}
	if err := a.Kernel.SetMSSClamp(wantIfaces); err != nil {
		return err
	}
	note(c, "mss clamp on [%s]", strings.Join(wantIfaces, " "))
	return nil
}
