package dns

import (
	"net"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// SchemaVersion is the version of the MCS DNS specification served, the
// TXT record of dns-version.<zone>.
const SchemaVersion = "1.0.0"

const (
	// advertisedUDPSize is the EDNS buffer size this server announces: the
	// DNS flag day 2020 value, which avoids IP fragmentation.
	advertisedUDPSize = 1232
	// maxUDPSize bounds what a client's EDNS buffer size can make a UDP
	// answer grow to: the size announced. Bigger answers get TC and are
	// fetched over TCP, so a spoofed query can make the server send at most
	// 1232 bytes (a 4 KiB cap let a headless name amplify a query about 50
	// times).
	maxUDPSize = advertisedUDPSize
	// SOA timers. Nothing transfers this zone, so only the minimum (the
	// negative TTL, RFC 2308) matters; these are common values.
	soaRefresh = 7200
	soaRetry   = 1800
	soaExpire  = 86400
)

// answerer computes responses from a Store. It is pure: no sockets, no
// clock; the Server only moves bytes.
type answerer struct {
	zone  string // lower-case FQDN: "clusterset.local."
	ttl   uint32 // of every record, and the negative TTL
	store *Store
	// mname and mbox are the SOA's server and mailbox names.
	mname, mbox string
}

func newAnswerer(zone string, ttl uint32, store *Store) *answerer {
	return &answerer{zone: zone, ttl: ttl, store: store, mname: "ns.dns." + zone, mbox: "hostmaster." + zone}
}

// answer builds the response to one query. udp selects the size limit: the
// client's EDNS buffer size (512 without EDNS) over UDP, 65535 over TCP. It
// always returns a response that packs.
func (a *answerer) answer(req *dns.Msg, udp bool) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetReply(req)
	switch {
	case req.Response:
		// The server never gets here (it drops responses unread); a
		// direct caller gets a refusal rather than an echo.
		return formErr(resp)
	case req.Opcode != dns.OpcodeQuery:
		resp.Rcode = dns.RcodeNotImplemented
		return resp
	case len(req.Question) != 1 || len(req.Answer) > 0 || len(req.Ns) > 0:
		return formErr(resp)
	}

	// EDNS (RFC 6891): at most one OPT, owned by the root; version 0 only.
	var opt *dns.OPT
	for _, rr := range req.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			if opt != nil || o.Hdr.Name != "." {
				return formErr(resp)
			}
			opt = o
		}
	}
	limit := dns.MaxMsgSize
	if udp {
		limit = dns.MinMsgSize
	}
	if opt != nil {
		resp.SetEdns0(advertisedUDPSize, false)
		if opt.Version() != 0 {
			resp.Rcode = dns.RcodeBadVers
			return resp
		}
		if udp {
			limit = min(max(int(opt.UDPSize()), dns.MinMsgSize), maxUDPSize)
		}
	}

	q := req.Question[0]
	switch {
	case q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY:
		resp.Rcode = dns.RcodeRefused
		return resp
	case q.Qtype == dns.TypeOPT:
		return formErr(resp)
	}
	rel, inZone := a.relative(q.Name)
	if !inZone {
		// Authoritative for this zone only; a resolver asks elsewhere.
		resp.Rcode = dns.RcodeRefused
		return resp
	}
	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		resp.Rcode = dns.RcodeRefused // no zone transfers
		return resp
	}

	resp.Authoritative = true
	v := a.store.load()
	exists := a.records(resp, v, rel, q)
	if q.Qtype == dns.TypeANY && exists {
		// RFC 8482: ANY gets one small synthesized record, not every
		// RRset of the name (amplification, and nothing needs ANY).
		resp.Answer = []dns.RR{&dns.HINFO{Hdr: a.hdr(q.Name, dns.TypeHINFO), Cpu: "RFC8482"}}
		resp.Extra = slices.DeleteFunc(resp.Extra, func(rr dns.RR) bool { return rr.Header().Rrtype != dns.TypeOPT })
	}
	switch {
	case !exists:
		resp.Rcode = dns.RcodeNameError
		resp.Ns = []dns.RR{a.soa(v, a.zone)}
	case len(resp.Answer) == 0:
		// NODATA (RFC 2308): the name exists, the type does not.
		resp.Ns = []dns.RR{a.soa(v, a.zone)}
	}
	fit(resp, limit)
	return resp
}

// relative returns the query name relative to the zone, in lower case
// without its trailing dot ("" for the apex), and whether it is in the
// zone at all.
func (a *answerer) relative(qname string) (string, bool) {
	name := lower(qname)
	if strings.IndexByte(name, '\\') >= 0 {
		// A name with an escaped byte: label boundaries are not simply
		// dots. No name served has such a label, so if it is in the zone
		// it does not exist; "?" stands for a label no entry matches.
		if dns.IsSubDomain(a.zone, name) {
			return "?", true
		}
		return "", false
	}
	if name == a.zone {
		return "", true
	}
	if len(name) > len(a.zone) && strings.HasSuffix(name, a.zone) && name[len(name)-len(a.zone)-1] == '.' {
		return name[:len(name)-len(a.zone)-1], true
	}
	return "", false
}

