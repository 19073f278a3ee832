package app

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
)

// DNSEndpointManagedBy is the endpointslice.kubernetes.io/managed-by value
// of the DNS Service's EndpointSlice: the EndpointSlice controller leaves
// slices of other managers alone.
const DNSEndpointManagedBy = "gateway.wirespan.io"

// dnsRecheck is how often the active gateway reads its DNS EndpointSlice
// back, so that one deleted or edited by hand is repaired.
const dnsRecheck = time.Minute

// dnsEndpoint points a selector-less Service (--dns-service) at the
// clusterset DNS server of the active gateway. Readiness cannot do it: node
// agents and standby gateways run the same pod and are ready too, but only
// the active gateway listens on the DNS port. So the active gateway writes
// its own address into the Service's one EndpointSlice, and a gateway that
// stops being active removes it if it still names its node. kube-proxy
// then sends the Service's ClusterIP to whichever gateway serves.
type dnsEndpoint struct {
	service types.NamespacedName
	// reader reads the Service and the slice directly: they are read once
	// a minute, not worth a cache of every Service and slice.
	reader client.Reader
	writer client.Client
	log    logr.Logger

	// published is the address last written (invalid: none); checked is
	// when the slice was last found as wanted.
	published netip.AddrPort
	checked   time.Time
	// cleared: since this process started, the slice has been checked for
	// an entry of this node left by an earlier, active, run.
	cleared bool
	// missingLogged: the Service's absence has been logged.
	missingLogged bool
}

// sliceName is the name of the Service's EndpointSlice.
func (d *dnsEndpoint) sliceName() string { return d.service.Name + "-active" }

// publish makes the slice name node at addr, unless it did less than
// dnsRecheck ago. A missing Service is logged once and is no error: the
// DNS server works without it.
func (d *dnsEndpoint) publish(ctx context.Context, node string, addr netip.AddrPort, now time.Time) error {
	if d.service.Name == "" || (d.published == addr && now.Sub(d.checked) < dnsRecheck) {
		return nil
	}
	wrote, err := d.write(ctx, node, addr, now, nil)
	if wrote {
		d.log.Info("published the clusterset DNS server in the DNS Service", "service", d.service.String(), "address", addr.String())
	}
	return err
}

// forget makes the next publish write the slice: another gateway wrote
// it since this one last did.
func (d *dnsEndpoint) forget() { d.published = netip.AddrPort{} }

// takeOver makes the slice name node at addr instead of from, a DNS
// server that stopped answering. It writes nothing, and returns false,
// when the slice names another server by now or does not exist (the
// active gateway creates it): of several gateways that saw the same
// silence, one replaces it.
func (d *dnsEndpoint) takeOver(ctx context.Context, node string, addr, from netip.AddrPort, now time.Time) (bool, error) {
	if d.service.Name == "" {
		return false, nil
	}
	return d.write(ctx, node, addr, now, func(have *discoveryv1.EndpointSlice) bool {
		return have != nil && namedAddr(have) == from
	})
}

// write makes the slice name node at addr and says whether it wrote.
// only, if set, says whether the slice as read (nil: none) may be
// replaced; then a write that races another is not an error either.
func (d *dnsEndpoint) write(ctx context.Context, node string, addr netip.AddrPort, now time.Time, only func(*discoveryv1.EndpointSlice) bool) (bool, error) {
	var svc corev1.Service
	if err := d.reader.Get(ctx, d.service, &svc); err != nil {
		if apierrors.IsNotFound(err) {
			if !d.missingLogged {
				d.log.Info("The DNS Service does not exist: nothing to publish the clusterset DNS server in", "service", d.service.String())
				d.missingLogged = true
			}
			return false, nil
		}
		return false, fmt.Errorf("read DNS Service %s: %w", d.service, err)
	}
	d.missingLogged = false
	want := dnsSlice(&svc, d.sliceName(), node, addr)
	var have discoveryv1.EndpointSlice
	err := d.reader.Get(ctx, client.ObjectKeyFromObject(want), &have)
	wrote := false
	switch {
	case apierrors.IsNotFound(err):
		if only != nil && !only(nil) {
			return false, nil
		}
		if err := d.writer.Create(ctx, want); err != nil {
			return false, fmt.Errorf("create EndpointSlice %s/%s: %w", want.Namespace, want.Name, err)
		}
		wrote = true
	case err != nil:
		return false, fmt.Errorf("read EndpointSlice %s/%s: %w", want.Namespace, want.Name, err)
	case !sameSlice(&have, want):
		if only != nil && !only(&have) {
			return false, nil
		}
		updated := have.DeepCopy()
		updated.Labels, updated.OwnerReferences = want.Labels, want.OwnerReferences
		updated.AddressType, updated.Endpoints, updated.Ports = want.AddressType, want.Endpoints, want.Ports
		err := d.writer.Update(ctx, updated)
		switch {
		case only != nil && (apierrors.IsConflict(err) || apierrors.IsNotFound(err)):
			return false, nil // another gateway was quicker
		case apierrors.IsNotFound(err):
			// The gateway that was active withdrew it between our read and
			// our write (it restarted as a standby): create it, rather than
			// leave DNS without an endpoint until the next sync.
			err = d.writer.Create(ctx, want)
		}
		if err != nil {
			return false, fmt.Errorf("update EndpointSlice %s/%s: %w", want.Namespace, want.Name, err)
		}
		wrote = true
	}
	d.published, d.checked, d.cleared = addr, now, false
	return wrote, nil
}

