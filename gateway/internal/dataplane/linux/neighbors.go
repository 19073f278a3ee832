package linux

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

// Neighbors lists the permanent IPv4 and IPv6 neighbor entries on dev.
func (k *Kernel) Neighbors(dev string) ([]dataplane.Neighbor, error) {
	if err := k.lock(); err != nil {
		return nil, err
	}
	defer k.mu.Unlock()
	l, err := k.mustLink(dev)
	if err != nil {
		return nil, fmt.Errorf("list neighbors on %s: %w", dev, err)
	}
	ns, err := k.permanentNeighbors(l.Attrs().Index)
	if err != nil {
		return nil, fmt.Errorf("list neighbors on %s: %w", dev, err)
	}
	out := make([]dataplane.Neighbor, 0, len(ns))
	for _, n := range ns {
		ip, ok := addrFromIP(n.IP)
		if !ok {
			continue
		}
		out = append(out, dataplane.Neighbor{
			Dev: dev,
			IP:  ip,
			MAC: append(net.HardwareAddr(nil), n.HardwareAddr...),
		})
	}
	return out, nil
}

func (k *Kernel) permanentNeighbors(index int) ([]netlink.Neigh, error) {
	var out []netlink.Neigh
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		found, err := dump(func() ([]netlink.Neigh, error) { return k.nl.NeighList(index, family) })
		if err != nil {
			return nil, err
		}
		out = append(out, permanent(found)...)
	}
	return out, nil
}

func permanent(all []netlink.Neigh) []netlink.Neigh {
	var out []netlink.Neigh
	for _, n := range all {
		if n.State&netlink.NUD_PERMANENT != 0 {
			out = append(out, n)
		}
	}
	return out
}

// SetNeighbor adds or replaces a permanent neighbor entry.
func (k *Kernel) SetNeighbor(n dataplane.Neighbor) error {
	if err := k.lock(); err != nil {
		return err
	}
	defer k.mu.Unlock()
	l, err := k.mustLink(n.Dev)
	if err == nil {
		err = k.nl.NeighSet(&netlink.Neigh{
			LinkIndex:    l.Attrs().Index,
			Family:       family(n.IP),
			State:        netlink.NUD_PERMANENT,
			IP:           n.IP.AsSlice(),
			HardwareAddr: n.MAC,
		})
	}
	if err != nil {
		return fmt.Errorf("set neighbor %s lladdr %s dev %s: %w", n.IP, n.MAC, n.Dev, err)
	}
	return nil
}

// DeleteNeighbor deletes a permanent neighbor entry. An entry that is not
// there, or not permanent (so not Wirespan's), is left alone.
func (k *Kernel) DeleteNeighbor(n dataplane.Neighbor) error {
	if err := k.lock(); err != nil {
		return err
	}
	defer k.mu.Unlock()
	if err := k.deleteNeighbor(n); err != nil {
		return fmt.Errorf("delete neighbor %s dev %s: %w", n.IP, n.Dev, err)
	}
	return nil
}

func (k *Kernel) deleteNeighbor(n dataplane.Neighbor) error {
	l, ok, err := k.link(n.Dev)
	if err != nil || !ok {
		return err // entries go with their link
	}
	ns, err := k.permanentNeighbors(l.Attrs().Index)
	if err != nil {
		return err
	}
	for _, found := range ns {
		if ip, _ := addrFromIP(found.IP); ip != n.IP {
			continue
		}
		err := k.nl.NeighDel(&found)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
	}
	return nil
}

func family(ip netip.Addr) int {
	if ip.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}
