package gossip

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Limits of one message. A message within them always fits MaxMessageSize:
// 2 × 256 × 18 bytes of prefixes + 32 KiB of exports + 64 × 96 bytes of MACs
// is about 47 KiB.
const (
	// MaxMessageSize bounds an encoded message, MACs included.
	MaxMessageSize = 64 << 10
	// MaxCIDRs bounds each of PodCIDRs and ServiceCIDRs.
	MaxCIDRs = 256
	// MaxPeers bounds the MACs of a message, hence the remote clusters a
	// cluster can talk to.
	MaxPeers = 64
	// MaxExportsSize bounds ClusterState.Exports.
	MaxExportsSize = 32 << 10
)

// ClusterState is what one cluster tells the others about itself.
type ClusterState struct {
	// Cluster is the cluster ID, an RFC 1123 label.
	Cluster string
	// Version increases strictly with every change of the cluster's state; a
	// newer version replaces an older one. Gossip assigns it (SetLocal).
	Version uint64
	// PodCIDRs and ServiceCIDRs are the cluster's ranges, masked prefixes.
	PodCIDRs     []netip.Prefix
	ServiceCIDRs []netip.Prefix
	// ActiveGateway is the node name of the cluster's active gateway.
	ActiveGateway string
	// Exports is opaque JSON reserved for the Multi-Cluster Services work;
	// empty or valid JSON of at most MaxExportsSize bytes.
	Exports json.RawMessage
}

// validate checks s against the limits and syntax of the wire format. Errors
// wrap ErrMalformed or ErrTooLarge.
func (s *ClusterState) validate() error {
	if err := validateCluster(s.Cluster); err != nil {
		return err
	}
	if s.Version == 0 {
		return fmt.Errorf("%w: version 0", ErrMalformed)
	}
	if err := validateNode(s.ActiveGateway); err != nil {
		return fmt.Errorf("active gateway: %w", err)
	}
	if err := validatePrefixes(s.PodCIDRs); err != nil {
		return fmt.Errorf("pod CIDRs: %w", err)
	}
	if err := validatePrefixes(s.ServiceCIDRs); err != nil {
		return fmt.Errorf("service CIDRs: %w", err)
	}
	if len(s.Exports) > MaxExportsSize {
		return fmt.Errorf("%w: exports are %d bytes, limit %d", ErrTooLarge, len(s.Exports), MaxExportsSize)
	}
	if len(s.Exports) > 0 && !json.Valid(s.Exports) {
		return fmt.Errorf("%w: exports are not valid JSON", ErrMalformed)
	}
	return nil
}

func validateCluster(id string) error {
	if errs := validation.IsDNS1123Label(id); len(errs) > 0 {
		return fmt.Errorf("%w: cluster ID %q: %s", ErrMalformed, id, strings.Join(errs, "; "))
	}
	return nil
}

func validateNode(name string) error {
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return fmt.Errorf("%w: node name %q: %s", ErrMalformed, name, strings.Join(errs, "; "))
	}
	return nil
}

func validatePrefixes(ps []netip.Prefix) error {
	if len(ps) > MaxCIDRs {
		return fmt.Errorf("%w: %d prefixes, limit %d", ErrTooLarge, len(ps), MaxCIDRs)
	}
	for _, p := range ps {
		if err := validatePrefix(p); err != nil {
			return err
		}
	}
	return nil
}

// validatePrefix accepts only the canonical form of a prefix: valid, masked,
// no zone, and an IPv4 range written as IPv4 (not IPv4-mapped IPv6), so that
// one range has exactly one encoding.
func validatePrefix(p netip.Prefix) error {
	switch {
	case !p.IsValid():
		return fmt.Errorf("%w: invalid prefix %v", ErrMalformed, p)
	case p.Addr().Is4In6():
		return fmt.Errorf("%w: IPv4-mapped prefix %v", ErrMalformed, p)
	case p.Masked() != p:
		return fmt.Errorf("%w: prefix %v is not masked", ErrMalformed, p)
	}
	return nil
}

// clone returns a deep copy of s, so that callers never share slices with
// the state Gossip holds.
func (s ClusterState) clone() ClusterState {
	s.PodCIDRs = slices.Clone(s.PodCIDRs)
	s.ServiceCIDRs = slices.Clone(s.ServiceCIDRs)
	s.Exports = bytes.Clone(s.Exports)
	return s
}

// sameContent reports whether a and b say the same thing, ignoring Version;
// nil and empty lists are the same.
func sameContent(a, b ClusterState) bool {
	return a.Cluster == b.Cluster &&
		a.ActiveGateway == b.ActiveGateway &&
		slices.Equal(a.PodCIDRs, b.PodCIDRs) &&
		slices.Equal(a.ServiceCIDRs, b.ServiceCIDRs) &&
		bytes.Equal(a.Exports, b.Exports)
}

// cloneStates deep-copies a map of states.
func cloneStates(in map[string]ClusterState) map[string]ClusterState {
	out := make(map[string]ClusterState, len(in))
	for k, v := range in {
		out[k] = v.clone()
	}
	return out
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
