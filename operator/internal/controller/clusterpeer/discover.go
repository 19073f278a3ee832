package clusterpeer

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/wirespan/wirespan/internal/cidr"
	"github.com/wirespan/wirespan/operator/internal/peerstatus"
)

// discover reads the cluster's pod ranges from Node.spec.podCIDRs and its
// Service ranges from ServiceCIDR objects, unless flags override them.
func (r *Reconciler) discover(ctx context.Context) (peerstatus.Discovery, error) {
	var d peerstatus.Discovery
	if len(r.PodCIDRs) > 0 {
		d.PodCIDRs, d.PodSource = cidr.Summarize(r.PodCIDRs), peerstatus.SourceFlag
	} else {
		var nodes corev1.NodeList
		if err := r.Client.List(ctx, &nodes); err != nil {
			return d, fmt.Errorf("list Nodes: %w", err)
		}
		var ranges []netip.Prefix
		holding := 0
		for _, n := range nodes.Items {
			ranges = append(ranges, r.parse(ctx, n.Spec.PodCIDRs, "Node", n.Name)...)
			if len(n.Spec.PodCIDRs) > 0 {
				holding++
			}
		}
		d.PodCIDRs = cidr.Summarize(ranges)
		d.PodDetail = fmt.Sprintf("%d of %d Nodes", holding, len(nodes.Items))
		if len(d.PodCIDRs) > 0 {
			d.PodSource = peerstatus.SourceCluster
		}
	}

	if len(r.ServiceCIDRs) > 0 {
		d.ServiceCIDRs, d.ServiceSource = cidr.Summarize(r.ServiceCIDRs), peerstatus.SourceFlag
		return d, nil
	}
	var scs networkingv1.ServiceCIDRList
	if err := r.Client.List(ctx, &scs); err != nil {
		return d, fmt.Errorf("list ServiceCIDRs: %w", err)
	}
	var ranges []netip.Prefix
	var names []string
	for _, sc := range scs.Items {
		// A ServiceCIDR being deleted still holds the ClusterIPs allocated
		// from it until they are gone, so it still counts.
		ranges = append(ranges, r.parse(ctx, sc.Spec.CIDRs, "ServiceCIDR", sc.Name)...)
		names = append(names, sc.Name)
	}
	d.ServiceCIDRs = cidr.Summarize(ranges)
	d.ServiceDetail = "ServiceCIDR " + strings.Join(names, ", ")
	if len(d.ServiceCIDRs) > 0 {
		d.ServiceSource = peerstatus.SourceCluster
	}
	return d, nil
}

// parse parses ranges the API server already validated; anything odd is
// logged and skipped rather than trusted.
func (r *Reconciler) parse(ctx context.Context, values []string, kind, name string) []netip.Prefix {
	var out []netip.Prefix
	for _, v := range values {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			log.FromContext(ctx).Info("ignoring a range that is not a CIDR", "kind", kind, "name", name, "value", v)
			continue
		}
		out = append(out, p.Masked())
	}
	return out
}
