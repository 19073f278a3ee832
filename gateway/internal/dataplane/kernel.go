package dataplane

import (
	"net/netip"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Kernel is the seam between Wirespan's logic and the node's kernel. Every
// method works on one network namespace: the one the implementation was made
// for. Implementations return an error wrapped with what they were doing.
type Kernel interface {
	Links
	WireGuard
	Routes
	Rules
	Neighbors
	Filter
	Sysctls
}

// Link is a network interface as found.
type Link struct {
	Name string
	// Kind is "wireguard", "tun" (a userspace WireGuard device), "vxlan" or
	// another kernel link kind.
	Kind      string
	MTU       int
	Up        bool
	Addresses []netip.Prefix
	// VXLAN holds a VXLAN link's attributes; nil for other kinds.
	VXLAN *VXLAN
}

// Links reads and changes network interfaces.
type Links interface {
	// Link returns the named link; ok is false if there is none.
	Link(name string) (l Link, ok bool, err error)
	// CreateWireGuard creates a WireGuard device: a kernel one when the
	// kernel has WireGuard, otherwise an embedded userspace one. It leaves
	// the device down, without addresses.
	CreateWireGuard(name string, mtu int) error
	// CreateVXLAN creates a VXLAN link, down, without addresses.
	CreateVXLAN(v VXLAN) error
	SetMTU(name string, mtu int) error
	SetUp(name string) error
	AddAddress(name string, addr netip.Prefix) error
	DeleteAddress(name string, addr netip.Prefix) error
	DeleteLink(name string) error
}

// WireGuard reads and configures WireGuard devices, in wgctrl's terms.
type WireGuard interface {
	Device(name string) (*wgtypes.Device, error)
	ConfigureDevice(name string, cfg wgtypes.Config) error
}

// Routes reads and changes routes that carry RouteProtocol.
type Routes interface {
	// Routes lists the routes in table that carry RouteProtocol. Routes of
	// other owners are never returned, so never touched.
	Routes(table int) ([]Route, error)
	ReplaceRoute(table int, r Route) error
	DeleteRoute(table int, r Route) error
}

// Rules reads and changes policy rules that carry RouteProtocol.
type Rules interface {
	// Rules lists the IPv4 and IPv6 rules that carry RouteProtocol.
	Rules() ([]Rule, error)
	AddRule(r Rule) error
	DeleteRule(r Rule) error
}

// Neighbors reads and changes permanent neighbor entries.
type Neighbors interface {
	// Neighbors lists the permanent IPv4 and IPv6 entries on dev.
	Neighbors(dev string) ([]Neighbor, error)
	SetNeighbor(n Neighbor) error
	DeleteNeighbor(n Neighbor) error
}

// Filter reads and changes Wirespan's own nftables table. Nothing outside it
// is ever read or changed.
type Filter interface {
	// MSSClamp returns the interfaces whose forwarded TCP SYNs are clamped.
	MSSClamp() ([]string, error)
	// SetMSSClamp replaces, in one transaction, the clamp rules by rules for
	// ifaces; an empty list removes them (and Wirespan's table, once it
	// holds nothing else).
	SetMSSClamp(ifaces []string) error
	// GossipInput returns the gossip input rule; nil if there is none.
	GossipInput() (*GossipInput, error)
	// SetGossipInput replaces, in one transaction, the gossip input rule;
	// nil removes it.
	SetGossipInput(g *GossipInput) error
}

// Sysctls reads and sets kernel parameters in the namespace, by their path
// under /proc/sys ("net/ipv4/ip_forward").
type Sysctls interface {
	Sysctl(name string) (string, error)
	SetSysctl(name, value string) error
}
