package cidr

import (
	"cmp"
	"net/netip"
	"slices"
)

// Overlap is one range of a peer that overlaps one range of another peer.
type Overlap struct {
	Prefix      netip.Prefix // the range of the peer the Overlap is reported on
	Other       string       // the other peer's name
	OtherPrefix netip.Prefix // the other peer's range
}

// Overlaps checks every pair of peers for overlapping ranges and returns, per
// peer name, each overlap it takes part in, sorted by range and then by the
// other peer. Ranges of one peer are not checked against each other. Peers
// without overlaps are absent from the result.
func Overlaps(ranges map[string][]netip.Prefix) map[string][]Overlap {
	names := make([]string, 0, len(ranges))
	for name := range ranges {
		names = append(names, name)
	}
	slices.Sort(names)

	out := map[string][]Overlap{}
	for i, a := range names {
		for _, b := range names[i+1:] {
			for _, pa := range ranges[a] {
				for _, pb := range ranges[b] {
					if !pa.Overlaps(pb) {
						continue
					}
					out[a] = append(out[a], Overlap{Prefix: pa, Other: b, OtherPrefix: pb})
					out[b] = append(out[b], Overlap{Prefix: pb, Other: a, OtherPrefix: pa})
				}
			}
		}
	}
	for name := range out {
		slices.SortFunc(out[name], func(x, y Overlap) int {
			if c := Compare(x.Prefix, y.Prefix); c != 0 {
				return c
			}
			if c := cmp.Compare(x.Other, y.Other); c != 0 {
				return c
			}
			return Compare(x.OtherPrefix, y.OtherPrefix)
		})
		out[name] = slices.Compact(out[name])
	}
	return out
}
