package linux

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

// Routes lists the IPv4 and IPv6 routes in table that carry
// dataplane.RouteProtocol.
func (k *Kernel) Routes(table int) ([]dataplane.Route, error) {
	if err := k.lock(); err != nil {
		return nil, err
	}
	defer k.mu.Unlock()
	filter := &netlink.Route{Table: table, Protocol: dataplane.RouteProtocol}
	nrs, err := dump(func() ([]netlink.Route, error) {
		return k.nl.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	})
	if err != nil {
		return nil, fmt.Errorf("list routes in table %d: %w", table, err)
	}
	names := map[int]string{}
	out := make([]dataplane.Route, 0, len(nrs))
	for _, nr := range nrs {
		r, err := k.routeFromNetlink(nr, names)
		if err != nil {
			return nil, fmt.Errorf("list routes in table %d: %w", table, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func (k *Kernel) routeFromNetlink(nr netlink.Route, names map[int]string) (dataplane.Route, error) {
	dst, ok := prefixFromIPNet(nr.Dst)
	if !ok { // a default route
		if nr.Family == unix.AF_INET6 {
			dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		} else {
			dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		}
	}
	dev, err := k.linkName(nr.LinkIndex, names)
	if err != nil {
		return dataplane.Route{}, err
	}
	r := dataplane.Route{
		Dst:    dst,
		Dev:    dev,
		Onlink: nr.Flags&int(netlink.FLAG_ONLINK) != 0,
		MTU:    nr.MTU,
	}
	r.Via, _ = addrFromIP(nr.Gw)
	r.Src, _ = addrFromIP(nr.Src)
	return r, nil
}

// ReplaceRoute adds r to table or replaces Wirespan's route to the same
// destination. It refuses to replace a route of another owner.
func (k *Kernel) ReplaceRoute(table int, r dataplane.Route) error {
	if err := k.lock(); err != nil {
		return err
	}
	defer k.mu.Unlock()
	if err := k.replaceRoute(table, r); err != nil {
		return fmt.Errorf("add route %s: %w", routeString(table, r), err)
	}
	return nil
}

func (k *Kernel) replaceRoute(table int, r dataplane.Route) error {
	l, err := k.mustLink(r.Dev)
	if err != nil {
		return err
	}
	nr := &netlink.Route{
		Table:     table,
		Protocol:  dataplane.RouteProtocol,
		Dst:       ipNetFromPrefix(r.Dst.Masked()),
		LinkIndex: l.Attrs().Index,
		MTU:       r.MTU,
		Scope:     netlink.SCOPE_UNIVERSE,
	}
	if r.Via.IsValid() {
		nr.Gw = r.Via.AsSlice()
	} else {
		nr.Scope = netlink.SCOPE_LINK
	}
	if r.Onlink {
		nr.Flags |= int(netlink.FLAG_ONLINK)
	}
	if r.Src.IsValid() {
		nr.Src = r.Src.AsSlice()
	}
	if owner, err := k.foreignRoute(table, r.Dst.Masked()); err != nil {
		return err
	} else if owner != "" {
		return fmt.Errorf("table %d has a route to %s of another owner (proto %s)", table, r.Dst.Masked(), owner)
	}
	return k.nl.RouteReplace(nr)
}

// foreignRoute returns the protocol of a route to dst in table that is not
// Wirespan's and that RouteReplace would overwrite, or "".
func (k *Kernel) foreignRoute(table int, dst netip.Prefix) (string, error) {
	family := netlink.FAMILY_V4
	if dst.Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	filter := &netlink.Route{Table: table, Dst: ipNetFromPrefix(dst)}
	nrs, err := dump(func() ([]netlink.Route, error) {
		return k.nl.RouteListFiltered(family, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_DST)
	})
	if err != nil {
		return "", fmt.Errorf("list routes to %s: %w", dst, err)
	}
	for _, nr := range nrs {
		// RouteReplace replaces the route with the same destination, TOS
		// and metric; Wirespan's routes have TOS and metric 0.
		if nr.Protocol != dataplane.RouteProtocol && nr.Tos == 0 && nr.Priority == 0 {
			return nr.Protocol.String(), nil
		}
	}
	return "", nil
}

// DeleteRoute deletes Wirespan's route to r.Dst from table; a route that is
// not there is not an error. Routes of other owners are never matched.
func (k *Kernel) DeleteRoute(table int, r dataplane.Route) error {
	if err := k.lock(); err != nil {
		return err
	}
	defer k.mu.Unlock()
	nr := &netlink.Route{
		Table:    table,
		Protocol: dataplane.RouteProtocol,
		Dst:      ipNetFromPrefix(r.Dst.Masked()),
		// RT_SCOPE_NOWHERE matches a route of any scope.
		Scope: netlink.SCOPE_NOWHERE,
	}
	err := k.nl.RouteDel(nr)
	if err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("delete route %s: %w", routeString(table, r), err)
	}
	return nil
}

// routeString writes r the way `ip route` would, for error messages.
func routeString(table int, r dataplane.Route) string {
	var b strings.Builder
	b.WriteString(r.Dst.String())
	if r.Via.IsValid() {
		fmt.Fprintf(&b, " via %s", r.Via)
	}
	if r.Dev != "" {
		fmt.Fprintf(&b, " dev %s", r.Dev)
	}
	fmt.Fprintf(&b, " table %d", table)
	if r.Onlink {
		b.WriteString(" onlink")
	}
	if r.Src.IsValid() {
		fmt.Fprintf(&b, " src %s", r.Src)
	}
	if r.MTU != 0 {
		fmt.Fprintf(&b, " mtu %d", r.MTU)
	}
	return b.String()
}
