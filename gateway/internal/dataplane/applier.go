package dataplane

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
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

// Apply changes the kernel to match want, removing what Wirespan owns and
// want does not hold, and returns the changes it made, one line each, in
// the order made.
//
// One object the kernel refuses never stops the rest: Apply carries on
// past it, so every other route, the rule, the clamp and the pruning of
// stale objects still converge, and returns an *ApplyError naming each
// object it could not put in place. Those are tried again on the next
// call, which is how a transient failure heals.
//
// Apply removes what is not wanted, so it must only be called once every
// input of want has been read: the gateway syncs its caches first, and
// seeds the ranges of peers not yet heard over gossip from their
// ClusterPeer status, so its first Apply after a restart wants what is
// there.
func (a *Applier) Apply(want State) ([]string, error) {
	r := &run{}
	// Links first, since sysctls, neighbors and routes name them; links
	// no longer wanted go last, after the routes through them.
	for _, step := range []func(*run, State){
		a.wireGuard, a.vxlan, a.sysctls, a.neighbors, a.routes, a.rule, a.mssClamp, a.gossipInput, a.removeLinks,
	} {
		step(r, want)
	}
	if len(r.refused) > 0 {
		return r.changes, &ApplyError{Refused: r.refused}
	}
	return r.changes, nil
}

// run records what one Apply did and what it could not do.
type run struct {
	changes []string
	refused []Refusal
}

func (r *run) note(format string, args ...any) {
	r.changes = append(r.changes, fmt.Sprintf(format, args...))
}

func (r *run) refuse(kind, object string, err error) {
	r.refused = append(r.refused, Refusal{Kind: kind, Object: object, Err: err})
}

// refuseOn records a refusal about one of Wirespan's links.
func (r *run) refuseOn(kind, link, object string, err error) {
	r.refused = append(r.refused, Refusal{Kind: kind, Link: link, Object: object, Err: err})
}

func (a *Applier) sysctls(r *run, want State) {
	for _, name := range slices.Sorted(maps.Keys(want.Sysctls)) {
		value := want.Sysctls[name]
		got, err := a.Kernel.Sysctl(name)
		if err == nil && strings.TrimSpace(got) == value {
			continue
		}
		if err == nil {
			err = a.Kernel.SetSysctl(name, value)
		}
		if err != nil {
			r.refuse(KindSysctl, name+"="+value, err)
			continue
		}
		r.note("sysctl %s=%s", name, value)
	}
}

// linkBasics sets a link's MTU and addresses and brings it up.
func (a *Applier) linkBasics(r *run, link Link, mtu int, addrs []netip.Prefix) {
	if mtu != 0 && link.MTU != mtu {
		if err := a.Kernel.SetMTU(link.Name, mtu); err != nil {
			r.refuseOn(KindLink, link.Name, fmt.Sprintf("%s mtu %d", link.Name, mtu), err)
		} else {
			r.note("set %s mtu %d", link.Name, mtu)
		}
	}
	for _, p := range addrs {
		if !p.IsValid() || slices.Contains(link.Addresses, p) {
			continue
		}
		if err := a.Kernel.AddAddress(link.Name, p); err != nil {
			r.refuseOn(KindAddress, link.Name, fmt.Sprintf("%s dev %s", p, link.Name), err)
			continue
		}
		r.note("add address %s dev %s", p, link.Name)
	}
	// The link is Wirespan's own, so any other address on it is stale.
	for _, p := range link.Addresses {
		if slices.Contains(addrs, p) || p.Addr().IsLinkLocalUnicast() {
			continue
		}
		if err := a.Kernel.DeleteAddress(link.Name, p); err != nil {
			r.refuseOn(KindAddress, link.Name, fmt.Sprintf("%s dev %s", p, link.Name), err)
			continue
		}
		r.note("delete address %s dev %s", p, link.Name)
	}
	if !link.Up {
		if err := a.Kernel.SetUp(link.Name); err != nil {
			r.refuseOn(KindLink, link.Name, link.Name+" up", err)
			return
		}
		r.note("set %s up", link.Name)
	}
}

func (a *Applier) vxlan(r *run, want State) {
	v := want.VXLAN
	if v == nil {
		return
	}
	link, ok, err := a.Kernel.Link(v.Name)
	if err != nil {
		r.refuseOn(KindLink, v.Name, v.Name, err)
		return
	}
	if ok && (link.VXLAN == nil || !sameVXLAN(*link.VXLAN, *v)) {
		// VXLAN attributes cannot be changed in place.
		if err := a.Kernel.DeleteLink(v.Name); err != nil {
			r.refuseOn(KindLink, v.Name, v.Name+" (attributes changed)", err)
			return
		}
		r.note("delete vxlan %s (attributes changed)", v.Name)
		ok = false
	}
	if !ok {
		if err := a.Kernel.CreateVXLAN(*v); err != nil {
			r.refuseOn(KindLink, v.Name, fmt.Sprintf("%s vni %d remote %s", v.Name, v.VNI, v.Remote), err)
			return
		}
		r.note("create vxlan %s vni %d remote %s", v.Name, v.VNI, v.Remote)
		link = Link{Name: v.Name, MTU: v.MTU}
	}
	// The reverse-path filter passes nothing in on an interface without an
	// IPv4 address, in loose mode too; the node's own address is the one
	// that means something there. IPv6 has no reverse-path filter, and
	// node agents send IPv6 to a link-local next hop that a permanent
	// neighbor entry resolves to the gateway's MAC, so nobody needs to
	// hold it: an IPv6 node network adds no address.
	var addrs []netip.Prefix
	if v.Local.Is4() {
		addrs = append(addrs, netip.PrefixFrom(v.Local, 32))
	}
	a.linkBasics(r, link, v.MTU, addrs)
}

