package linux

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

// Link returns the named link.
func (k *Kernel) Link(name string) (dataplane.Link, bool, error) {
	if err := k.lock(); err != nil {
		return dataplane.Link{}, false, err
	}
	defer k.mu.Unlock()
	l, ok, err := k.link(name)
	if err != nil || !ok {
		return dataplane.Link{}, false, err
	}
	attrs := l.Attrs()
	out := dataplane.Link{
		Name: attrs.Name,
		Kind: linkKind(l),
		MTU:  attrs.MTU,
		Up:   attrs.Flags&net.FlagUp != 0,
	}
	addrs, err := dump(func() ([]netlink.Addr, error) { return k.nl.AddrList(l, netlink.FAMILY_ALL) })
	if err != nil {
		return dataplane.Link{}, false, fmt.Errorf("list addresses of %s: %w", name, err)
	}
	for _, a := range addrs {
		p, ok := prefixFromIPNet(a.IPNet)
		// The kernel gives links IPv6 link-local addresses of its own;
		// Wirespan never assigns one, so they are not reported.
		if !ok || (p.Addr().Is6() && p.Addr().IsLinkLocalUnicast()) {
			continue
		}
		out.Addresses = append(out.Addresses, p)
	}
	if vx, isVXLAN := l.(*netlink.Vxlan); isVXLAN {
		out.VXLAN, err = k.vxlanFromLink(vx)
		if err != nil {
			return dataplane.Link{}, false, err
		}
	}
	return out, true, nil
}

// linkKind names a link's kind in dataplane.Link's terms.
func linkKind(l netlink.Link) string {
	if t, ok := l.(*netlink.Tuntap); ok {
		if t.Mode == netlink.TUNTAP_MODE_TAP {
			return "tap"
		}
		return "tun"
	}
	return l.Type()
}

func (k *Kernel) vxlanFromLink(vx *netlink.Vxlan) (*dataplane.VXLAN, error) {
	out := &dataplane.VXLAN{
		Name: vx.Name,
		VNI:  vx.VxlanId,
		Port: vx.Port,
		MTU:  vx.MTU,
	}
	if len(vx.HardwareAddr) > 0 {
		out.MAC = append(net.HardwareAddr(nil), vx.HardwareAddr...)
	}
	out.Local, _ = addrFromIP(vx.SrcAddr)
	out.Remote, _ = addrFromIP(vx.Group)
	if vx.VtepDevIndex != 0 {
		under, err := k.nl.LinkByIndex(vx.VtepDevIndex)
		if err != nil {
			return nil, fmt.Errorf("underlay %d of vxlan %s: %w", vx.VtepDevIndex, vx.Name, err)
		}
		out.Underlay = under.Attrs().Name
	}
	return out, nil
}

// CreateVXLAN creates a VXLAN link without learning, down, without
// addresses.
func (k *Kernel) CreateVXLAN(v dataplane.VXLAN) error {
	if err := k.lock(); err != nil {
		return err
	}
	defer k.mu.Unlock()
	under, err := k.mustLink(v.Underlay)
	if err != nil {
		return fmt.Errorf("create vxlan %s: %w", v.Name, err)
	}
	vx := &netlink.Vxlan{
		LinkAttrs:    netlink.LinkAttrs{Name: v.Name, MTU: v.MTU},
		VxlanId:      v.VNI,
		VtepDevIndex: under.Attrs().Index,
		Port:         v.Port,
		Learning:     false,
	}
	if len(v.MAC) > 0 {
		vx.HardwareAddr = v.MAC
	}
	if v.Local.IsValid() {
		vx.SrcAddr = v.Local.AsSlice()
	}
	if v.Remote.IsValid() {
		vx.Group = v.Remote.AsSlice()
	}
	if err := k.nl.LinkAdd(vx); err != nil {
		return fmt.Errorf("create vxlan %s vni %d dev %s: %w", v.Name, v.VNI, v.Underlay, err)
	}
	return nil
}

// SetMTU sets a link's MTU.
func (k *Kernel) SetMTU(name string, mtu int) error {
	if err := k.lock(); err != nil {
		return err
	}
	defer k.mu.Unlock()
	l, err := k.mustLink(name)
	if err == nil {
		err = k.nl.LinkSetMTU(l, mtu)
	}
	if err != nil {
		return fmt.Errorf("set mtu %d on %s: %w", mtu, name, err)
	}
	return nil
}

