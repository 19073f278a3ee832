package diagnose

import (
	"fmt"
	"slices"
	"strings"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/model"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/status"
)

func checkCoreDNS(in *input) []Result {
	zone := in.opts.Zone
	return in.eachSelf(func(c *model.Cluster, _ *wirespanv1alpha1.ClusterPeer, _ status.Cluster) Result {
		if bad := unreadable(c, model.ReadCorefile); bad != nil {
			return *bad
		}
		var block *serverBlock
		blocks := parseCorefile(c.Corefile)
		for i := range blocks {
			if slices.ContainsFunc(blocks[i].keys, func(k string) bool { return servesZone(k, zone) }) {
				block = &blocks[i]
			}
		}
		if block == nil {
			return Result{Status: Fail, Summary: "the Corefile has no server block for " + zone + ": pods cannot resolve clusterset names",
				Evidence: []string{fmt.Sprintf("%s: %d server blocks, none for %s", c.Context, len(blocks), zone)},
				Hint: "add the block of docs/coredns.md forwarding " + zone + " to the DNS Service's ClusterIP, " +
					"or install the chart with coredns.forward set so the operator keeps it"}
		}
		ev := []string{fmt.Sprintf("%s: Corefile line %d: %s forwards to %s", c.Context, block.line, strings.Join(block.keys, " "), strings.Join(block.upstreams, " "))}
		if len(block.upstreams) == 0 {
			return Result{Status: Fail, Summary: "the " + zone + " block forwards nowhere", Evidence: ev,
				Hint: "add `forward . <DNS Service ClusterIP>` to the block (docs/coredns.md)"}
		}
		if c.DNSService == nil {
			return Result{Status: Warn, Summary: "the block forwards, but there is no Wirespan DNS Service to compare with", Evidence: ev,
				Hint: "without the chart's DNS Service, make sure each upstream is a gateway's --dns-bind-address"}
		}
		ips := c.DNSService.Spec.ClusterIPs
		if len(ips) == 0 && c.DNSService.Spec.ClusterIP != "" {
			ips = []string{c.DNSService.Spec.ClusterIP}
		}
		for _, u := range block.upstreams {
			if slices.Contains(ips, upstreamHost(u)) {
				return Result{Status: Pass, Summary: "the " + zone + " block forwards to the DNS Service " + upstreamHost(u), Evidence: ev}
			}
		}
		return Result{Status: Warn, Summary: "the " + zone + " block forwards to addresses that are not the DNS Service's ClusterIP",
			Evidence: append(ev, fmt.Sprintf("%s: Service %s/%s has ClusterIPs %v", c.Context, c.DNSService.Namespace, c.DNSService.Name, ips)),
			Hint:     "forward to the DNS Service's ClusterIP: it follows whichever gateway serves; a gateway's own address does not"}
	})
}

func checkDNSEndpoint(in *input) []Result {
	return in.eachSelf(func(c *model.Cluster, _ *wirespanv1alpha1.ClusterPeer, _ status.Cluster) Result {
		if bad := unreadable(c, model.ReadDNS); bad != nil {
			return *bad
		}
		if c.DNSService == nil {
			return Result{Status: Fail, Summary: "Wirespan's DNS Service does not exist",
				Evidence: []string{c.Context + ": no Service " + "--dns-service in --namespace"},
				Hint:     "install the chart with dnsService.enabled (the default), or give --namespace and --dns-service"}
		}
		svc := c.DNSService.Namespace + "/" + c.DNSService.Name
		var ready, notReady []string
		for _, s := range c.DNSSlices {
			for _, e := range s.Endpoints {
				addr := strings.Join(e.Addresses, ",")
				if e.NodeName != nil {
					addr += " (node " + *e.NodeName + ")"
				}
				if e.Conditions.Ready == nil || *e.Conditions.Ready {
					ready = append(ready, addr)
				} else {
					notReady = append(notReady, addr)
				}
			}
		}
		ev := []string{fmt.Sprintf("%s: Service %s: %d EndpointSlices, ready %v, not ready %v", c.Context, svc, len(c.DNSSlices), ready, notReady)}
		if len(ready) == 0 {
			return Result{Status: Fail, Summary: "the DNS Service " + svc + " has no ready endpoint: clusterset names do not resolve", Evidence: ev,
				Hint: "a gateway writes its address there (--dns-service; the active one, or a standby when that stops answering): check a node is labeled wirespan.io/gateway=true and its gateway runs"}
		}
		return Result{Status: Pass, Summary: "the DNS Service " + svc + " points at " + strings.Join(ready, ", "), Evidence: ev}
	})
}
