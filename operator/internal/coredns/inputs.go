package coredns

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// DefaultZone is the zone of the Multi-Cluster Services API (KEP-1645).
const DefaultZone = "clusterset.local"

// ParseZone checks a DNS zone for a server key and returns it in the form
// Ensure writes: lower case, without the trailing dot.
func ParseZone(s string) (string, error) {
	z := strings.TrimSuffix(strings.ToLower(s), ".")
	if z == "" {
		return "", fmt.Errorf("zone %q: want a domain such as %s, not the root", s, DefaultZone)
	}
	if len(z) > 253 {
		return "", fmt.Errorf("zone %q is longer than 253 characters", s)
	}
	for label := range strings.SplitSeq(z, ".") {
		if !isLabel(label) {
			return "", fmt.Errorf("zone %q: label %q is not 1-63 letters, digits and dashes", s, label)
		}
	}
	return z, nil
}

// isLabel says whether s is a lower-case RFC 1123 label.
func isLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := range len(s) {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// ParseUpstreams reads a comma-separated list of DNS server addresses,
// each ip or ip:port ([ip]:port for IPv6), port 53 when left out, as
// CoreDNS's forward plugin does. Order is kept: it is the order in which
// CoreDNS tries them. An empty string is an empty list.
func ParseUpstreams(s string) ([]netip.AddrPort, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []netip.AddrPort
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("%q has an empty entry", s)
		}
		ap, err := netip.ParseAddrPort(item)
		if err != nil {
			a, aerr := netip.ParseAddr(item)
			if aerr != nil {
				return nil, fmt.Errorf("%q is not ip or ip:port (names are not allowed: CoreDNS forwards to addresses)", item)
			}
			ap = netip.AddrPortFrom(a, 53)
		}
		out = append(out, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}
	if err := checkUpstreams(out); err != nil {
		return nil, err
	}
	return out, nil
}

// checkUpstreams rejects what CoreDNS could not forward to, or what would
// make a Corefile it reads differently.
func checkUpstreams(ups []netip.AddrPort) error {
	if len(ups) == 0 {
		return errors.New("no upstream to forward to")
	}
	seen := map[netip.AddrPort]bool{}
	for _, u := range ups {
		switch {
		case !u.IsValid():
			return fmt.Errorf("upstream %v is not an address", u)
		case u.Addr().Zone() != "":
			return fmt.Errorf("upstream %v: an IPv6 zone is not allowed", u)
		case u.Addr().IsUnspecified():
			return fmt.Errorf("upstream %v: the unspecified address is no server", u)
		case u.Port() == 0:
			return fmt.Errorf("upstream %v: port 0", u)
		case seen[u]:
			return fmt.Errorf("upstream %v is listed twice", u)
		}
		seen[u] = true
	}
	return nil
}
