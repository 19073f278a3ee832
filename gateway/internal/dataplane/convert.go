package dataplane

import (
	"net"
	"net/netip"
	"slices"
	"strings"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// short is a public key's first characters, enough to tell peers apart in
// a log line.
func short(k wgtypes.Key) string { return k.String()[:8] }

func udpAddr(ap netip.AddrPort) *net.UDPAddr { return net.UDPAddrFromAddrPort(ap) }

// IPNet converts a prefix to the net.IPNet wgctrl and netlink use.
func IPNet(p netip.Prefix) net.IPNet {
	return net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// Prefix converts a net.IPNet back; ok is false for a malformed one.
func Prefix(n net.IPNet) (netip.Prefix, bool) {
	addr, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	addr = addr.Unmap()
	if bits == 128 && addr.Is4() {
		// An IPv4 address with a 16-byte mask: the mask counts the
		// IPv4-mapped prefix too.
		ones, bits = ones-96, 32
	}
	if bits == 0 || bits != addr.BitLen() || ones < 0 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(addr, ones), true
}

func ipNetsOf(ps []netip.Prefix) []net.IPNet {
	out := make([]net.IPNet, 0, len(ps))
	for _, p := range ps {
		out = append(out, IPNet(p))
	}
	return out
}

func ipNets(ns []net.IPNet) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ns))
	for _, n := range ns {
		if p, ok := Prefix(n); ok {
			out = append(out, p)
		}
	}
	return out
}

func samePrefixes(a, b []netip.Prefix) bool {
	return slices.Equal(sortedPrefixes(a), sortedPrefixes(b))
}

func sortedPrefixes(ps []netip.Prefix) []netip.Prefix {
	out := slices.Clone(ps)
	slices.SortFunc(out, func(x, y netip.Prefix) int {
		if c := x.Addr().Compare(y.Addr()); c != 0 {
			return c
		}
		return x.Bits() - y.Bits()
	})
	return slices.Compact(out)
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, 0, len(ps))
	for _, p := range sortedPrefixes(ps) {
		s = append(s, p.String())
	}
	return strings.Join(s, ",")
}
