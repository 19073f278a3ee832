package services

import (
	"context"
	"net/netip"
	"reflect"

	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"

	"github.com/wirespan/wirespan/gateway/internal/dns"
	"github.com/wirespan/wirespan/internal/mcs"
)

// dnsFor is what DNS serves for one import this cluster has: a
// ClusterSetIP import by its clusterset IPs (nil while it has none), a
// headless one by its endpoints, those of the exports given and those of
// slices kept for unsettled clusters (the DNS server answers only the
// ready ones).
func dnsFor(key serviceKey, spec mcsv1beta1.ServiceImportSpec, ips []string, exports []mcs.Export, kept []*discoveryv1.EndpointSlice) *dns.Service {
	if spec.Type == mcsv1beta1.ClusterSetIP && len(ips) == 0 {
		return nil
	}
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
		svc.Endpoints = append(exportEndpoints(exports), sliceEndpoints(kept)...)
	}
	return &svc
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

// setDNS gives DNS one service (nil: none), unless it already has it as
// it is. Each import reaches DNS as soon as its reconcile wrote it.
func (c *Controller) setDNS(key serviceKey, svc *dns.Service) {
	if c.DNS == nil {
		return
	}
	c.dnsMu.Lock()
	defer c.dnsMu.Unlock()
	old, had := c.dnsLast[key]
	switch {
	case svc == nil && had:
		c.DNS.Delete(key.Namespace, key.Name)
		delete(c.dnsLast, key)
	case svc == nil:
	case had && reflect.DeepEqual(old, *svc):
	default:
		c.DNS.Set(*svc)
		if c.dnsLast == nil {
			c.dnsLast = map[serviceKey]dns.Service{}
		}
		c.dnsLast[key] = *svc
	}
}

// dnsFromImport is what DNS serves for an import as the cache has it: nil
// for one Wirespan did not write, or a ClusterSetIP import with no IP yet.
func (c *Controller) dnsFromImport(ctx context.Context, si *mcsv1beta1.ServiceImport) (*dns.Service, error) {
	if !ours(si.Labels) {
		return nil, nil
	}
	key := client.ObjectKeyFromObject(si)
	var slices []*discoveryv1.EndpointSlice
	if si.Spec.Type == mcsv1beta1.Headless {
		var err error
		if slices, err = c.importedSlices(ctx, key); err != nil {
			return nil, err
		}
	}
	return dnsFor(key, si.Spec, si.Spec.IPs, nil, slices), nil
}

// feedDNS gives DNS one import as the cache has it, on a gateway that is
// not active: the imports are the active gateway's, read, never written.
func (c *Controller) feedDNS(ctx context.Context, key serviceKey) error {
	var si mcsv1beta1.ServiceImport
	err := c.Cache.Get(ctx, key, &si)
	if apierrors.IsNotFound(err) {
		c.setDNS(key, nil)
		return nil
	}
	if err != nil {
		return err
	}
	svc, err := c.dnsFromImport(ctx, &si)
	if err != nil {
		return err
	}
	c.setDNS(key, svc)
	return nil
}

// feedsStandbyDNS says whether DNS follows the cache while not active.
func (c *Controller) feedsStandbyDNS() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.standbyDNS
}
