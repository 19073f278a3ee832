package services

import (
	"net/netip"
	"reflect"
	"sync"

	discoveryv1 "k8s.io/api/discovery/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/wirespan/wirespan/gateway/internal/dns"
	"github.com/wirespan/wirespan/internal/mcs"
)

// kept is what a sync left in place for clusters whose set of exports is
// not known yet (unsettled: a gateway restarted and no snapshot has
// arrived). DNS keeps answering from it, so that names do not vanish for
// the seconds until the snapshot comes.
type kept struct {
	mu sync.Mutex
	// imports are ServiceImports that no settled cluster exports but that
	// stay for an unsettled one.
	imports map[serviceKey]*mcsv1beta1.ServiceImport
	// slices are imported EndpointSlices of unsettled clusters that stay,
	// by service.
	slices map[serviceKey][]*discoveryv1.EndpointSlice
}

func (k *kept) addImport(key serviceKey, si *mcsv1beta1.ServiceImport) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.imports == nil {
		k.imports = map[serviceKey]*mcsv1beta1.ServiceImport{}
	}
	k.imports[key] = si
}

func (k *kept) addSlice(key serviceKey, s *discoveryv1.EndpointSlice) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.slices == nil {
		k.slices = map[serviceKey][]*discoveryv1.EndpointSlice{}
	}
	k.slices[key] = append(k.slices[key], s)
}

// dnsService is what DNS serves for one import: a ClusterSetIP import by
// its clusterset IPs, a headless one by its endpoints (the DNS server
// answers only the ready ones).
func dnsService(key serviceKey, spec mcsv1beta1.ServiceImportSpec, ips []string, endpoints []dns.Endpoint) dns.Service {
	svc := dns.Service{Namespace: key.Namespace, Name: key.Name, Headless: spec.Type == mcsv1beta1.Headless}
	for _, ip := range ips {
		if a, err := netip.ParseAddr(ip); err == nil {
			svc.IPs = append(svc.IPs, a)
		}
	}
	for _, p := range spec.Ports {
		svc.Ports = append(svc.Ports, dns.Port{Name: p.Name, Protocol: string(p.Protocol), Port: uint16(p.Port)})
	}
	if svc.Headless {
		svc.Endpoints = endpoints
	}
	return svc
}

// exportEndpoints are the endpoints of every exporting cluster.
func exportEndpoints(exports []mcs.Export) []dns.Endpoint {
	var out []dns.Endpoint
	for _, e := range exports {
		for _, s := range e.Slices {
			for _, ep := range s.Endpoints {
				out = append(out, dnsEndpoint(e.Cluster, ep.Hostname, ep.Ready, ep.Addresses))
			}
		}
	}
	return out
}

// sliceEndpoints are the endpoints of imported EndpointSlices, each of the
// cluster its source-cluster label names.
func sliceEndpoints(slices []*discoveryv1.EndpointSlice) []dns.Endpoint {
	var out []dns.Endpoint
	for _, s := range slices {
		for _, ep := range s.Endpoints {
			ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			hostname := ""
			if ep.Hostname != nil {
				hostname = *ep.Hostname
			}
			out = append(out, dnsEndpoint(s.Labels[mcsv1beta1.LabelSourceCluster], hostname, ready, ep.Addresses))
		}
	}
	return out
}

func dnsEndpoint(cluster, hostname string, ready bool, addrs []string) dns.Endpoint {
	d := dns.Endpoint{Cluster: cluster, Hostname: hostname, Ready: ready}
	for _, a := range addrs {
		if addr, err := netip.ParseAddr(a); err == nil {
			d.Addrs = append(d.Addrs, addr)
		}
	}
	return d
}

// dnsFor is what DNS should serve for an import this cluster has, given
// its clusterset IPs; false if nothing yet (no VIP, or no namespace).
func (c *Controller) dnsFor(w *world, key serviceKey, imp mcs.Import, ips []string) (dns.Service, bool) {
	if imp.Spec.Type == mcsv1beta1.ClusterSetIP && len(ips) == 0 {
		return dns.Service{}, false
	}
	if imp.Spec.Type == mcsv1beta1.Headless && !c.namespaceHasImport(key) {
		return dns.Service{}, false
	}
	w.kept.mu.Lock()
	kept := w.kept.slices[key]
	w.kept.mu.Unlock()
	return dnsService(key, imp.Spec, ips, append(exportEndpoints(w.exports[key]), sliceEndpoints(kept)...)), true
}

// feedOne hands DNS one import as soon as it is written, so that a name
// does not wait for the rest of a long sync (thousands of imports at
// once take minutes of API writes). feedDNS completes the picture at the
// end of the sync.
func (c *Controller) feedOne(w *world, key serviceKey, imp mcs.Import, ips []string) {
	if c.DNS == nil {
		return
	}
	if svc, ok := c.dnsFor(w, key, imp, ips); ok {
		c.setDNS(key, svc)
	}
}

// setDNS gives DNS one service unless it already has it as it is.
func (c *Controller) setDNS(key serviceKey, svc dns.Service) {
	c.dnsMu.Lock()
	defer c.dnsMu.Unlock()
	if old, ok := c.dnsLast[key]; ok && reflect.DeepEqual(old, svc) {
		return
	}
	c.DNS.Set(svc)
	if c.dnsLast == nil {
		c.dnsLast = map[serviceKey]dns.Service{}
	}
	c.dnsLast[key] = svc
}

// feedDNS hands the DNS store every import that this cluster has a
// ServiceImport for, and every import kept for an unsettled cluster,
// setting only what changed, and removes the rest.
func (c *Controller) feedDNS(w *world, imports map[serviceKey]mcs.Import, ips map[serviceKey][]string) {
	if c.DNS == nil {
		return
	}
	next := make(map[serviceKey]dns.Service, len(imports)+len(w.kept.imports))
	for key, imp := range imports {
		if svc, ok := c.dnsFor(w, key, imp, ips[key]); ok {
			next[key] = svc
		}
	}
	for key, si := range w.kept.imports {
		if si.Spec.Type == mcsv1beta1.ClusterSetIP && len(si.Spec.IPs) == 0 {
			continue
		}
		next[key] = dnsService(key, si.Spec, si.Spec.IPs, sliceEndpoints(w.kept.slices[key]))
	}
	for key, svc := range next {
		c.setDNS(key, svc)
	}
	c.dnsMu.Lock()
	defer c.dnsMu.Unlock()
	for key := range c.dnsLast {
		if _, ok := next[key]; !ok {
			c.DNS.Delete(key.Namespace, key.Name)
			delete(c.dnsLast, key)
		}
	}
}

// namespaceHasImport reports whether the import's namespace exists here,
// so that it has (or will have at once) a ServiceImport.
func (c *Controller) namespaceHasImport(key serviceKey) bool { return c.present[key.Namespace] }
