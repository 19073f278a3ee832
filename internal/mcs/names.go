package mcs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	discoveryv1 "k8s.io/api/discovery/v1"
	mcsv1beta1 "sigs.k8s.io/mcs-api/pkg/apis/v1beta1"
)

// Names of the objects an importing cluster creates. Every cluster must
// compute the same names from the same import, and no name may exceed 63
// characters; the hashes keep apart names whose readable parts were cut
// to the same prefix.

// DerivedServiceName returns the name of the Service that holds the
// clusterset IP of the ClusterSetIP ServiceImport called name: "mcs-", name
// cut to 48 characters, "-", and 10 hex digits of the SHA-256 of the whole
// name. It is a DNS-1035 label of at most 63 characters, the same in every
// cluster, readable in `kubectl get services`, and never equal to name, so
// it cannot take the place of the exported Service itself, which lives in
// the same namespace.
func DerivedServiceName(name string) string {
	const prefix, hashLen = "mcs-", 10
	return prefix + labelPart(name, 63-len(prefix)-1-hashLen) + "-" + shortHash(hashLen, name)
}

// endpointSliceName names the index-th EndpointSlice of an address type
// imported from cluster for the ServiceImport called name:
// mcs-<name>-<cluster>-<hash>-v4-<index>, with name and cluster cut to 20
// characters each and the hash (8 hex digits) taken over both whole. It is
// at most 63 characters while index < 10000; a cluster has at most
// MaxEndpoints endpoints, hence fewer slices.
func endpointSliceName(name, cluster string, addressType discoveryv1.AddressType, index int) string {
	family := strings.ToLower(string(addressType))
	switch addressType {
	case discoveryv1.AddressTypeIPv4:
		family = "v4"
	case discoveryv1.AddressTypeIPv6:
		family = "v6"
	}
	return fmt.Sprintf("mcs-%s-%s-%s-%s-%d", labelPart(name, 20), labelPart(cluster, 20),
		shortHash(8, name, cluster), family, index)
}

// portNames returns the port names of the derived Service and of the
// imported EndpointSlices, one per port of the import. A Service with
// several ports must name each of them, and kube-proxy pairs a Service
// port with the endpoint port of the same name; a ServiceImport has no
// such rule. So with several ports, an unnamed one (there is at most one:
// names are unique) is called <protocol>-<port>, e.g. "tcp-80", with a
// "-1", "-2"... suffix should that name be taken. A single port keeps its
// name, empty or not.
func portNames(ports []mcsv1beta1.ServicePort) []string {
	names := make([]string, len(ports))
	taken := map[string]bool{}
	for i, p := range ports {
		names[i] = p.Name
		taken[p.Name] = true
	}
	if len(ports) < 2 {
		return names
	}
	for i, p := range ports {
		if p.Name != "" {
			continue
		}
		base := fmt.Sprintf("%s-%d", strings.ToLower(string(p.Protocol)), p.Port)
		n := base
		for k := 1; taken[n]; k++ {
			n = fmt.Sprintf("%s-%d", base, k)
		}
		names[i] = n
		taken[n] = true
	}
	return names
}

// labelPart makes s fit in a DNS label: lower case, any other character
// than a letter, digit or '-' replaced by '-', cut to at most max
// characters, without leading or trailing '-'.
func labelPart(s string, maxLen int) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			b[i] = '-'
		}
	}
	if len(b) > maxLen {
		b = b[:maxLen]
	}
	return strings.Trim(string(b), "-")
}

// shortHash returns the first n hex digits of the SHA-256 of parts, each
// ended by a NUL so that ("ab", "c") and ("a", "bc") differ.
func shortHash(n int, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:n]
}
