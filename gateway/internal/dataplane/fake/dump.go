package fake

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

// Dump is the whole state as sorted text, one object a line.
func (k *Kernel) Dump() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var lines []string
	add := func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }
	for _, name := range slices.Sorted(maps.Keys(k.links)) {
		l := k.links[name]
		addrs := make([]string, 0, len(l.Addresses))
		for _, a := range l.Addresses {
			addrs = append(addrs, a.String())
		}
		sort.Strings(addrs)
		add("link %s kind=%s mtu=%d up=%t addrs=[%s]", name, l.Kind, l.MTU, l.Up, strings.Join(addrs, " "))
		if v := l.VXLAN; v != nil {
			remote := "-"
			if v.Remote.IsValid() {
				remote = v.Remote.String()
			}
			add("link %s vxlan vni=%d port=%d underlay=%s local=%s remote=%s mac=%s", name, v.VNI, v.Port, v.Underlay, v.Local, remote, v.MAC)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(k.devices)) {
		d := k.devices[name]
		add("wireguard %s pub=%s port=%d fwmark=%#x", name, d.PublicKey, d.ListenPort, d.FirewallMark)
		for _, p := range d.Peers {
			ep := "-"
			if p.Endpoint != nil {
				ep = p.Endpoint.String()
			}
			var ips []string
			for _, n := range p.AllowedIPs {
				ips = append(ips, n.String())
			}
			sort.Strings(ips)
			add("wireguard %s peer %s endpoint=%s keepalive=%s allowed=[%s]", name, p.PublicKey, ep, p.PersistentKeepaliveInterval, strings.Join(ips, " "))
		}
	}
	for _, t := range slices.Sorted(maps.Keys(k.routes)) {
		for _, r := range k.routes[t] {
			add("route table %d %s proto %d", t, r.String(), dataplane.RouteProtocol)
		}
	}
	for _, f := range k.foreign {
		add("route table %d %s proto %d", f.Table, f.Route.String(), f.Protocol)
	}
	for _, r := range k.rules {
		add("rule %s proto %d", r, dataplane.RouteProtocol)
	}
	for _, n := range k.neighbors {
		add("neighbor %s lladdr %s dev %s permanent", n.IP, n.MAC, n.Dev)
	}
	if len(k.clamp) > 0 {
		add("nft wirespan mss clamp on [%s]", strings.Join(k.clamp, " "))
	}
	if k.gossip != nil {
		add("nft wirespan gossip input %s", k.gossip)
	}
	for _, name := range slices.Sorted(maps.Keys(k.sysctls)) {
		add("sysctl %s=%s", name, k.sysctls[name])
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}