// named is the node and DNS server address the slice names, as r reads
// it; no address when there is no slice or it names none.
func (d *dnsEndpoint) named(ctx context.Context, r client.Reader) (string, netip.AddrPort, error) {
	if d.service.Name == "" {
		return "", netip.AddrPort{}, nil
	}
	var have discoveryv1.EndpointSlice
	err := r.Get(ctx, types.NamespacedName{Namespace: d.service.Namespace, Name: d.sliceName()}, &have)
	if apierrors.IsNotFound(err) {
		return "", netip.AddrPort{}, nil
	}
	if err != nil {
		return "", netip.AddrPort{}, err
	}
	node := ""
	if len(have.Endpoints) > 0 && have.Endpoints[0].NodeName != nil {
		node = *have.Endpoints[0].NodeName
	}
	return node, namedAddr(&have), nil
}

// namedAddr is the address and port of the slice's first endpoint.
func namedAddr(s *discoveryv1.EndpointSlice) netip.AddrPort {
	if len(s.Endpoints) == 0 || len(s.Endpoints[0].Addresses) == 0 || len(s.Ports) == 0 || s.Ports[0].Port == nil {
		return netip.AddrPort{}
	}
	a, err := netip.ParseAddr(s.Endpoints[0].Addresses[0])
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a, uint16(*s.Ports[0].Port))
}

// withdraw removes the slice if it names node: after this process
// published it, and once after start (an earlier run may have been
// active).
func (d *dnsEndpoint) withdraw(ctx context.Context, node string) error {
	if d.service.Name == "" || (d.cleared && !d.published.IsValid()) {
		return nil
	}
	var have discoveryv1.EndpointSlice
	err := d.reader.Get(ctx, types.NamespacedName{Namespace: d.service.Namespace, Name: d.sliceName()}, &have)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("read EndpointSlice %s/%s: %w", d.service.Namespace, d.sliceName(), err)
	case names(&have, node):
		// Only the version read: a gateway that became active since then
		// has written its own address, which stays.
		err := d.writer.Delete(ctx, &have, client.Preconditions{UID: &have.UID, ResourceVersion: &have.ResourceVersion})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("delete EndpointSlice %s/%s: %w", have.Namespace, have.Name, err)
		}
		d.log.Info("withdrew the clusterset DNS server from the DNS Service", "service", d.service.String())
	}
	d.published, d.cleared = netip.AddrPort{}, true
	return nil
}

// dnsSlice is the EndpointSlice that sends svc's UDP and TCP ports to
// addr's port on node. Its ports take the Service's port names, which is
// how kube-proxy matches them.
func dnsSlice(svc *corev1.Service, name, node string, addr netip.AddrPort) *discoveryv1.EndpointSlice {
	addressType := discoveryv1.AddressTypeIPv4
	if addr.Addr().Is6() {
		addressType = discoveryv1.AddressTypeIPv6
	}
	var ports []discoveryv1.EndpointPort
	for _, p := range svc.Spec.Ports {
		if p.Protocol != corev1.ProtocolUDP && p.Protocol != corev1.ProtocolTCP {
			continue
		}
		ports = append(ports, discoveryv1.EndpointPort{
			Name: ptr.To(p.Name), Protocol: ptr.To(p.Protocol), Port: ptr.To(int32(addr.Port())),
		})
	}
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: svc.Namespace,
			Labels: map[string]string{
				discoveryv1.LabelServiceName:    svc.Name,
				discoveryv1.LabelManagedBy:      DNSEndpointManagedBy,
				wirespanv1alpha1.LabelManagedBy: wirespanv1alpha1.ManagedByValue,
			},
			// The garbage collector removes the slice with the Service
			// (helm uninstall). Not a controller reference: the Service
			// has no controller that owns slices.
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: svc.Name, UID: svc.UID}},
		},
		AddressType: addressType,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{addr.Addr().String()},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
			NodeName:   ptr.To(node),
		}},
		Ports: ports,
	}
}

func sameSlice(have, want *discoveryv1.EndpointSlice) bool {
	for k, v := range want.Labels {
		if have.Labels[k] != v {
			return false
		}
	}
	return have.AddressType == want.AddressType &&
		equality.Semantic.DeepEqual(have.OwnerReferences, want.OwnerReferences) &&
		equality.Semantic.DeepEqual(have.Endpoints, want.Endpoints) &&
		equality.Semantic.DeepEqual(have.Ports, want.Ports)
}

// names reports whether the slice points at node.
func names(s *discoveryv1.EndpointSlice, node string) bool {
	for _, e := range s.Endpoints {
		if e.NodeName != nil && *e.NodeName == node {
			return true
		}
	}
	return false
}