// records puts in resp the records of rel for the question q, and reports
// whether rel exists. Records answering the question have the question's
// name, spelled as the client spelled it.
func (a *answerer) records(resp *dns.Msg, v *view, rel string, q dns.Question) bool {
	owner := q.Name
	switch rel {
	case "":
		if q.Qtype == dns.TypeSOA || q.Qtype == dns.TypeANY {
			resp.Answer = append(resp.Answer, a.soa(v, owner))
		}
		return true
	case "dns-version":
		if q.Qtype == dns.TypeTXT || q.Qtype == dns.TypeANY {
			resp.Answer = append(resp.Answer, &dns.TXT{Hdr: a.hdr(owner, dns.TypeTXT), Txt: []string{SchemaVersion}})
		}
		return true
	case "svc":
		return v.live > 0
	}
	rest, ok := strings.CutSuffix(rel, ".svc")
	if !ok {
		return false
	}
	// rest is [<sub>.]<svc>.<ns>
	i := strings.LastIndexByte(rest, '.')
	if i < 0 {
		return v.namespaces[rest] > 0
	}
	j := strings.LastIndexByte(rest[:i], '.')
	e := v.entries[rest[j+1:]]
	if e == nil || !e.live {
		return false
	}
	if j < 0 {
		a.addresses(resp, owner, q.Qtype, e.a, e.aaaa, false)
		return true
	}
	n := e.below[rest[:j]]
	if n == nil {
		return false
	}
	a.addresses(resp, owner, q.Qtype, n.a, n.aaaa, false)
	if n.port != 0 && (q.Qtype == dns.TypeSRV || q.Qtype == dns.TypeANY) {
		a.srv(resp, owner, e, rest[j+1:], n.port, q.Qtype == dns.TypeSRV)
	}
	return true
}

// srv answers an SRV name of entry e (key is its "<svc>.<ns>"): one record
// per target, and with extra, the targets' addresses in the additional
// section.
func (a *answerer) srv(resp *dns.Msg, owner string, e *entry, key string, port uint16, extra bool) {
	base := key + ".svc." + a.zone
	for _, t := range e.targets {
		target, ta, taaaa := base, e.a, e.aaaa
		if t != "" {
			n := e.below[t]
			target, ta, taaaa = t+"."+base, n.a, n.aaaa
		}
		if len(target) > 254 {
			// Over 255 bytes on the wire: no such name can exist, so no
			// record may point to it.
			continue
		}
		resp.Answer = append(resp.Answer, &dns.SRV{Hdr: a.hdr(owner, dns.TypeSRV), Priority: 0, Weight: 100, Port: port, Target: target})
		if extra {
			a.addresses(resp, target, dns.TypeANY, ta, taaaa, true)
		}
	}
}

// addresses adds the A and AAAA records of a name that qtype asks for, to
// the answer or to the additional section.
func (a *answerer) addresses(resp *dns.Msg, owner string, qtype uint16, v4, v6 []net.IP, extra bool) {
	section := &resp.Answer
	if extra {
		section = &resp.Extra
	}
	if qtype == dns.TypeA || qtype == dns.TypeANY {
		for _, ip := range v4 {
			*section = append(*section, &dns.A{Hdr: a.hdr(owner, dns.TypeA), A: ip})
		}
	}
	if qtype == dns.TypeAAAA || qtype == dns.TypeANY {
		for _, ip := range v6 {
			*section = append(*section, &dns.AAAA{Hdr: a.hdr(owner, dns.TypeAAAA), AAAA: ip})
		}
	}
}

func (a *answerer) hdr(owner string, rrtype uint16) dns.RR_Header {
	return dns.RR_Header{Name: owner, Rrtype: rrtype, Class: dns.ClassINET, Ttl: a.ttl}
}

// soa is the zone's SOA record. Its TTL and minimum are both the answer
// TTL, so negative answers are cached as long as positive ones (RFC 2308
// takes the smaller of the two).
func (a *answerer) soa(v *view, owner string) *dns.SOA {
	return &dns.SOA{
		Hdr: a.hdr(owner, dns.TypeSOA), Ns: a.mname, Mbox: a.mbox, Serial: v.serial,
		Refresh: soaRefresh, Retry: soaRetry, Expire: soaExpire, Minttl: a.ttl,
	}
}

// fit makes resp fit in limit bytes. Records that do not fit are left out
// and, if any of them was needed (answer or authority), TC is set so the
// client retries over TCP; additional records are optional, so leaving
// some out does not set TC (RFC 2181 section 9).
func fit(resp *dns.Msg, limit int) {
	answers, authority := len(resp.Answer), len(resp.Ns)
	resp.Truncate(limit)
	if len(resp.Answer) == answers && len(resp.Ns) == authority {
		resp.Truncated = false
	}
}

// formErr turns resp into a FORMERR response, without a question: the
// query's question section is what could not be understood.
func formErr(resp *dns.Msg) *dns.Msg {
	resp.Rcode = dns.RcodeFormatError
	resp.Question = nil
	resp.Authoritative = false
	resp.Answer, resp.Ns, resp.Extra = nil, nil, nil
	return resp
}

// lower is strings.ToLower for ASCII, without allocating when s is already
// lower case (the usual query). DNS compares names ignoring ASCII case only.
func lower(s string) string {
	for i := range len(s) {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'A' && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