// SetUp brings a link up; a link that is up already is left alone.
func (k *Kernel) SetUp(name string) error {
	if err := k.lock(); err != nil {
		return err
	}
	defer k.mu.Unlock()
	l, err := k.mustLink(name)
	if err == nil {
		err = k.nl.LinkSetUp(l)
	}
	if err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// AddAddress adds an address to a link; an address already there is not an
// error.
func (k *Kernel) AddAddress(name string, addr netip.Prefix) error {
	if err := k.lock(); err != nil {
		return err
	}
	defer k.mu.Unlock()
	l, err := k.mustLink(name)
	if err == nil {
		a := &netlink.Addr{IPNet: ipNetFromPrefix(addr)}
		if addr.Addr().Is6() {
			// Duplicate address detection would hold the address
			// tentative for a second or more, and the kernel refuses a
			// tentative address as a route's source: the tunnel address
			// is derived from the cluster key and unique by construction.
			a.Flags = unix.IFA_F_NODAD
		}
		err = k.nl.AddrAdd(l, a)
		if errors.Is(err, unix.EEXIST) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("add address %s to %s: %w", addr, name, err)
	}
	return nil
}

// DeleteAddress removes an address from a link; an address not there is
// not an error.
func (k *Kernel) DeleteAddress(name string, addr netip.Prefix) error {
	if err := k.lock(); err != nil {
		return err
	}
	defer k.mu.Unlock()
	l, err := k.mustLink(name)
	if err == nil {
		err = k.nl.AddrDel(l, &netlink.Addr{IPNet: ipNetFromPrefix(addr)})
		if errors.Is(err, unix.EADDRNOTAVAIL) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("delete address %s from %s: %w", addr, name, err)
	}
	return nil
}

// DeleteLink deletes a link. For a userspace WireGuard device it first stops
// the device this process runs for it and removes its UAPI socket. A link
// that is not there is not an error.
func (k *Kernel) DeleteLink(name string) error {
	if err := k.lock(); err != nil {
		return err
	}
	defer k.mu.Unlock()
	if d, ok := k.devices[name]; ok {
		delete(k.devices, name)
		if err := d.stop(); err != nil {
			k.log.Error(err, "Stopping userspace WireGuard device", "device", name)
		}
	}
	l, ok, err := k.link(name)
	if err != nil {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	if !ok {
		return nil
	}
	if err := k.nl.LinkDel(l); err != nil {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	if linkKind(l) == "tun" {
		// A socket left by a process that ended without closing it.
		if err := removeStaleSocket(name); err != nil {
			return fmt.Errorf("delete link %s: %w", name, err)
		}
	}
	return nil
}

// link looks a link up by name; ok is false when there is none.
func (k *Kernel) link(name string) (netlink.Link, bool, error) {
	l, err := k.nl.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("get link %s: %w", name, err)
	}
	return l, true, nil
}

// mustLink is link for operations that need the link: a missing link is an
// error wrapping os.ErrNotExist.
func (k *Kernel) mustLink(name string) (netlink.Link, error) {
	l, ok, err := k.link(name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("link %s: %w", name, os.ErrNotExist)
	}
	return l, nil
}

// linkName returns the name of the link with index, or "" for index 0.
// names caches lookups across one listing.
func (k *Kernel) linkName(index int, names map[int]string) (string, error) {
	if index == 0 {
		return "", nil
	}
	if n, ok := names[index]; ok {
		return n, nil
	}
	l, err := k.nl.LinkByIndex(index)
	if err != nil {
		return "", fmt.Errorf("get link %d: %w", index, err)
	}
	names[index] = l.Attrs().Name
	return l.Attrs().Name, nil
}

func addrFromIP(ip net.IP) (netip.Addr, bool) {
	if len(ip) == 0 {
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}

func prefixFromIPNet(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := addrFromIP(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a, ones), true
}

func ipNetFromPrefix(p netip.Prefix) *net.IPNet {
	return &net.IPNet{
		IP:   p.Addr().AsSlice(),
		Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
	}
}
