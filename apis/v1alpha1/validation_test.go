package v1alpha1_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/wirespan/wirespan/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.Options{}, func(e *testenv.Env) error { env = e; return nil }))
}

const goodKey = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="

func manifest(name, spec string) string {
	return fmt.Sprintf("apiVersion: wirespan.io/v1alpha1\nkind: ClusterPeer\nmetadata:\n  name: \"%s\"\nspec:\n%s\n", name, spec)
}

func indent(lines ...string) string {
	return "  " + strings.Join(lines, "\n  ")
}

func repeat(format string, n int) string {
	var items []string
	for i := range n {
		items = append(items, fmt.Sprintf(format, i))
	}
	return "[" + strings.Join(items, ", ") + "]"
}

// TestAdmission applies manifests with kubectl, as a user or a GitOps tool
// would, and checks that bad ones are refused with a message that names the
// field and says what is wrong, and good ones are accepted.
func TestAdmission(t *testing.T) {
	bad := []struct {
		name, manifest string
		want           []string // all must appear in kubectl's error
	}{
		{"key too short", manifest("k1", indent("publicKey: xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8D=")),
			[]string{"spec.publicKey", "must be a WireGuard public key"}},
		{"key too long", manifest("k2", indent("publicKey: xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg==")),
			[]string{"spec.publicKey", "44"}},
		{"key not base64", manifest("k3", indent("publicKey: 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8D!='")),
			[]string{"spec.publicKey", "must be a WireGuard public key"}},
		{"key not canonical base64", manifest("k4", indent("publicKey: xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dh=")),
			[]string{"spec.publicKey", "not a canonical base64 encoding of 32 bytes"}},
		{"endpoint without port", manifest("e1", indent("endpoints: [gw.example.com]")),
			[]string{"spec.endpoints[0]", "must be host:port"}},
		{"endpoint port 0", manifest("e2", indent("endpoints: ['192.0.2.1:0']")),
			[]string{"spec.endpoints[0]", "port must be a number from 1 to 65535"}},
		{"endpoint port 65536", manifest("e3", indent("endpoints: ['192.0.2.1:65536']")),
			[]string{"spec.endpoints[0]", "port must be a number from 1 to 65535"}},
		{"endpoint port huge", manifest("e4", indent("endpoints: ['gw.example.com:99999999999']")),
			[]string{"spec.endpoints[0]", "port must be a number from 1 to 65535"}},
		{"endpoint IPv6 without brackets", manifest("e5", indent("endpoints: ['2001:db8::1:51820']")),
			[]string{"spec.endpoints[0]", "IPv6 addresses go in brackets"}},
		{"endpoint IPv4 in brackets", manifest("e6", indent("endpoints: ['[192.0.2.1]:51820']")),
			[]string{"spec.endpoints[0]", "the address in brackets must be an IPv6 address"}},
		{"endpoint bad host name", manifest("e7", indent("endpoints: ['gw_1.example.com:51820']")),
			[]string{"spec.endpoints[0]", "host must be a DNS name"}},
		{"endpoint second of two bad", manifest("e8", indent("endpoints: ['gw.example.com:51820', '-gw.example.com:51820']")),
			[]string{"spec.endpoints[1]", "host must be a DNS name"}},
		{"endpoint duplicate", manifest("e9", indent("endpoints: ['gw.example.com:51820', 'gw.example.com:51820']")),
			[]string{"spec.endpoints[1]", "Duplicate value"}},
		{"too many endpoints", manifest("e10", indent("endpoints: "+repeat("'gw%d.example.com:51820'", 17))),
			[]string{"spec.endpoints", "must have at most 16 items"}},
		{"endpoint too long", manifest("e11", indent("endpoints: ['"+strings.Repeat("a", 300)+":51820']")),
			[]string{"spec.endpoints[0]", "may not be more than 262 bytes"}},
		{"CIDR with host bits", manifest("c1", indent("allowedCIDRs: [10.8.0.1/16]")),
			[]string{"spec.allowedCIDRs[0]", "must have no host bits set"}},
		{"IPv4 CIDR /33", manifest("c2", indent("allowedCIDRs: [10.8.0.0/33]")),
			[]string{"spec.allowedCIDRs[0]", "must be a CIDR", "IPv4 prefix length at most 32"}},
		{"CIDR without length", manifest("c3", indent("allowedCIDRs: [10.8.0.0]")),
			[]string{"spec.allowedCIDRs[0]", "must be a CIDR"}},
		{"IPv6 CIDR not canonical", manifest("c4", indent("allowedCIDRs: ['FD00:10:8:0::/48']")),
			[]string{"spec.allowedCIDRs[0]", "canonical form"}},
		{"IPv6 CIDR with host bits", manifest("c5", indent("allowedCIDRs: ['fd00::1/64']")),
			[]string{"spec.allowedCIDRs[0]", "must have no host bits set"}},
		{"duplicate CIDRs", manifest("c6", indent("allowedCIDRs: [10.8.0.0/16, 10.9.0.0/16, 10.8.0.0/16]")),
			[]string{"spec.allowedCIDRs[2]", "Duplicate value"}},
		{"too many CIDRs", manifest("c7", indent("allowedCIDRs: "+repeat("10.%d.0.0/16", 33))),
			[]string{"spec.allowedCIDRs", "must have at most 32 items"}},
		{"export namespace with capitals", manifest("n1", indent("exportNamespaces: [shop, Payments]")),
			[]string{"spec.exportNamespaces[1]", "must be a namespace name"}},
		{"export namespace too long", manifest("n2", indent("exportNamespaces: ["+strings.Repeat("a", 64)+"]")),
			[]string{"spec.exportNamespaces[0]", "63"}},
		{"duplicate export namespaces", manifest("n3", indent("exportNamespaces: [shop, shop]")),
			[]string{"spec.exportNamespaces[1]", "Duplicate value"}},
		{"name is not a DNS label", manifest("east.example.com", indent("publicKey: "+goodKey)),
			[]string{"metadata.name is the cluster ID and must be an RFC 1123 label"}},
		{"name too long for a label", manifest(strings.Repeat("a", 64), indent("publicKey: "+goodKey)),
			[]string{"RFC 1123 label", "at most 63"}},
		{"unknown field", manifest("u1", indent("publicKeys: "+goodKey)),
			[]string{`unknown field "spec.publicKeys"`}},
		{"no spec", "apiVersion: wirespan.io/v1alpha1\nkind: ClusterPeer\nmetadata:\n  name: nospec\n",
			[]string{"spec", "Required value"}},
	}
	for _, tt := range bad {
		t.Run("refuse "+tt.name, func(t *testing.T) {
			out, err := env.Kubectl(tt.manifest, "apply", "-f", "-")
			if err == nil {
				t.Fatalf("kubectl apply accepted it:\n%s\n%s", tt.manifest, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("kubectl's error lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "panic") || strings.Contains(out, "Internal error") {
				t.Errorf("validation broke rather than refused:\n%s", out)
			}
			t.Logf("%s", strings.TrimSpace(out))
		})
	}

	good := []struct{ name, manifest string }{
		{"minimal", manifest("minimal", "  {}")},
		{"full", manifest("full", indent("publicKey: "+goodKey,
			"endpoints: ['gw.east.example.com:51820', '192.0.2.10:51820', '[2001:db8::10]:51820', 'GW-2.Example.COM:1', 'gw:65535']",
			"allowedCIDRs: [10.8.0.0/16, 0.0.0.0/0, 'fd00:10:8::/48', '::/0', 192.0.2.7/32]",
			"exportNamespaces: [shop, payments-v2, '0']"))},
		{"longest name", manifest(strings.Repeat("a", 62)+"z", indent("endpoints: []"))},
		{"digits-only name", manifest("123", "  {}")},
		{"16 endpoints and 32 CIDRs", manifest("lists", indent("endpoints: "+repeat("'gw%d.example.com:51820'", 16),
			"allowedCIDRs: "+repeat("10.%d.0.0/16", 32)))},
	}
	for _, tt := range good {
		t.Run("accept "+tt.name, func(t *testing.T) {
			if out, err := env.Kubectl(tt.manifest, "apply", "-f", "-"); err != nil {
				t.Fatalf("kubectl apply refused a good manifest:\n%s\n%s", tt.manifest, out)
			}
			// Applying again from Git is a no-op, not an error.
			if out, err := env.Kubectl(tt.manifest, "apply", "-f", "-"); err != nil || !strings.Contains(out, "unchanged") {
				t.Fatalf("second apply: %v\n%s", err, out)
			}
		})
	}
}
