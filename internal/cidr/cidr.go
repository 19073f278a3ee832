package cidr

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Parse parses CIDRs strictly: each must be a valid prefix with no host bits
// set, as Kubernetes itself writes them. The result is in the order given.
func Parse(values []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(values))
	for _, v := range values {
		p, err := ParseOne(v)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// ParseOne parses one CIDR strictly; see Parse.
func ParseOne(value string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(value))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR: %w", value, err)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set (did you mean %s?)", value, p.Masked())
	}
	return p, nil
}

// ParseList parses a comma-separated CIDR list as given on a command line;
// empty elements are an error, an empty string is an empty list.
func ParseList(value string) ([]netip.Prefix, error) {
	if strings.TrimSpace(value) == "" {
		return nil, nil
	}
	return Parse(strings.Split(value, ","))
}

// Strings formats prefixes in their canonical form.
func Strings(prefixes []netip.Prefix) []string {
	if len(prefixes) == 0 {
		return nil
	}
	out := make([]string, len(prefixes))
	for i, p := range prefixes {
		out[i] = p.String()
	}
	return out
}

// Summarize returns the smallest sorted set of prefixes that covers exactly
// the addresses of the input: duplicates and prefixes inside others are
// dropped, and two halves of a larger prefix are joined into it. It never
// widens a range to cover addresses the input does not hold, so
// 10.0.0.0/24 and 10.0.2.0/24 stay two prefixes. IPv4 sorts before IPv6.
func Summarize(prefixes []netip.Prefix) []netip.Prefix {
	if len(prefixes) == 0 {
		return nil
	}
	work := make([]netip.Prefix, 0, len(prefixes))
	for _, p := range prefixes {
		if p.IsValid() {
			work = append(work, p.Masked())
		}
	}
	// Joining two siblings can make a new sibling pair one level up, so join
	// until nothing changes. Each pass at least halves a pair, so this ends
	// after at most 128 passes.
	for {
		work = dropCovered(sortPrefixes(work))
		joined, changed := joinSiblings(work)
		work = joined
		if !changed {
			return work
		}
	}
}

// sortPrefixes orders by family, then address, then shorter prefix first, so
// a prefix comes right before the prefixes it contains.
func sortPrefixes(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, Compare)
	return ps
}

// Compare orders prefixes: IPv4 before IPv6, then by address, then shorter
// (wider) prefix first.
func Compare(a, b netip.Prefix) int {
	if a.Addr().Is4() != b.Addr().Is4() {
		if a.Addr().Is4() {
			return -1
		}
		return 1
	}
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// dropCovered removes every prefix contained in an earlier one; the input is
// sorted by Compare, so a covering prefix always comes first.
func dropCovered(sorted []netip.Prefix) []netip.Prefix {
	out := sorted[:0]
	for _, p := range sorted {
		if len(out) > 0 && Contains(out[len(out)-1], p) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// joinSiblings replaces each adjacent pair of sibling prefixes (the two
// halves of one parent) by the parent.
func joinSiblings(sorted []netip.Prefix) ([]netip.Prefix, bool) {
	out := make([]netip.Prefix, 0, len(sorted))
	changed := false
	for i := 0; i < len(sorted); i++ {
		if i+1 < len(sorted) {
			if parent, ok := siblingParent(sorted[i], sorted[i+1]); ok {
				out = append(out, parent)
				changed = true
				i++
				continue
			}
		}
		out = append(out, sorted[i])
	}
	return out, changed
}

// siblingParent reports the parent of a and b if they are its two halves.
func siblingParent(a, b netip.Prefix) (netip.Prefix, bool) {
	if a.Bits() != b.Bits() || a.Bits() == 0 || a.Addr().Is4() != b.Addr().Is4() || a == b {
		return netip.Prefix{}, false
	}
	pa, err := a.Addr().Prefix(a.Bits() - 1)
	if err != nil {
		return netip.Prefix{}, false
	}
	pb, _ := b.Addr().Prefix(b.Bits() - 1)
	return pa, pa == pb
}

// Contains reports whether outer holds every address of inner.
func Contains(outer, inner netip.Prefix) bool {
	return outer.Addr().Is4() == inner.Addr().Is4() &&
		outer.Bits() <= inner.Bits() &&
		outer.Contains(inner.Addr())
}
