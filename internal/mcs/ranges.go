package mcs

import (
	"net/netip"
	"slices"
)

// WithinRanges returns e with only the endpoints whose every address lies
// in one of ranges (the ranges accepted from the exporting cluster: what
// it may route here), and how many endpoints it dropped. A peer could
// otherwise import endpoints at any address at all: the importing
// cluster's own pods and nodes, or another cluster's. e is not changed.
func (e Export) WithinRanges(ranges []netip.Prefix) (Export, int) {
	out := e
	out.Slices = make([]Slice, 0, len(e.Slices))
	dropped := 0
	for _, s := range e.Slices {
		kept := s
		kept.Endpoints = slices.DeleteFunc(slices.Clone(s.Endpoints), func(ep Endpoint) bool {
			if within(ep.Addresses, ranges) {
				return false
			}
			dropped++
			return true
		})
		out.Slices = append(out.Slices, kept)
	}
	return out, dropped
}

func within(addrs []string, ranges []netip.Prefix) bool {
	for _, a := range addrs {
		ip, err := netip.ParseAddr(a)
		if err != nil || !slices.ContainsFunc(ranges, func(p netip.Prefix) bool { return p.Contains(ip.Unmap()) }) {
			return false
		}
	}
	return len(addrs) > 0
}
