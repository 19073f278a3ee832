package dns

import (
	"fmt"
	"testing"

	"github.com/miekg/dns"
)

// bigHeadless is a headless service with n ready endpoints, in two
// clusters, each with a hostname and one port.
func bigHeadless(n int) Service {
	svc := Service{Namespace: "prod", Name: "big", Headless: true, Ports: []Port{{Name: "http", Protocol: "TCP", Port: 80}}}
	for i := range n {
		svc.Endpoints = append(svc.Endpoints, Endpoint{
			Cluster: fmt.Sprintf("c%d", i%2), Hostname: fmt.Sprintf("pod-%d", i),
			Addrs: ips(fmt.Sprintf("10.%d.%d.%d", 100+i%2, i/250, i%250+1)), Ready: true,
		})
	}
	return svc
}

func TestTruncation(t *testing.T) {
	store := NewStore()
	store.Set(bigHeadless(200))
	a := newAnswerer(zone, 5, store)
	name := "big.prod.svc." + zone
	tests := []struct {
		name    string
		bufsize uint16 // 0: no EDNS
		udp     bool
		limit   int
		full    bool
	}{
		{"UDP without EDNS: 512 bytes", 0, true, 512, false},
		{"UDP, EDNS 512", 512, true, 512, false},
		{"UDP, EDNS below 512 counts as 512", 100, true, 512, false},
		{"UDP, EDNS 1232", 1232, true, 1232, false},
		// Capped at 1232 whatever the client says: a spoofed query gets
		// at most that much sent to its victim.
		{"UDP, EDNS 4096 is capped", 4096, true, 1232, false},
		{"UDP, EDNS 65000 is capped", 65000, true, 1232, false},
		{"TCP", 0, false, dns.MaxMsgSize, true},
		{"TCP with EDNS 512: no limit but 64 KiB", 512, false, dns.MaxMsgSize, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := a.answer(query(name, dns.TypeA, tt.bufsize), tt.udp)
			b, err := resp.Pack()
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > tt.limit {
				t.Errorf("%d bytes, limit %d", len(b), tt.limit)
			}
			if tt.full != !resp.Truncated || tt.full != (len(resp.Answer) == 200) {
				t.Errorf("TC %v with %d of 200 records", resp.Truncated, len(resp.Answer))
			}
			if tt.bufsize != 0 && resp.IsEdns0() == nil {
				t.Error("truncation dropped the OPT record")
			}
		})
	}
}

// Additional records are optional: when only they do not fit, they are
// left out without TC (RFC 2181 section 9).
func TestTruncationKeepsAnswerDropsAdditional(t *testing.T) {
	for n := 1; n <= 40; n++ {
		store := NewStore()
		store.Set(bigHeadless(n))
		resp := newAnswerer(zone, 5, store).answer(query("_http._tcp.big.prod.svc."+zone, dns.TypeSRV, 0), true)
		if b, err := resp.Pack(); err != nil || len(b) > 512 {
			t.Fatalf("%d endpoints: %d bytes, %v", n, len(b), err)
		}
		switch {
		case len(resp.Answer) == n && len(resp.Extra) == n:
			if resp.Truncated {
				t.Errorf("%d endpoints: everything fits but TC", n)
			}
		case len(resp.Answer) == n:
			if resp.Truncated {
				t.Errorf("%d endpoints: TC set although only additional records were left out", n)
			}
			return // the case under test was seen
		default:
			t.Fatalf("%d endpoints: answer cut (%d) before the additional section was", n, len(resp.Answer))
		}
	}
	t.Fatal("never reached a size where only additional records are left out")
}
