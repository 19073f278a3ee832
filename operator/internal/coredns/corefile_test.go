package coredns

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/wirespan/wirespan/operator/internal/coredns/corefiletest"
)

// kubeadm is the Corefile kubeadm installs.
const kubeadm = corefiletest.Kubeadm

// k3s is the head of k3s's Corefile: a top-level import of custom server
// blocks, and a root key without a port.
const k3s = `. {
    errors
    forward . /etc/resolv.conf
    reload
}
import /etc/coredns/custom/*.server
`

// want writes the block Ensure should produce, independently of render.
func want(zone, key string, upstreams ...string) string {
	return "# wirespan: begin " + zone + " (managed by wirespan-operator --coredns-forward)\n" +
		key + " {\n" +
		"    errors\n" +
		"    cache 5\n" +
		"    forward . " + strings.Join(upstreams, " ") + " {\n" +
		"        policy sequential\n" +
		"    }\n" +
		"}\n" +
		"# wirespan: end\n"
}

var (
	gw1 = netip.MustParseAddrPort("10.0.0.11:5353")
	gw2 = netip.MustParseAddrPort("10.0.0.12:5353")
	v6  = netip.MustParseAddrPort("[fd00::53]:53")
)

func TestEnsure(t *testing.T) {
	ours := want("clusterset.local", "clusterset.local:53", "10.0.0.11:5353", "10.0.0.12:5353")
	tests := []struct {
		name      string
		in        string
		zone      string // default clusterset.local
		upstreams []netip.AddrPort
		want      string
		unchanged bool
		err       string
	}{
		{name: "empty Corefile", in: "", want: ours},
		{name: "kubeadm", in: kubeadm, want: kubeadm + "\n" + ours},
		{name: "already present", in: kubeadm + "\n" + ours, want: kubeadm + "\n" + ours, unchanged: true},
		{
			name: "upstreams changed", in: kubeadm + "\n" + ours, upstreams: []netip.AddrPort{gw2, v6},
			want: kubeadm + "\n" + want("clusterset.local", "clusterset.local:53", "10.0.0.12:5353", "[fd00::53]:53"),
		},
		{
			name: "zone changed", in: kubeadm + "\n" + ours, zone: "Mesh.Example.",
			want: kubeadm + "\n" + want("mesh.example", "mesh.example:53", "10.0.0.11:5353", "10.0.0.12:5353"),
		},
		{
			name: "moved by hand: replaced where it is",
			in:   "# top\n" + ours + "\n" + kubeadm,
			want: "# top\n" + ours + "\n" + kubeadm, unchanged: true,
		},
		{
			name: "moved by hand and stale",
			in:   "# top\n" + want("clusterset.local", "clusterset.local:53", "10.9.9.9:53") + "\n" + kubeadm,
			want: "# top\n" + ours + "\n" + kubeadm,
		},
		{
			name: "pasted twice: one stays",
			in:   kubeadm + "\n" + ours + "\n" + ours,
			want: kubeadm + "\n" + ours,
		},
		{
			name: "indented markers count",
			in:   kubeadm + "\n  # wirespan: begin clusterset.local\nstale\n\t# wirespan: end  \n",
			want: kubeadm + "\n" + ours,
		},
		{name: "root zone on another port", in: ".:1053 {\n    whoami\n}\n", want: ".:1053 {\n    whoami\n}\n\n" + want("clusterset.local", "clusterset.local:1053", "10.0.0.11:5353", "10.0.0.12:5353")},
		{name: "root zone without port, and a top-level import", in: k3s, want: k3s + "\n" + want("clusterset.local", "clusterset.local", "10.0.0.11:5353", "10.0.0.12:5353")},
		{name: "no root zone: port 53", in: "example.org {\n    whoami\n}\n", want: "example.org {\n    whoami\n}\n\n" + ours},
		{name: "no final newline", in: strings.TrimSuffix(kubeadm, "\n"), want: kubeadm + "\n" + ours},
		{
			name: "Windows line endings",
			in:   strings.ReplaceAll(kubeadm, "\n", "\r\n"),
			want: strings.ReplaceAll(kubeadm+"\n"+ours, "\n", "\r\n"),
		},
		{
			name: "same zone on another port is another server",
			in:   kubeadm + "clusterset.local:5353 {\n    whoami\n}\n",
			want: kubeadm + "clusterset.local:5353 {\n    whoami\n}\n\n" + ours,
		},
		{
			name: "same zone over TLS is another server",
			in:   kubeadm + "tls://clusterset.local {\n    whoami\n}\n",
			want: kubeadm + "tls://clusterset.local {\n    whoami\n}\n\n" + ours,
		},
		{
			name: "zone in comments, quotes and directives is no server",
			in: kubeadm + "# clusterset.local:53 {\nexample.org {\n    template IN A {\n        answer \"{{ .Name }} 60 IN A 10.1.1.1\"\n    }\n" +
				"    rewrite name clusterset.local:53 x # clusterset.local:53 {\n}\n",
			want: kubeadm + "# clusterset.local:53 {\nexample.org {\n    template IN A {\n        answer \"{{ .Name }} 60 IN A 10.1.1.1\"\n    }\n" +
				"    rewrite name clusterset.local:53 x # clusterset.local:53 {\n}\n\n" + ours,
		},
		{
			name: "user-written block for the zone",
			in:   kubeadm + "clusterset.local:53 {\n    forward . 10.1.1.1\n}\n",
			err:  `the Corefile already has a server block for clusterset.local (line 24: "clusterset.local:53") outside Wirespan's markers`,
		},
		{
			name: "user-written block: no port, other case, trailing dot, scheme",
			in:   kubeadm + "dns://ClusterSet.Local. {\n    forward . 10.1.1.1\n}\n",
			err:  `already has a server block for clusterset.local (line 24: "dns://ClusterSet.Local.")`,
		},
		{
			name: "user-written block: one of several keys",
			in:   kubeadm + "example.org,\n  clusterset.local:53 {\n    forward . 10.1.1.1\n}\n",
			err:  `(line 25: "clusterset.local:53")`,
		},
		{
			name: "user-written block next to ours",
			in:   kubeadm + "\n" + ours + "clusterset.local {\n}\n",
			err:  "already has a server block for clusterset.local",
		},
		{
			name: "markers moved into another block",
			in:   ".:53 {\n    errors\n    " + strings.ReplaceAll(ours, "\n", "\n    ") + "}\n",
			err:  "the Corefile has Wirespan's markers inside another block",
		},
		{name: "begin without end", in: kubeadm + "# wirespan: begin clusterset.local\n", err: `line 24: "# wirespan: begin" has no "# wirespan: end" after it`},
		{name: "end without begin", in: "# wirespan: end\n" + kubeadm, err: `line 1: "# wirespan: end" without "# wirespan: begin" before it`},
		{name: "begin twice", in: "# wirespan: begin\n# wirespan: begin\n# wirespan: end\n", err: `line 2: "# wirespan: begin" inside the block begun on line 1`},
		{name: "braces unbalanced", in: kubeadm + "}\n", err: "does not parse outside Wirespan's markers: line 24: } closes no block"},
		{name: "block not closed", in: ".:53 {\n    errors\n", err: "a block is not closed"},
		{name: "server block without braces", in: ".:53\nforward . 8.8.8.8\n", err: `line 1: server block ".:53" has no braces`},
		{name: "bad zone", in: kubeadm, zone: "cluster set", err: `label "cluster set" is not`},
		{name: "root zone", in: kubeadm, zone: ".", err: "not the root"},
		{name: "no upstreams", in: kubeadm, upstreams: []netip.AddrPort{}, err: "no upstream"},
		{name: "upstream twice", in: kubeadm, upstreams: []netip.AddrPort{gw1, gw1}, err: "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			zone, ups := tt.zone, tt.upstreams
			if zone == "" {
				zone = DefaultZone
			}
			if ups == nil {
				ups = []netip.AddrPort{gw1, gw2}
			}
			got, changed, err := Ensure(tt.in, zone, ups)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v; want one containing %q", err, tt.err)
				}
				if got != tt.in || changed {
					t.Errorf("failed Ensure changed the Corefile (changed=%v)", changed)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got:\n%s\nwant:\n%s", got, tt.want)
			}
			if changed == tt.unchanged {
				t.Errorf("changed = %v", changed)
			}
			// Idempotent: Ensure on its own output changes nothing.
			again, changed, err := Ensure(got, zone, ups)
			if err != nil || changed || again != got {
				t.Errorf("second Ensure: changed=%v err=%v\n%s", changed, err, again)
			}
		})
	}
}

