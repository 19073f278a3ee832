package dns

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/wirespan/wirespan/internal/testreq"
)

// digBinary finds dig (Debian package dnsutils, installed by
// hack/deps.sh). Tests that need it skip without it, except in CI or under
// `make test`, where a missing dig must fail rather than silently test
// nothing.
func digBinary(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("dig")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("dig is missing (Debian package dnsutils; run `make deps`)")
		}
		testreq.CannotRun(t, testreq.Privileged, "dig is missing (Debian package dnsutils; run `make deps`); skipping the tests through a real client")
	}
	return path
}

type digResult struct {
	status                        string
	flags                         []string
	answer, authority, additional []string
}

var (
	digStatus = regexp.MustCompile(`status: ([A-Z]+),`)
	digFlags  = regexp.MustCompile(`;; flags: ([a-z ]*);`)
)

// dig queries s with the real dig and parses its output. Records are
// normalized through miekg/dns's parser, so they compare with rrStrings.
func dig(t *testing.T, s *Server, args ...string) digResult {
	t.Helper()
	argv := append([]string{"@" + s.Addr().Addr().String(), "-p", strconv.Itoa(int(s.Addr().Port())),
		"+norecurse", "+time=2", "+tries=1", "+nocmd", "+nostats"}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, digBinary(t), argv...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	var r digResult
	var section *[]string
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSpace(line)
		switch {
		case digStatus.MatchString(line):
			r.status = digStatus.FindStringSubmatch(line)[1]
		case digFlags.MatchString(line):
			r.flags = strings.Fields(digFlags.FindStringSubmatch(line)[1])
		case line == ";; ANSWER SECTION:":
			section = &r.answer
		case line == ";; AUTHORITY SECTION:":
			section = &r.authority
		case line == ";; ADDITIONAL SECTION:":
			section = &r.additional
		case line == "" || strings.HasPrefix(line, ";"):
			if line == "" {
				section = nil
			}
		case section != nil:
			rr, err := dns.NewRR(line)
			if err != nil {
				t.Fatalf("dig printed a record miekg cannot parse: %q: %v", line, err)
			}
			*section = append(*section, rrStrings([]dns.RR{rr})...)
		}
	}
	if r.status == "" {
		t.Fatalf("no status in dig's output:\n%s", out)
	}
	slices.Sort(r.answer)
	slices.Sort(r.additional)
	return r
}

func (r digResult) has(flag string) bool { return slices.Contains(r.flags, flag) }

