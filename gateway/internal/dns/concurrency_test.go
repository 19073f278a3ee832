package dns

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// generation is a set of services whose every address carries gen in its
// second byte, so a reader can tell whether one answer mixes two sets.
func generation(gen int) []Service {
	var out []Service
	for i := range 20 {
		out = append(out, Service{
			Namespace: "ns", Name: fmt.Sprintf("vip-%d", i), IPs: ips(fmt.Sprintf("10.%d.0.%d", gen%256, i+1)),
			Ports: []Port{{Name: "http", Port: 80}},
		})
	}
	h := Service{Namespace: "ns", Name: "headless", Headless: true, Ports: []Port{{Name: "http", Port: 80}}}
	for i := range 30 {
		h.Endpoints = append(h.Endpoints, Endpoint{Cluster: "c1", Hostname: fmt.Sprintf("p%d", i),
			Addrs: ips(fmt.Sprintf("10.%d.1.%d", gen%256, i+1)), Ready: true})
	}
	return append(out, h)
}

// TestConcurrentQueriesAndUpdates runs queries, in process and through a
// real server over UDP and TCP, while Replace, Set and Delete change the
// store. Run with -race. Every answer must come from one snapshot: all its
// addresses of one generation, and SRV targets matching their additional
// records.
func TestConcurrentQueriesAndUpdates(t *testing.T) {
	store := NewStore()
	store.Replace(generation(0))
	s := startServer(t, Config{Store: store})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()

	var wg sync.WaitGroup
	var answered atomic.Int64
	check := func(resp *dns.Msg) error {
		gen := -1
		for _, rr := range append(append([]dns.RR{}, resp.Answer...), resp.Extra...) {
			a, ok := rr.(*dns.A)
			if !ok {
				continue
			}
			if g := int(a.A.To4()[1]); gen < 0 {
				gen = g
			} else if g != gen {
				return fmt.Errorf("addresses of generations %d and %d in one answer: %v", gen, g, resp)
			}
		}
		if resp.Truncated {
			return nil // a cut answer may well lack additional records
		}
		targets := map[string]bool{}
		for _, rr := range resp.Extra {
			targets[rr.Header().Name] = true
		}
		for _, rr := range resp.Answer {
			if srv, ok := rr.(*dns.SRV); ok && !targets[srv.Target] {
				return fmt.Errorf("SRV target %s without its address: %v", srv.Target, resp)
			}
		}
		return nil
	}
	names := []string{"headless.ns.svc." + zone, "vip-3.ns.svc." + zone, "_http._tcp.headless.ns.svc." + zone, "_http._tcp.vip-7.ns.svc." + zone}
	reader := func(id int, ask func(*dns.Msg) (*dns.Msg, error)) {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			name := names[(i+id)%len(names)]
			qtype := dns.TypeA
			if name[0] == '_' {
				qtype = dns.TypeSRV
			}
			resp, err := ask(query(name, qtype, 4096))
			if err != nil {
				if ctx.Err() == nil {
					t.Error(err)
				}
				return
			}
			if err := check(resp); err != nil {
				t.Error(err)
				return
			}
			answered.Add(1)
		}
	}
	a := newAnswerer(zone, 5, store)
	for id := range 4 {
		wg.Add(1)
		go reader(id, func(m *dns.Msg) (*dns.Msg, error) { return a.answer(m, true), nil })
	}
	for id, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network, Timeout: 2 * time.Second, UDPSize: 4096}
		wg.Add(1)
		go reader(id, func(m *dns.Msg) (*dns.Msg, error) {
			resp, _, err := c.Exchange(m, s.Addr().String())
			return resp, err
		})
	}

	wg.Add(1)
	go func() {
		defer wg.Done()
		for gen := 1; ctx.Err() == nil; gen++ {
			switch gen % 3 {
			case 0:
				store.Replace(generation(gen))
			case 1:
				for _, svc := range generation(gen) {
					if svc.Name == "headless" {
						store.Set(svc)
					}
				}
			case 2:
				store.Delete("ns", "vip-3")
				store.Set(generation(gen)[3])
			}
		}
	}()
	wg.Wait()
	if answered.Load() < 100 {
		t.Errorf("only %d answers in a second", answered.Load())
	}
}