func sameVXLAN(a, b VXLAN) bool {
	return a.VNI == b.VNI && a.Port == b.Port && a.Underlay == b.Underlay && a.Local == b.Local &&
		a.Remote == b.Remote && a.MAC.String() == b.MAC.String()
}

// removeLinks deletes the links Wirespan owns that are no longer wanted.
func (a *Applier) removeLinks(r *run, want State) {
	if want.WireGuard == nil {
		a.removeLink(r, a.WireGuardName)
	}
	if want.VXLAN == nil {
		a.removeLink(r, a.VXLANName)
	}
}

func (a *Applier) removeLink(r *run, name string) {
	if name == "" {
		return
	}
	_, ok, err := a.Kernel.Link(name)
	if err == nil && ok {
		err = a.Kernel.DeleteLink(name)
	}
	if err != nil {
		r.refuseOn(KindLink, name, name+" (delete)", err)
		return
	}
	if ok {
		r.note("delete link %s", name)
	}
}

func (a *Applier) neighbors(r *run, want State) {
	if a.VXLANName == "" {
		return
	}
	// Without the VXLAN link (not wanted, or refused: that is reported
	// already) there is nothing to read or write.
	if _, ok, err := a.Kernel.Link(a.VXLANName); err != nil || !ok {
		return
	}
	found, err := a.Kernel.Neighbors(a.VXLANName)
	if err != nil {
		r.refuse(KindNeighbor, "list dev "+a.VXLANName, err)
		return
	}
	for _, n := range want.Neighbors {
		if slices.ContainsFunc(found, func(f Neighbor) bool { return sameNeighbor(f, n) }) {
			continue
		}
		if err := a.Kernel.SetNeighbor(n); err != nil {
			r.refuse(KindNeighbor, fmt.Sprintf("%s lladdr %s dev %s", n.IP, n.MAC, n.Dev), err)
			continue
		}
		r.note("set neighbor %s lladdr %s dev %s", n.IP, n.MAC, n.Dev)
	}
	for _, f := range found {
		if slices.ContainsFunc(want.Neighbors, func(n Neighbor) bool { return sameNeighbor(f, n) }) {
			continue
		}
		if err := a.Kernel.DeleteNeighbor(f); err != nil {
			r.refuse(KindNeighbor, fmt.Sprintf("%s dev %s (delete)", f.IP, f.Dev), err)
			continue
		}
		r.note("delete neighbor %s dev %s", f.IP, f.Dev)
	}
}

func sameNeighbor(a, b Neighbor) bool {
	return a.Dev == b.Dev && a.IP == b.IP && a.MAC.String() == b.MAC.String()
}

func (a *Applier) routes(r *run, want State) {
	if want.Table == 0 {
		return
	}
	found, err := a.Kernel.Routes(want.Table)
	if err != nil {
		r.refuse(KindRoute, fmt.Sprintf("list table %d", want.Table), err)
		return
	}
	refuse := func(rt Route, suffix string, err error) {
		r.refused = append(r.refused, Refusal{
			Kind: KindRoute, Object: fmt.Sprintf("%s table %d%s", rt, want.Table, suffix), Dst: rt.Dst, Err: err,
		})
	}
	for _, rt := range want.Routes {
		if slices.Contains(found, rt) {
			continue
		}
		if err := a.Kernel.ReplaceRoute(want.Table, rt); err != nil {
			refuse(rt, "", err)
			continue
		}
		r.note("replace route %s table %d", rt, want.Table)
	}
	// A wanted route the kernel refused keeps the old route to the same
	// destination, if any: it is still the best there is.
	for _, rt := range found {
		if slices.ContainsFunc(want.Routes, func(w Route) bool { return w.Dst == rt.Dst }) {
			continue
		}
		if err := a.Kernel.DeleteRoute(want.Table, rt); err != nil {
			refuse(rt, " (delete)", err)
			continue
		}
		r.note("delete route %s table %d", rt, want.Table)
	}
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

func (a *Applier) rule(r *run, want State) {
	found, err := a.Kernel.Rules()
	if err != nil {
		r.refuse(KindRule, "list", err)
		return
	}
	for _, w := range want.Rules {
		if slices.Contains(found, w) {
			continue
		}
		if err := a.Kernel.AddRule(w); err != nil {
			r.refuse(KindRule, w.String(), err)
			continue
		}
		r.note("add rule %s", w)
	}
	for _, f := range found {
		if slices.Contains(want.Rules, f) {
			continue
		}
		if err := a.Kernel.DeleteRule(f); err != nil {
			r.refuse(KindRule, f.String()+" (delete)", err)
			continue
		}
		r.note("delete rule %s", f)
	}
}

func (a *Applier) mssClamp(r *run, want State) {
	found, err := a.Kernel.MSSClamp()
	if err != nil {
		r.refuse(KindClamp, "list", err)
		return
	}
	wantIfaces := slices.Sorted(slices.Values(want.MSSClamp))
	if slices.Equal(slices.Sorted(slices.Values(found)), wantIfaces) {
		return
	}
	on := "on [" + strings.Join(wantIfaces, " ") + "]"
	if err := a.Kernel.SetMSSClamp(wantIfaces); err != nil {
		r.refuse(KindClamp, on, err)
		return
	}
	r.note("mss clamp %s", on)
}

func (a *Applier) gossipInput(r *run, want State) {
	found, err := a.Kernel.GossipInput()
	if err != nil {
		r.refuse(KindGossip, "list", err)
		return
	}
	if found.String() == want.GossipInput.String() {
		return
	}
	if err := a.Kernel.SetGossipInput(want.GossipInput); err != nil {
		r.refuse(KindGossip, want.GossipInput.String(), err)
		return
	}
	r.note("gossip input %s", want.GossipInput)
}
