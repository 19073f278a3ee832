package diagnose

import (
	"net"
	"strings"
)

// serverBlock is one top-level server block of a Corefile: its keys
// ("clusterset.local:53") and its forward upstreams, if any.
type serverBlock struct {
	line      int
	keys      []string
	upstreams []string
}

// parseCorefile finds the top-level server blocks and, in each, the
// forward plugin's upstreams. It reads only what the checks need (the
// operator's own parser is the strict one): tokens split on white space
// and braces, '#' to the end of the line is a comment.
func parseCorefile(text string) []serverBlock {
	var blocks []serverBlock
	depth := 0
	var cur *serverBlock
	for i, raw := range strings.Split(text, "\n") {
		line, _, _ := strings.Cut(raw, "#")
		fields := strings.Fields(strings.NewReplacer("{", " { ", "}", " } ").Replace(line))
		var pending []string
		// flush records a forward line of the current server block.
		flush := func() {
			if depth == 1 && cur != nil && len(pending) > 2 && pending[0] == "forward" {
				cur.upstreams = append(cur.upstreams, pending[2:]...)
			}
			pending = nil
		}
		for _, f := range fields {
			switch f {
			case "{":
				if depth == 0 {
					blocks = append(blocks, serverBlock{line: i + 1, keys: pending})
					cur = &blocks[len(blocks)-1]
				}
				flush()
				depth++
			case "}":
				flush()
				depth = max(depth-1, 0)
			default:
				pending = append(pending, f)
			}
		}
		if depth > 0 {
			flush() // a directive ends at the end of its line; server keys may span lines
		}
	}
	return blocks
}

// servesZone reports whether a server block key ("dns://clusterset.local.:53")
// is the zone.
func servesZone(key, zone string) bool {
	key = strings.TrimPrefix(key, "dns://")
	host := key
	if h, _, err := net.SplitHostPort(key); err == nil {
		host = h
	}
	return strings.TrimSuffix(strings.ToLower(host), ".") == strings.TrimSuffix(strings.ToLower(zone), ".")
}

// upstreamHost is an upstream's address without its port or scheme.
func upstreamHost(u string) string {
	u = strings.TrimPrefix(u, "dns://")
	if h, _, err := net.SplitHostPort(u); err == nil {
		return h
	}
	return strings.Trim(u, "[]")
}
