// Package fake is a stateful, in-memory dataplane.Kernel for tests of the
// logic above the kernel seam. It keeps what it is told the way the kernel
// would, including the parts that matter for ownership: routes and rules of
// other owners, other nftables tables, and a userspace WireGuard link that
// outlives its device. It refuses what the kernel refuses (refuse.go).
// Dump prints the whole state as sorted text for golden
// comparisons.
package fake

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

// ForeignRoute is a route of another owner in one of the tables.
type ForeignRoute struct {
	Table    int
	Route    dataplane.Route
	Protocol int
}

// Kernel is the fake. The zero value is not usable; call New.
type Kernel struct {
	mu        sync.Mutex
	links     map[string]*dataplane.Link
	devices   map[string]*wgtypes.Device // by link name; absent: no device answers
	routes    map[int][]dataplane.Route
	foreign   []ForeignRoute
	rules     []dataplane.Rule
	neighbors []dataplane.Neighbor
	clamp     []string
	gossip    *dataplane.GossipInput
	sysctls   map[string]string
	// Calls counts the changing calls made, by method name.
	Calls map[string]int
	// FailOn makes the named method fail once with the given error.
	FailOn map[string]error
}

// New returns an empty kernel with IPv4 forwarding off, like a fresh one.
func New() *Kernel {
	return &Kernel{
		links:   map[string]*dataplane.Link{},
		devices: map[string]*wgtypes.Device{},
		routes:  map[int][]dataplane.Route{},
		sysctls: map[string]string{"net/ipv4/ip_forward": "0"},
		Calls:   map[string]int{},
		FailOn:  map[string]error{},
	}
}

var _ dataplane.Kernel = (*Kernel)(nil)

func (k *Kernel) change(method string) error {
	k.Calls[method]++
	if err, ok := k.FailOn[method]; ok {
		delete(k.FailOn, method)
		return fmt.Errorf("fake %s: %w", method, err)
	}
	return nil
}

// ChangeCount is the number of changing calls made so far.
func (k *Kernel) ChangeCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, c := range k.Calls {
		n += c
	}
	return n
}

// AddForeignRoute adds a route of another owner, which Wirespan must never
// list or touch.
func (k *Kernel) AddForeignRoute(table, protocol int, r dataplane.Route) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.foreign = append(k.foreign, ForeignRoute{Table: table, Route: r, Protocol: protocol})
}

// AddLink adds a link of another owner (an underlay interface, say).
func (k *Kernel) AddLink(l dataplane.Link) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.links[l.Name] = &l
}

// StopDevices simulates the gateway process exiting: userspace devices stop
// answering, their persistent links stay.
func (k *Kernel) StopDevices() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for name, l := range k.links {
		if l.Kind == "tun" {
			delete(k.devices, name)
		}
	}
}

// SetHandshake records a handshake and traffic on a peer, as WireGuard would.
func (k *Kernel) SetHandshake(dev string, peer wgtypes.Key, p wgtypes.Peer) {
	k.mu.Lock()
	defer k.mu.Unlock()
	d := k.devices[dev]
	for i := range d.Peers {
		if d.Peers[i].PublicKey == peer {
			d.Peers[i].LastHandshakeTime = p.LastHandshakeTime
			d.Peers[i].ReceiveBytes, d.Peers[i].TransmitBytes = p.ReceiveBytes, p.TransmitBytes
			if p.Endpoint != nil {
				d.Peers[i].Endpoint = p.Endpoint
			}
		}
	}
}

// Link implements dataplane.Kernel in memory.
func (k *Kernel) Link(name string) (dataplane.Link, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l, ok := k.links[name]
	if !ok {
		return dataplane.Link{}, false, nil
	}
	out := *l
	out.Addresses = slices.Clone(l.Addresses)
	return out, true, nil
}

// CreateWireGuard implements dataplane.Kernel in memory.
func (k *Kernel) CreateWireGuard(name string, mtu int) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.change("CreateWireGuard"); err != nil {
		return err
	}
	if _, ok := k.devices[name]; ok {
		return fmt.Errorf("fake: device %s already runs", name)
	}
	if _, ok := k.links[name]; !ok {
		k.links[name] = &dataplane.Link{Name: name, Kind: "tun", MTU: mtu}
	}
	k.devices[name] = &wgtypes.Device{Name: name, Type: wgtypes.Userspace}
	return nil
}

// CreateVXLAN implements dataplane.Kernel in memory.
func (k *Kernel) CreateVXLAN(v dataplane.VXLAN) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.change("CreateVXLAN"); err != nil {
		return err
	}
	if _, ok := k.links[v.Name]; ok {
		return fmt.Errorf("fake: link %s exists", v.Name)
	}
	mtu := v.MTU
	v.MTU = 0 // attributes only; the MTU lives on the link
	k.links[v.Name] = &dataplane.Link{Name: v.Name, Kind: "vxlan", MTU: mtu, VXLAN: &v}
	return nil
}

