package services

import (
	"net/netip"
	"reflect"

	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/wirespan/wirespan/gateway/internal/dns"
	"github.com/wirespan/wirespan/internal/mcs"
)

// dnsService is what DNS serves for one import: a ClusterSetIP import by
// its clusterset IPs, a headless one by the endpoints of every exporting
// cluster (the DNS server answers only the ready ones).
func dnsService(key serviceKey, imp mcs.Import, exports []mcs.Export, ips []string) dns.Service {
	svc := dns.Service{Namespace: key.Namespace, Name: key.Name, Headless: imp.Spec.Type == mcsv1beta1.Headless}
	for _, ip := range ips {
		if a, err := netip.ParseAddr(ip); err == nil {
			svc.IPs = append(svc.IPs, a)
		}
	}
	for _, p := range imp.Spec.Ports {
		svc.Ports = append(svc.Ports, dns.Port{Name: p.Name, Protocol: string(p.Protocol), Port: uint16(p.Port)})
	}
	if svc.Headless {
		for _, e := range exports {
			for _, s := range e.Slices {
				for _, ep := range s.Endpoints {
					d := dns.Endpoint{Cluster: e.Cluster, Hostname: ep.Hostname, Ready: ep.Ready}
					for _, a := range ep.Addresses {
						if addr, err := netip.ParseAddr(a); err == nil {
							d.Addrs = append(d.Addrs, addr)
						}
					}
					svc.Endpoints = append(svc.Endpoints, d)
				}
			}
		}
	}
	return svc
}

// feedDNS hands the DNS store every import that this cluster has a
// ServiceImport for, setting only what changed since the last sync.
func (c *Controller) feedDNS(w *world, imports map[serviceKey]mcs.Import, ips map[serviceKey][]string) {
	if c.DNS == nil {
		return
	}
	next := make(map[serviceKey]dns.Service, len(imports))
	for key, imp := range imports {
		if imp.Spec.Type == mcsv1beta1.ClusterSetIP && len(ips[key]) == 0 {
			continue // no VIP yet (or namespace absent): nothing to answer
		}
		if imp.Spec.Type == mcsv1beta1.Headless && !c.namespaceHasImport(key) {
			continue
		}
		svc := dnsService(key, imp, w.exports[key], ips[key])
		next[key] = svc
		if old, ok := c.dnsLast[key]; !ok || !reflect.DeepEqual(old, svc) {
			c.DNS.Set(svc)
		}
	}
	for key := range c.dnsLast {
		if _, ok := next[key]; !ok {
			c.DNS.Delete(key.Namespace, key.Name)
		}
	}
	c.dnsLast = next
}

// namespaceHasImport reports whether the import's namespace exists here,
// so that it has (or will have at once) a ServiceImport.
func (c *Controller) namespaceHasImport(key serviceKey) bool { return c.present[key.Namespace] }
