package fake

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

// checkRoute refuses what the kernel refuses in a route: a device it does
// not have (netlink finds no such link), a source or next hop of another family than the
// destination (netlink's own check), a source address no link holds
// (EINVAL, "Invalid prefsrc address").
func (k *Kernel) checkRoute(r dataplane.Route) error {
	if _, ok := k.links[r.Dev]; !ok {
		return fmt.Errorf("link %s: %w", r.Dev, os.ErrNotExist)
	}
	is6 := r.Dst.Addr().Is6()
	if is6 && k.noIPv6() {
		return fmt.Errorf("IPv6 is disabled: %w", syscall.EACCES)
	}
	if r.Via.IsValid() && r.Via.Is6() != is6 {
		return errors.New("gateway, source, and destination ip are not the same IP family")
	}
	if r.Src.IsValid() && r.Src.Is6() != is6 {
		return errors.New("source and destination ip are not the same IP family")
	}
	if r.Src.IsValid() && !k.isLocal(r.Src) {
		return fmt.Errorf("src %s is not an address of this host: %w", r.Src, syscall.EINVAL)
	}
	return nil
}

func (k *Kernel) isLocal(ip netip.Addr) bool {
	for _, l := range k.links {
		if slices.ContainsFunc(l.Addresses, func(p netip.Prefix) bool { return p.Addr() == ip }) {
			return true
		}
	}
	return false
}

// noIPv6 says IPv6 is off on the node (net.ipv6.conf.all.disable_ipv6=1,
// as some IPv4-only hosts run): the kernel then refuses IPv6 addresses
// and routes with EACCES.
func (k *Kernel) noIPv6() bool {
	return k.sysctls["net/ipv6/conf/all/disable_ipv6"] == "1"
}

// checkAddress refuses what the kernel refuses in an address: one of a
// family the node has turned off.
func (k *Kernel) checkAddress(addr netip.Prefix) error {
	if addr.Addr().Is6() && k.noIPv6() {
		return fmt.Errorf("IPv6 is disabled: %w", syscall.EACCES)
	}
	return nil
}

// checkSysctl refuses, like /proc/sys, a per-interface setting
// (net/ipv4/conf/IFACE/..., net/ipv6/conf/IFACE/...) of an interface that
// does not exist.
func (k *Kernel) checkSysctl(name string) error {
	rest, ok := strings.CutPrefix(name, "net/ipv4/conf/")
	if !ok {
		rest, ok = strings.CutPrefix(name, "net/ipv6/conf/")
	}
	if !ok {
		return nil
	}
	iface, _, _ := strings.Cut(rest, "/")
	if _, ok := k.links[iface]; ok || iface == "all" || iface == "default" {
		return nil
	}
	return fmt.Errorf("fake sysctl %s: %w", name, os.ErrNotExist)
}