func (k *Kernel) withLink(method, name string, f func(*dataplane.Link)) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.change(method); err != nil {
		return err
	}
	l, ok := k.links[name]
	if !ok {
		return fmt.Errorf("fake %s: no link %s", method, name)
	}
	f(l)
	return nil
}

// SetMTU implements dataplane.Kernel in memory.
func (k *Kernel) SetMTU(name string, mtu int) error {
	return k.withLink("SetMTU", name, func(l *dataplane.Link) { l.MTU = mtu })
}

// SetUp implements dataplane.Kernel in memory.
func (k *Kernel) SetUp(name string) error {
	return k.withLink("SetUp", name, func(l *dataplane.Link) { l.Up = true })
}

// AddAddress implements dataplane.Kernel in memory.
func (k *Kernel) AddAddress(name string, addr netip.Prefix) error {
	var refused error
	err := k.withLink("AddAddress", name, func(l *dataplane.Link) {
		if refused = k.checkAddress(addr); refused == nil && !slices.Contains(l.Addresses, addr) {
			l.Addresses = append(l.Addresses, addr)
		}
	})
	if err == nil && refused != nil {
		err = fmt.Errorf("fake AddAddress %s dev %s: %w", addr, name, refused)
	}
	return err
}

// DeleteAddress implements dataplane.Kernel in memory.
func (k *Kernel) DeleteAddress(name string, addr netip.Prefix) error {
	return k.withLink("DeleteAddress", name, func(l *dataplane.Link) {
		l.Addresses = slices.DeleteFunc(l.Addresses, func(p netip.Prefix) bool { return p == addr })
	})
}

// DeleteLink implements dataplane.Kernel in memory.
func (k *Kernel) DeleteLink(name string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.change("DeleteLink"); err != nil {
		return err
	}
	if _, ok := k.links[name]; !ok {
		return fmt.Errorf("fake DeleteLink: no link %s", name)
	}
	delete(k.links, name)
	delete(k.devices, name)
	// The kernel drops routes and neighbors through a deleted link.
	for t, rs := range k.routes {
		k.routes[t] = slices.DeleteFunc(rs, func(r dataplane.Route) bool { return r.Dev == name })
	}
	k.foreign = slices.DeleteFunc(k.foreign, func(f ForeignRoute) bool { return f.Route.Dev == name })
	k.neighbors = slices.DeleteFunc(k.neighbors, func(n dataplane.Neighbor) bool { return n.Dev == name })
	return nil
}

// Device implements dataplane.Kernel in memory.
func (k *Kernel) Device(name string) (*wgtypes.Device, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	d, ok := k.devices[name]
	if !ok {
		return nil, fmt.Errorf("fake: wireguard device %s: %w", name, os.ErrNotExist)
	}
	out := *d
	out.Peers = slices.Clone(d.Peers)
	return &out, nil
}

// ConfigureDevice implements dataplane.Kernel in memory.
func (k *Kernel) ConfigureDevice(name string, cfg wgtypes.Config) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.change("ConfigureDevice"); err != nil {
		return err
	}
	d, ok := k.devices[name]
	if !ok {
		return fmt.Errorf("fake ConfigureDevice %s: %w", name, os.ErrNotExist)
	}
	if cfg.PrivateKey != nil {
		d.PrivateKey, d.PublicKey = dataplane.StoredKey(*cfg.PrivateKey), cfg.PrivateKey.PublicKey()
	}
	if cfg.ListenPort != nil {
		d.ListenPort = *cfg.ListenPort
	}
	if cfg.FirewallMark != nil {
		d.FirewallMark = *cfg.FirewallMark
	}
	if cfg.ReplacePeers {
		d.Peers = nil
	}
	for _, pc := range cfg.Peers {
		i := slices.IndexFunc(d.Peers, func(p wgtypes.Peer) bool { return p.PublicKey == pc.PublicKey })
		switch {
		case pc.Remove:
			if i >= 0 {
				d.Peers = slices.Delete(d.Peers, i, i+1)
			}
			continue
		case i < 0 && pc.UpdateOnly:
			continue
		case i < 0:
			d.Peers = append(d.Peers, wgtypes.Peer{PublicKey: pc.PublicKey})
			i = len(d.Peers) - 1
		}
		p := &d.Peers[i]
		if pc.Endpoint != nil {
			p.Endpoint = pc.Endpoint
		}
		if pc.PersistentKeepaliveInterval != nil {
			p.PersistentKeepaliveInterval = *pc.PersistentKeepaliveInterval
		}
		if pc.ReplaceAllowedIPs {
			p.AllowedIPs = nil
		}
		p.AllowedIPs = append(p.AllowedIPs, pc.AllowedIPs...)
	}
	return nil
}

// Routes implements dataplane.Kernel in memory.
func (k *Kernel) Routes(table int) ([]dataplane.Route, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.routes[table]), nil
}

