package dns

import (
	"maps"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
)

// Service is what the server knows about one imported service: its
// ServiceImport and, for a headless service, the endpoints of every
// exporting cluster.
type Service struct {
	// Namespace and Name are the service's namespace and name. Each must be
	// a DNS label; a service whose names are not gets no records.
	Namespace, Name string
	// Headless is true for a ServiceImport of type Headless: its name
	// resolves to its ready endpoints instead of ClusterSetIPs.
	Headless bool
	// IPs are the ClusterSetIPs (ServiceImport spec.ips); empty for a
	// headless service.
	IPs []netip.Addr
	// Ports are the service's ports. Each named port with a known protocol
	// gets an SRV record; unnamed ports get none.
	Ports []Port
	// Endpoints are a headless service's endpoints in every cluster. Only
	// ready ones are answered. Ignored for a ClusterSetIP service.
	Endpoints []Endpoint
}

// Port is one port of a service.
type Port struct {
	// Name is the port's name; an unnamed port has no SRV record.
	Name string
	// Protocol is "TCP", "UDP" or "SCTP"; empty means TCP, as in a
	// Kubernetes Service.
	Protocol string
	// Port is the service's port number.
	Port uint16
}

// Endpoint is one endpoint of a headless service.
type Endpoint struct {
	// Cluster is the ID of the cluster the endpoint lives in: one DNS
	// label, or two separated by a dot (KEP-1645).
	Cluster string
	// Hostname names the endpoint as <hostname>.<cluster>.<svc>.<ns>. When
	// empty, the endpoint is named after its first address (10-1-2-3, or
	// the expanded IPv6 address with dashes), the system-assigned
	// identifier the specification allows.
	Hostname string
	// Addrs are the endpoint's addresses.
	Addrs []netip.Addr
	// Ready is the EndpointSlice ready condition: only ready endpoints are
	// answered.
	Ready bool
}

// Store is the in-memory set of services the server answers from. It is
// safe for concurrent use. Writers build a new snapshot and swap it in, so
// a query never waits for a writer; writers wait for each other.
type Store struct {
	mu  sync.Mutex // serializes writers
	cur atomic.Pointer[view]
}

// NewStore returns an empty Store.
func NewStore() *Store {
	s := &Store{}
	s.cur.Store(emptyView())
	return s
}

// Set adds svc, or replaces the service of the same namespace and name.
// The Store keeps no reference to svc's slices.
func (s *Store) Set(svc Service) {
	e := build(svc)
	s.update(func(v *view) { v.put(e) })
}

// Delete removes the service namespace/name, if present.
func (s *Store) Delete(namespace, name string) {
	key := serviceKey(namespace, name)
	s.update(func(v *view) { v.remove(key) })
}

// Replace makes all the Store's services at once: a query sees either the
// old set or the new one, never a mix.
func (s *Store) Replace(all []Service) {
	entries := make([]*entry, len(all))
	for i, svc := range all {
		entries[i] = build(svc)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := &view{serial: s.load().serial + 1, entries: make(map[string]*entry, len(all)), namespaces: map[string]int{}}
	for _, e := range entries {
		v.put(e)
	}
	s.cur.Store(v)
}

// Len is the number of services in the Store, including those that have no
// records (a headless service without ready endpoints, a service without
// ClusterSetIPs, a service whose names are not DNS labels).
func (s *Store) Len() int { return len(s.load().entries) }

func (s *Store) load() *view {
	if v := s.cur.Load(); v != nil {
		return v
	}
	return emptyView()
}

// update applies change to a copy of the current snapshot and publishes it.
// Copying is linear in the number of services (pointers only); an entry is
// never copied or modified once built.
func (s *Store) update(change func(*view)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.load()
	v := &view{serial: old.serial + 1, entries: maps.Clone(old.entries), namespaces: maps.Clone(old.namespaces), live: old.live}
	change(v)
	s.cur.Store(v)
}

// view is one immutable snapshot of the Store.
type view struct {
	// serial counts changes; it is the SOA serial.
	serial uint32
	// entries are all services by serviceKey, live or not.
	entries map[string]*entry
	// namespaces counts the live services of each namespace: <ns>.svc.Z
	// exists while it is above zero.
	namespaces map[string]int
	// live counts live services: svc.Z exists while it is above zero.
	live int
}

func emptyView() *view {
	return &view{serial: 1, entries: map[string]*entry{}, namespaces: map[string]int{}}
}

func (v *view) put(e *entry) {
	v.remove(e.key)
	v.entries[e.key] = e
	if e.live {
		v.namespaces[e.ns]++
		v.live++
	}
}

func (v *view) remove(key string) {
	old, ok := v.entries[key]
	if !ok {
		return
	}
	delete(v.entries, key)
	if old.live {
		if v.namespaces[old.ns]--; v.namespaces[old.ns] <= 0 {
			delete(v.namespaces, old.ns)
		}
		v.live--
	}
}

// serviceKey is "<name>.<namespace>" in lower case: the service's owner
// name relative to svc.<zone>, which is also how a query finds it. Names
// that are not DNS labels get a key no query can produce, so that ("a.b",
// "c") and ("a", "b.c") stay two services.
func serviceKey(namespace, name string) string {
	ns, n := strings.ToLower(namespace), strings.ToLower(name)
	if !isLabel(ns) || !isLabel(n) {
		return namespace + "/" + name
	}
	return n + "." + ns
}
