package coredns

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseUpstreams(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: "", want: "[]"},
		{in: "  ", want: "[]"},
		{in: "10.0.0.11", want: "[10.0.0.11:53]"},
		{in: "10.0.0.11:5353, 10.0.0.12:5353", want: "[10.0.0.11:5353 10.0.0.12:5353]"},
		{in: "fd00::53,[fd00::54]:5353", want: "[[fd00::53]:53 [fd00::54]:5353]"},
		{in: "::ffff:10.0.0.1", want: "[10.0.0.1:53]"},
		{in: "10.0.0.11,", err: `"10.0.0.11," has an empty entry`},
		{in: "dns.example:53", err: `"dns.example:53" is not ip or ip:port`},
		{in: "10.0.0.11:99999", err: "is not ip or ip:port"},
		{in: "10.0.0.11:0", err: "port 0"},
		{in: "0.0.0.0", err: "unspecified"},
		{in: "fe80::1%eth0", err: "IPv6 zone"},
		{in: "10.0.0.11,10.0.0.11:53", err: "10.0.0.11:53 is listed twice"},
	}
	for _, tt := range tests {
		got, err := ParseUpstreams(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseUpstreams(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != tt.want {
			t.Errorf("ParseUpstreams(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func TestParseZone(t *testing.T) {
	for in, want := range map[string]string{
		"clusterset.local":   "clusterset.local",
		"ClusterSet.Local.":  "clusterset.local",
		"mesh-1.example.":    "mesh-1.example",
		"with space.local":   "error",
		"":                   "error",
		".":                  "error",
		"a..b":               "error",
		"-a.example":         "error",
		"under_score.local":  "error",
		"xn--bcher-kva.test": "xn--bcher-kva.test",
	} {
		got, err := ParseZone(in)
		if err != nil {
			got = "error"
		}
		if got != want {
			t.Errorf("ParseZone(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
