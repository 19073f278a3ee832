package mcs

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// grouper collects endpoints into groups of one address type and one port
// list, keeping one endpoint per address. Both FromService (the exporting
// side) and EndpointSlices (the importing side) group this way, so that the
// result never depends on how the input happened to be sliced.
type grouper struct {
	groups map[string]*group
}

type group struct {
	addressType discoveryv1.AddressType
	ports       []discoveryv1.EndpointPort // canonical: see canonicalPorts
	key         string
	byAddress   map[string]Endpoint
}

// add files e under its address type and ports. ports must be canonical.
// An address seen twice keeps the better of the two endpoints (see better):
// the EndpointSlice controller may list an endpoint in two slices for a
// moment while it moves it.
func (g *grouper) add(addressType discoveryv1.AddressType, ports []discoveryv1.EndpointPort, e Endpoint) {
	key := groupKey(addressType, ports)
	if g.groups == nil {
		g.groups = map[string]*group{}
	}
	grp := g.groups[key]
	if grp == nil {
		grp = &group{addressType: addressType, ports: ports, key: key, byAddress: map[string]Endpoint{}}
		g.groups[key] = grp
	}
	addr := e.Addresses[0]
	if old, ok := grp.byAddress[addr]; !ok || better(e, old) {
		grp.byAddress[addr] = e
	}
}

// slices returns the groups as Slices: groups ordered by address type then
// ports, endpoints by address; groups left empty are dropped.
func (g *grouper) slices() []Slice {
	grps := make([]*group, 0, len(g.groups))
	for _, grp := range g.groups {
		if len(grp.byAddress) > 0 {
			grps = append(grps, grp)
		}
	}
	slices.SortFunc(grps, func(a, b *group) int { return strings.Compare(a.key, b.key) })
	var out []Slice
	for _, grp := range grps {
		eps := make([]Endpoint, 0, len(grp.byAddress))
		for _, e := range grp.byAddress {
			eps = append(eps, e)
		}
		slices.SortFunc(eps, func(a, b Endpoint) int { return compareAddress(a.Addresses[0], b.Addresses[0]) })
		out = append(out, Slice{AddressType: grp.addressType, Ports: grp.ports, Endpoints: eps})
	}
	return out
}

// groupKey orders groups by address type, then by their ports.
func groupKey(addressType discoveryv1.AddressType, ports []discoveryv1.EndpointPort) string {
	var b strings.Builder
	b.WriteString(string(addressType))
	for _, p := range ports {
		port := "*" // a nil port means "all ports" in the EndpointSlice API
		if p.Port != nil {
			port = fmt.Sprint(*p.Port)
		}
		fmt.Fprintf(&b, "|%s/%s/%s/%s", deref(p.Name), deref(p.Protocol), port, deref(p.AppProtocol))
	}
	return b.String()
}

// canonicalPorts copies ports, fills the API defaults (name "", protocol
// TCP) so that equal ports compare equal, and sorts them by name, which is
// unique within a slice.
func canonicalPorts(in []discoveryv1.EndpointPort) []discoveryv1.EndpointPort {
	out := make([]discoveryv1.EndpointPort, 0, len(in))
	for _, p := range in {
		c := discoveryv1.EndpointPort{
			Name:        ptr(deref(p.Name)),
			Protocol:    ptr(cmp.Or(deref(p.Protocol), corev1.ProtocolTCP)),
			AppProtocol: clonePtr(p.AppProtocol),
			Port:        clonePtr(p.Port),
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b discoveryv1.EndpointPort) int {
		return cmp.Or(strings.Compare(*a.Name, *b.Name),
			strings.Compare(string(*a.Protocol), string(*b.Protocol)),
			cmp.Compare(deref(a.Port), deref(b.Port)))
	})
	return out
}

// fromEndpoint reads one endpoint of an EndpointSlice. It keeps endpoints
// that are ready or serving. Ready ones take traffic. Serving but not ready
// ones are terminating endpoints still able to answer: kube-proxy falls back
// to them when a Service has no ready endpoint left, which lets connections
// drain during a rollout; importing clusters can do the same only if we
// carry them. An endpoint that is neither will take no traffic anywhere and
// would only cost gossip space.
//
// Unset conditions read as the EndpointSlice API says: Ready nil is true,
// Terminating nil is false. Serving nil reads as Ready: the API says "true",
// but serving was added after ready, so a producer that leaves it unset
// only ever expressed readiness; reading it as true would carry endpoints
// it marked not ready as able to serve. When Ready is unset or true the
// two readings agree.
func fromEndpoint(ep *discoveryv1.Endpoint) (Endpoint, bool) {
	if len(ep.Addresses) == 0 {
		return Endpoint{}, false
	}
	c := ep.Conditions
	ready := c.Ready == nil || *c.Ready
	serving := ready
	if c.Serving != nil {
		serving = *c.Serving
	}
	terminating := c.Terminating != nil && *c.Terminating
	if !ready && !serving {
		return Endpoint{}, false
	}
	return Endpoint{
		Addresses:   slices.Clone(ep.Addresses),
		Hostname:    deref(ep.Hostname),
		Zone:        deref(ep.Zone),
		Ready:       ready,
		Serving:     serving,
		Terminating: terminating,
	}, true
}

// better reports whether a should be kept over b, two endpoints with the
// same address: the more usable one (ready, then serving, then not
// terminating), and between equally usable ones a fixed choice, so that
// the input order never matters.
func better(a, b Endpoint) bool {
	if ra, rb := rank(a), rank(b); ra != rb {
		return ra > rb
	}
	return cmp.Or(
		strings.Compare(a.Hostname, b.Hostname),
		strings.Compare(a.Zone, b.Zone),
		slices.Compare(a.Addresses, b.Addresses),
	) < 0
}

func rank(e Endpoint) int {
	r := 0
	if e.Ready {
		r += 4
	}
	if e.Serving {
		r += 2
	}
	if !e.Terminating {
		r++
	}
	return r
}

// compareAddress orders IP addresses numerically, and anything that is not
// an IP address after all of them, as text.
func compareAddress(a, b string) int {
	ia, errA := netip.ParseAddr(a)
	ib, errB := netip.ParseAddr(b)
	switch {
	case errA == nil && errB == nil:
		return ia.Compare(ib)
	case errA == nil:
		return -1
	case errB == nil:
		return 1
	default:
		return strings.Compare(a, b)
	}
}

func endpointCount(ss []Slice) int {
	n := 0
	for _, s := range ss {
		n += len(s.Endpoints)
	}
	return n
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	return ptr(*p)
}
