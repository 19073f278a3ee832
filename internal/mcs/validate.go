package mcs

import (
	"cmp"
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
)

// RecordError says why an export record from another cluster is refused:
// Reason is a short word for metrics, the error says what is wrong.
type RecordError struct {
	Reason string
	Err    error
}

func (e *RecordError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *RecordError) Unwrap() error { return e.Err }

// Reasons of RecordError.
const (
	RefusedName      = "name"
	RefusedType      = "type"
	RefusedPorts     = "ports"
	RefusedEndpoints = "endpoints"
	RefusedMetadata  = "metadata"
)

// ValidateImported checks an export record that another cluster sent, as
// this cluster's own FromService would have made it, before it is merged
// into anything: a record the API server would refuse (a bad name, over
// MaxPorts ports or MaxEndpoints endpoints, a malformed address) must fail
// alone, at once, not every write of its import forever. cluster and
// service are who sent it and under which key.
func ValidateImported(e *Export, cluster string, service string) error {
	refuse := func(reason, format string, args ...any) error {
		return &RecordError{Reason: reason, Err: fmt.Errorf(format, args...)}
	}
	if key := e.Service.Namespace + "/" + e.Service.Name; e.Cluster != cluster || key != service {
		return refuse(RefusedName, "the record names %s %s, it came as %s %s", e.Cluster, key, cluster, service)
	}
	for _, n := range []string{e.Service.Namespace, e.Service.Name} {
		if errs := validation.IsDNS1123Label(n); len(errs) > 0 {
			return refuse(RefusedName, "%q: %s", n, strings.Join(errs, "; "))
		}
	}
	if e.Type != mcsv1beta1.ClusterSetIP && e.Type != mcsv1beta1.Headless {
		return refuse(RefusedType, "type %q", e.Type)
	}
	if err := validatePorts(e.Ports); err != nil {
		return refuse(RefusedPorts, "%w", err)
	}
	if err := validateEndpoints(e.Slices); err != nil {
		return refuse(RefusedEndpoints, "%w", err)
	}
	for _, f := range e.IPFamilies {
		if f != corev1.IPv4Protocol && f != corev1.IPv6Protocol {
			return refuse(RefusedMetadata, "IP family %q", f)
		}
	}
	if a := e.SessionAffinity; a != "" && a != corev1.ServiceAffinityNone && a != corev1.ServiceAffinityClientIP {
		return refuse(RefusedMetadata, "session affinity %q", a)
	}
	path := field.NewPath("record")
	if errs := metav1validation.ValidateLabels(e.Labels, path.Child("labels")); len(errs) > 0 {
		return refuse(RefusedMetadata, "%w", errs.ToAggregate())
	}
	if errs := apivalidation.ValidateAnnotations(e.Annotations, path.Child("annotations")); len(errs) > 0 {
		return refuse(RefusedMetadata, "%w", errs.ToAggregate())
	}
	return nil
}

// validatePorts checks ports as the API server checks a Service's: at most
// MaxPorts, valid numbers and protocols, names unique (and required when
// there are several), protocol and port unique.
func validatePorts(ports []mcsv1beta1.ServicePort) error {
	if len(ports) > MaxPorts {
		return fmt.Errorf("%d ports, at most %d", len(ports), MaxPorts)
	}
	names := map[string]bool{}
	protoPorts := map[string]bool{}
	for _, p := range ports {
		switch {
		case p.Port < 1 || p.Port > 65535:
			return fmt.Errorf("port %d", p.Port)
		case p.Protocol != "" && p.Protocol != corev1.ProtocolTCP && p.Protocol != corev1.ProtocolUDP && p.Protocol != corev1.ProtocolSCTP:
			return fmt.Errorf("port %d: protocol %q", p.Port, p.Protocol)
		case p.Name == "" && len(ports) > 1:
			return fmt.Errorf("port %d has no name, with %d ports", p.Port, len(ports))
		case names[p.Name]:
			return fmt.Errorf("port name %q twice", p.Name)
		}
		if p.Name != "" {
			if errs := validation.IsValidPortName(p.Name); len(errs) > 0 {
				return fmt.Errorf("port name %q: %s", p.Name, strings.Join(errs, "; "))
			}
		}
		// An unset protocol is TCP, as FromService and the merge read it.
		pp := fmt.Sprintf("%d/%s", p.Port, cmp.Or(p.Protocol, corev1.ProtocolTCP))
		if protoPorts[pp] {
			return fmt.Errorf("port %s twice", pp)
		}
		names[p.Name], protoPorts[pp] = true, true
	}
	return nil
}

// validateEndpoints checks the endpoints: at most MaxEndpoints in all,
// each address an IP of its slice's family, hostnames DNS labels.
func validateEndpoints(slices []Slice) error {
	n := 0
	for _, s := range slices {
		if s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6 {
			return fmt.Errorf("address type %q", s.AddressType)
		}
		if len(s.Ports) > MaxPorts {
			return fmt.Errorf("%d endpoint ports, at most %d", len(s.Ports), MaxPorts)
		}
		for _, ep := range s.Endpoints {
			n++
			if n > MaxEndpoints {
				return fmt.Errorf("more than %d endpoints", MaxEndpoints)
			}
			if len(ep.Addresses) == 0 || len(ep.Addresses) > 100 {
				return fmt.Errorf("an endpoint with %d addresses", len(ep.Addresses))
			}
			for _, a := range ep.Addresses {
				ip, err := netip.ParseAddr(a)
				if err != nil || ip.Zone() != "" || ip.Is4() != (s.AddressType == discoveryv1.AddressTypeIPv4) {
					return fmt.Errorf("address %q in a slice of %s", a, s.AddressType)
				}
				// What the API server refuses in an EndpointSlice, and what
				// no endpoint of another cluster can be.
				if ip.IsUnspecified() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsMulticast() {
					return fmt.Errorf("address %s: unspecified, loopback, link-local or multicast", a)
				}
			}
			if ep.Hostname != "" {
				if errs := validation.IsDNS1123Label(ep.Hostname); len(errs) > 0 {
					return fmt.Errorf("hostname %q: %s", ep.Hostname, strings.Join(errs, "; "))
				}
			}
		}
	}
	return nil
}