// ReplaceRoute implements dataplane.Kernel in memory.
func (k *Kernel) ReplaceRoute(table int, r dataplane.Route) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.change("ReplaceRoute"); err != nil {
		return err
	}
	if err := k.checkRoute(r); err != nil {
		return fmt.Errorf("fake ReplaceRoute %s: %w", r, err)
	}
	for _, f := range k.foreign {
		if f.Table == table && f.Route.Dst == r.Dst {
			// The kernel would replace it; Wirespan must not take over
			// routes it does not own, so the fake makes that loud.
			return fmt.Errorf("fake ReplaceRoute %s table %d: would replace a route of protocol %d", r.Dst, table, f.Protocol)
		}
	}
	rs := slices.DeleteFunc(k.routes[table], func(x dataplane.Route) bool { return x.Dst == r.Dst })
	k.routes[table] = append(rs, r)
	return nil
}

// DeleteRoute implements dataplane.Kernel in memory.
func (k *Kernel) DeleteRoute(table int, r dataplane.Route) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.change("DeleteRoute"); err != nil {
		return err
	}
	k.routes[table] = slices.DeleteFunc(k.routes[table], func(x dataplane.Route) bool { return x.Dst == r.Dst })
	return nil
}

// Rules implements dataplane.Kernel in memory.
func (k *Kernel) Rules() ([]dataplane.Rule, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.rules), nil
}

// AddRule implements dataplane.Kernel in memory.
func (k *Kernel) AddRule(r dataplane.Rule) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.change("AddRule"); err != nil {
		return err
	}
	if !slices.Contains(k.rules, r) {
		k.rules = append(k.rules, r)
	}
	return nil
}

// DeleteRule implements dataplane.Kernel in memory.
func (k *Kernel) DeleteRule(r dataplane.Rule) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.change("DeleteRule"); err != nil {
		return err
	}
	k.rules = slices.DeleteFunc(k.rules, func(x dataplane.Rule) bool { return x == r })
	return nil
}

// Neighbors implements dataplane.Kernel in memory.
func (k *Kernel) Neighbors(dev string) ([]dataplane.Neighbor, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []dataplane.Neighbor
	for _, n := range k.neighbors {
		if n.Dev == dev {
			out = append(out, n)
		}
	}
	return out, nil
}

// SetNeighbor implements dataplane.Kernel in memory.
func (k *Kernel) SetNeighbor(n dataplane.Neighbor) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.change("SetNeighbor"); err != nil {
		return err
	}
	if _, ok := k.links[n.Dev]; !ok {
		return fmt.Errorf("fake SetNeighbor %s: no link %s", n.IP, n.Dev)
	}
	k.neighbors = slices.DeleteFunc(k.neighbors, func(x dataplane.Neighbor) bool { return x.Dev == n.Dev && x.IP == n.IP })
	k.neighbors = append(k.neighbors, n)
	return nil
}

// DeleteNeighbor implements dataplane.Kernel in memory.
func (k *Kernel) DeleteNeighbor(n dataplane.Neighbor) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.change("DeleteNeighbor"); err != nil {
		return err
	}
	k.neighbors = slices.DeleteFunc(k.neighbors, func(x dataplane.Neighbor) bool { return x.Dev == n.Dev && x.IP == n.IP })
	return nil
}

// MSSClamp implements dataplane.Kernel in memory.
func (k *Kernel) MSSClamp() ([]string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.clamp), nil
}

// SetMSSClamp implements dataplane.Kernel in memory.
func (k *Kernel) SetMSSClamp(ifaces []string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.change("SetMSSClamp"); err != nil {
		return err
	}
	k.clamp = slices.Clone(ifaces)
	return nil
}

// GossipInput implements dataplane.Kernel in memory.
func (k *Kernel) GossipInput() (*dataplane.GossipInput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return cloneGossip(k.gossip), nil
}

// SetGossipInput implements dataplane.Kernel in memory.
func (k *Kernel) SetGossipInput(g *dataplane.GossipInput) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.change("SetGossipInput"); err != nil {
		return err
	}
	k.gossip = cloneGossip(g)
	return nil
}

func cloneGossip(g *dataplane.GossipInput) *dataplane.GossipInput {
	if g == nil {
		return nil
	}
	c := *g
	c.Peers = slices.Clone(g.Peers)
	return &c
}

// Sysctl implements dataplane.Kernel in memory.
func (k *Kernel) Sysctl(name string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.checkSysctl(name); err != nil {
		return "", err
	}
	return k.sysctls[name] + "\n", nil
}

// SetSysctl implements dataplane.Kernel in memory.
func (k *Kernel) SetSysctl(name, value string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.change("SetSysctl"); err != nil {
		return err
	}
	if err := k.checkSysctl(name); err != nil {
		return err
	}
	k.sysctls[name] = value
	return nil
}