func TestRemove(t *testing.T) {
	ours := want("clusterset.local", "clusterset.local:53", "10.0.0.11:5353")
	tests := []struct {
		name, in, want string
		err            string
	}{
		{name: "empty", in: "", want: ""},
		{name: "absent", in: kubeadm, want: kubeadm},
		{name: "only ours", in: ours, want: ""},
		{name: "at the end", in: kubeadm + "\n" + ours, want: kubeadm},
		{name: "in the middle", in: "# top\n\n" + ours + "\n" + kubeadm, want: "# top\n\n" + kubeadm},
		{name: "twice", in: kubeadm + "\n" + ours + "\n" + ours, want: kubeadm},
		{name: "no blank line before it", in: kubeadm + ours, want: kubeadm},
		{name: "Windows line endings", in: strings.ReplaceAll(kubeadm+"\n"+ours, "\n", "\r\n"), want: strings.ReplaceAll(kubeadm, "\n", "\r\n")},
		{name: "end marker without final newline", in: kubeadm + "\n" + strings.TrimSuffix(ours, "\n"), want: kubeadm},
		{name: "user-written block stays", in: kubeadm + "clusterset.local {\n}\n", want: kubeadm + "clusterset.local {\n}\n"},
		{name: "a marker-like comment is no marker", in: "# wirespan: beginning\n# wirespan: ended\n", want: "# wirespan: beginning\n# wirespan: ended\n"},
		{name: "begin without end", in: kubeadm + "\n# wirespan: begin clusterset.local\n", err: "has no"},
		{name: "end without begin", in: kubeadm + "# wirespan: end\n", err: "without"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed, err := Remove(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || got != tt.in || changed {
					t.Fatalf("got changed=%v err=%v; want the input back and an error containing %q", changed, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got:\n%q\nwant:\n%q", got, tt.want)
			}
			if changed != (tt.in != tt.want) {
				t.Errorf("changed = %v", changed)
			}
			if again, changed, err := Remove(got); err != nil || changed || again != got {
				t.Errorf("second Remove: changed=%v err=%v", changed, err)
			}
		})
	}
}

// TestRoundTrip checks that Remove after Ensure gives back the original,
// byte for byte, whatever the Corefile looks like.
func TestRoundTrip(t *testing.T) {
	for name, in := range map[string]string{
		"empty":                 "",
		"kubeadm":               kubeadm,
		"kubeadm, CRLF":         strings.ReplaceAll(kubeadm, "\n", "\r\n"),
		"k3s":                   k3s,
		"trailing blank lines":  kubeadm + "\n\n",
		"trailing comment":      kubeadm + "# the end\n",
		"other port":            ".:1053 {\n    whoami\n}\n",
		"trailing spaces, tabs": kubeadm + " \t\n",
	} {
		t.Run(name, func(t *testing.T) {
			with, changed, err := Ensure(in, DefaultZone, []netip.AddrPort{gw1, v6})
			if err != nil || !changed {
				t.Fatalf("Ensure: changed=%v err=%v", changed, err)
			}
			back, changed, err := Remove(with)
			if err != nil || !changed {
				t.Fatalf("Remove: changed=%v err=%v", changed, err)
			}
			if back != in {
				t.Fatalf("round trip:\n%q\nwant:\n%q", back, in)
			}
		})
	}
}

func TestTokenize(t *testing.T) {
	in := "a b#c d\n\"e \\\"f\\\" \\x\ng\" h# comment\n  {\n}\n\"\"\n\"{\""
	var got []string
	for _, tok := range tokenize(in) {
		got = append(got, tok.text+"@"+string(rune('0'+tok.line)))
	}
	want := []string{"a@1", "b@1", "e \"f\" \\x\ng@2", "h@3", "{@4", "}@5", "@6", "{@7"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// FuzzEnsureRemove checks the promises on any text: Ensure is idempotent,
// Remove undoes it, and a failing call changes nothing.
func FuzzEnsureRemove(f *testing.F) {
	for _, s := range []string{"", kubeadm, k3s, ".:1053 {\n}\n", "a {\n}\r\nb {\n}\r\n", kubeadm + "\n" + want("clusterset.local", "clusterset.local:53", "10.0.0.11:5353")} {
		f.Add(s)
	}
	ups := []netip.AddrPort{gw1, v6}
	f.Fuzz(func(t *testing.T, in string) {
		with, _, err := Ensure(in, DefaultZone, ups)
		if err != nil {
			if with != in {
				t.Fatal("failed Ensure changed the text")
			}
			return
		}
		if again, changed, err := Ensure(with, DefaultZone, ups); err != nil || changed || again != with {
			t.Fatalf("Ensure not idempotent: changed=%v err=%v\n%q\n%q", changed, err, with, again)
		}
		back, _, err := Remove(with)
		if err != nil {
			t.Fatalf("Remove after Ensure: %v", err)
		}
		if regions, _ := markedRegions(splitLines(in)); len(regions) == 0 {
			// Without a block of ours before, Remove gives the input back
			// (with a final newline if it lacked one).
			if back != in && back != in+lineEnding(in) {
				t.Fatalf("round trip:\n%q\n%q", in, back)
			}
		}
	})
}