func TestServerWithDig(t *testing.T) {
	digBinary(t) // skip or fail once, not in every subtest
	store := fixtureStore()
	store.Set(bigHeadless(200))
	s := startServer(t, Config{Store: store})
	const (
		web = "web.prod.svc.clusterset.local."
		db  = "db.prod.svc.clusterset.local."
	)
	soa := "clusterset.local. 5 IN SOA ns.dns.clusterset.local. hostmaster.clusterset.local. 3 7200 1800 86400 5"
	tests := []struct {
		name       string
		args       []string
		status     string
		answer     []string
		authority  []string
		additional []string
	}{
		{"A", []string{web, "A"}, "NOERROR", []string{web + " 5 IN A 10.42.0.1"}, nil, nil},
		{"AAAA", []string{web, "AAAA"}, "NOERROR", []string{web + " 5 IN AAAA fd00::1"}, nil, nil},
		{"A over TCP", []string{"+tcp", web, "A"}, "NOERROR", []string{web + " 5 IN A 10.42.0.1"}, nil, nil},
		{"SRV with addresses in additional", []string{"_http._tcp." + web, "SRV"}, "NOERROR",
			[]string{"_http._tcp." + web + " 5 IN SRV 0 100 80 " + web}, nil,
			[]string{web + " 5 IN A 10.42.0.1", web + " 5 IN AAAA fd00::1"}},
		{"headless A", []string{db, "A"}, "NOERROR", []string{
			db + " 5 IN A 10.1.0.10", db + " 5 IN A 10.2.0.10", db + " 5 IN A 10.2.0.11", db + " 5 IN A 10.3.0.10"}, nil, nil},
		{"headless endpoint", []string{"db-0.c2." + db, "AAAA"}, "NOERROR", []string{"db-0.c2." + db + " 5 IN AAAA fd00:2::10"}, nil, nil},
		{"headless SRV", []string{"_pg._tcp." + db, "SRV"}, "NOERROR", []string{
			"_pg._tcp." + db + " 5 IN SRV 0 100 5432 10-2-0-11.c2." + db,
			"_pg._tcp." + db + " 5 IN SRV 0 100 5432 db-0.c1." + db,
			"_pg._tcp." + db + " 5 IN SRV 0 100 5432 db-0.c2." + db,
			"_pg._tcp." + db + " 5 IN SRV 0 100 5432 db-0.east.reg." + db,
		}, nil, []string{
			"10-2-0-11.c2." + db + " 5 IN A 10.2.0.11", "db-0.c1." + db + " 5 IN A 10.1.0.10",
			"db-0.c2." + db + " 5 IN A 10.2.0.10", "db-0.c2." + db + " 5 IN AAAA fd00:2::10", "db-0.east.reg." + db + " 5 IN A 10.3.0.10",
		}},
		{"dns-version", []string{"dns-version.clusterset.local.", "TXT"}, "NOERROR",
			[]string{`dns-version.clusterset.local. 5 IN TXT "1.0.0"`}, nil, nil},
		{"SOA", []string{"clusterset.local.", "SOA"}, "NOERROR", []string{soa}, nil, nil},
		{"NXDOMAIN", []string{"nope.prod.svc.clusterset.local.", "A"}, "NXDOMAIN", nil, []string{soa}, nil},
		{"NXDOMAIN over TCP", []string{"+tcp", "nope.prod.svc.clusterset.local.", "A"}, "NXDOMAIN", nil, []string{soa}, nil},
		{"NODATA: type", []string{web, "TXT"}, "NOERROR", nil, []string{soa}, nil},
		{"NODATA: empty non-terminal", []string{"prod.svc.clusterset.local.", "A"}, "NOERROR", nil, []string{soa}, nil},
		{"NODATA: cluster of a headless service", []string{"c1." + db, "A"}, "NOERROR", nil, []string{soa}, nil},
		{"NODATA: apex", []string{"clusterset.local.", "A"}, "NOERROR", nil, []string{soa}, nil},
		{"other zone", []string{"example.com.", "A"}, "REFUSED", nil, nil, nil},
		{"case", []string{"WeB.PROD.svc.clusterset.local.", "A"}, "NOERROR", []string{"WeB.PROD.svc.clusterset.local. 5 IN A 10.42.0.1"}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := dig(t, s, tt.args...)
			if r.status != tt.status {
				t.Fatalf("status %s, want %s", r.status, tt.status)
			}
			if tt.status != "REFUSED" && !r.has("aa") {
				t.Errorf("flags %v: no aa", r.flags)
			}
			if r.has("tc") {
				t.Errorf("flags %v: tc", r.flags)
			}
			if !slices.Equal(r.answer, tt.answer) || !slices.Equal(r.authority, tt.authority) || !slices.Equal(r.additional, tt.additional) {
				t.Errorf("got\n answer %q\n authority %q\n additional %q\nwant\n answer %q\n authority %q\n additional %q",
					r.answer, r.authority, r.additional, tt.answer, tt.authority, tt.additional)
			}
		})
	}

	const big = "big.prod.svc.clusterset.local."
	t.Run("truncated over UDP with EDNS 512", func(t *testing.T) {
		r := dig(t, s, "+ignore", "+bufsize=512", big, "A")
		if r.status != "NOERROR" || !r.has("tc") || len(r.answer) >= 200 {
			t.Errorf("status %s, flags %v, %d records: want TC and a partial answer", r.status, r.flags, len(r.answer))
		}
	})
	t.Run("truncated over UDP without EDNS", func(t *testing.T) {
		r := dig(t, s, "+ignore", "+noedns", big, "A")
		if !r.has("tc") || len(r.answer) >= 200 {
			t.Errorf("flags %v, %d records: want TC", r.flags, len(r.answer))
		}
	})
	t.Run("dig retries over TCP on TC", func(t *testing.T) {
		r := dig(t, s, "+bufsize=512", big, "A")
		if r.has("tc") || len(r.answer) != 200 {
			t.Errorf("flags %v, %d records: want all 200", r.flags, len(r.answer))
		}
	})
	t.Run("everything over TCP", func(t *testing.T) {
		r := dig(t, s, "+tcp", big, "A")
		if r.status != "NOERROR" || r.has("tc") || len(r.answer) != 200 {
			t.Errorf("status %s, flags %v, %d records: want all 200", r.status, r.flags, len(r.answer))
		}
		r = dig(t, s, "+tcp", "_http._tcp."+big, "SRV")
		if len(r.answer) != 200 || len(r.additional) != 200 {
			t.Errorf("SRV: %d records, %d additional, want 200 and 200", len(r.answer), len(r.additional))
		}
	})
}
