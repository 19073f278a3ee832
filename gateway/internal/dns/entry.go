package dns

import (
	"net"
	"net/netip"
	"slices"
	"strings"
)

// entry is one service's records, built once by Store.Set and never
// modified afterwards: snapshots share entries, and responses share the
// address slices.
type entry struct {
	key string // serviceKey
	ns  string // namespace, lower case
	// live says the service has records. A headless service without a
	// ready endpoint, or a ClusterSetIP service without an IP, does not
	// exist in DNS: the specification wants NXDOMAIN for the former, and
	// the latter has nothing to resolve to either.
	live bool
	// a and aaaa answer <svc>.<ns>.svc.Z: sorted, without duplicates; A
	// addresses are 4 bytes long.
	a, aaaa []net.IP
	// below holds the names under the service's name, relative to it and
	// in lower case: "_http._tcp" (SRV), "web-0.c1" (a headless endpoint),
	// and the empty non-terminals "_tcp" and "c1" above them.
	below map[string]*node
	// targets are the targets of every SRV record of the service, relative
	// to the service's name: "" (the name itself) for a ClusterSetIP
	// service, every named endpoint (sorted) for a headless one.
	targets []string
}

// node is a name below a service's name. A node with no addresses and no
// port is an empty non-terminal.
type node struct {
	a, aaaa []net.IP
	// port, when not zero, makes this an SRV name: one record per target
	// of the service, on this port.
	port uint16
}

// build turns a Service into the entry queries are answered from.
func build(svc Service) *entry {
	e := &entry{key: serviceKey(svc.Namespace, svc.Name), ns: strings.ToLower(svc.Namespace)}
	if !isLabel(e.ns) || !isLabel(strings.ToLower(svc.Name)) {
		return e
	}
	var addrs []netip.Addr
	hosts := map[string][]netip.Addr{}
	if svc.Headless {
		for _, ep := range svc.Endpoints {
			epAddrs := cleanAddrs(ep.Addrs)
			if !ep.Ready || len(epAddrs) == 0 {
				continue
			}
			addrs = append(addrs, epAddrs...)
			if rel, ok := endpointName(ep.Hostname, ep.Cluster, epAddrs[0]); ok {
				// Two endpoints with one name (a dual-stack pod exported
				// as one endpoint per address family) make one name with
				// both addresses.
				hosts[rel] = append(hosts[rel], epAddrs...)
			}
		}
	} else {
		addrs = cleanAddrs(svc.IPs)
	}
	e.a, e.aaaa = byFamily(addrs)
	e.live = len(e.a)+len(e.aaaa) > 0
	if !e.live {
		return e
	}
	e.below = map[string]*node{}
	if svc.Headless {
		for rel, hostAddrs := range hosts {
			n := &node{}
			n.a, n.aaaa = byFamily(hostAddrs)
			e.below[rel] = n
			e.targets = append(e.targets, rel)
		}
		slices.Sort(e.targets)
		// Every name between an endpoint's name and the service's (the
		// cluster ID, and for a two-label ID its last label) exists too.
		// A cluster ID may equal another endpoint's name; the endpoint's
		// records win, the name exists either way.
		for rel := range hosts {
			for r := rel; ; {
				i := strings.IndexByte(r, '.')
				if i < 0 {
					break
				}
				r = r[i+1:]
				if _, ok := e.below[r]; !ok {
					e.below[r] = &node{}
				}
			}
		}
	} else {
		e.targets = []string{""}
	}
	if len(e.targets) == 0 {
		return e // no SRV target, so no SRV name either
	}
	for _, p := range svc.Ports {
		proto, ok := protoLabel(p.Protocol)
		name := strings.ToLower(p.Name)
		if !ok || p.Port == 0 || !isLabel(name) {
			continue
		}
		rel := "_" + name + "." + proto
		if _, dup := e.below[rel]; dup {
			continue // the first port of a name and protocol wins
		}
		e.below[rel] = &node{port: p.Port}
		if _, ok := e.below[proto]; !ok {
			e.below[proto] = &node{}
		}
	}
	return e
}

// endpointName is an endpoint's name relative to its service's name:
// "<hostname>.<cluster>", lower case. An endpoint without a hostname is
// named after its first address. ok is false when a part is not a valid
// DNS label (or a two-label cluster ID): such an endpoint still counts for
// the service's addresses but has no name of its own.
func endpointName(hostname, cluster string, first netip.Addr) (rel string, ok bool) {
	host := strings.ToLower(hostname)
	if host == "" {
		host = addrLabel(first)
	}
	cluster = strings.ToLower(cluster)
	if !isLabel(host) || !isClusterID(cluster) {
		return "", false
	}
	return host + "." + cluster, true
}

// addrLabel writes an address as one DNS label: 10-1-2-3, or for IPv6 the
// expanded form with dashes (the compressed form could begin with a dash).
func addrLabel(a netip.Addr) string {
	if a.Is4() {
		return strings.ReplaceAll(a.String(), ".", "-")
	}
	return strings.ReplaceAll(a.StringExpanded(), ":", "-")
}

// protoLabel is the SRV label of a Kubernetes port protocol.
func protoLabel(protocol string) (string, bool) {
	switch protocol {
	case "TCP", "":
		return "_tcp", true
	case "UDP":
		return "_udp", true
	case "SCTP":
		return "_sctp", true
	}
	return "", false
}

// cleanAddrs drops invalid addresses and IPv6 zones, and turns IPv4-mapped
// IPv6 addresses into IPv4 ones (they are IPv4 endpoints).
func cleanAddrs(in []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(in))
	for _, a := range in {
		if a.IsValid() {
			out = append(out, a.Unmap().WithZone(""))
		}
	}
	return out
}

// byFamily sorts addresses, drops duplicates and splits them by family, in
// the form the A and AAAA records carry.
func byFamily(addrs []netip.Addr) (a, aaaa []net.IP) {
	addrs = slices.Clone(addrs)
	slices.SortFunc(addrs, netip.Addr.Compare)
	addrs = slices.Compact(addrs)
	for _, addr := range addrs {
		if addr.Is4() {
			a = append(a, addr.AsSlice())
		} else {
			aaaa = append(aaaa, addr.AsSlice())
		}
	}
	return a, aaaa
}

// isLabel says s is a lower-case DNS label of letters, digits and dashes,
// not beginning or ending with a dash.
func isLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// isClusterID says s is a cluster ID as KEP-1645 defines it: one label, or
// two separated by a dot.
func isClusterID(s string) bool {
	first, second, two := strings.Cut(s, ".")
	return isLabel(first) && (!two || isLabel(second))
}
