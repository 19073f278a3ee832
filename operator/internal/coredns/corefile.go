package coredns

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// The marker lines around Wirespan's block. A line is a marker when, with
// the white space around it trimmed, it starts with one of these.
const (
	beginMarker = "# wirespan: begin"
	endMarker   = "# wirespan: end"
	// managedBy ends the begin line, telling a reader of the Corefile
	// where the block comes from and how to change it.
	managedBy = "(managed by wirespan-operator --coredns-forward)"
)

// CacheTTL is the longest time, in seconds, CoreDNS caches an answer of the
// clusterset zone: the clusterset DNS server's own TTL, so that an endpoint
// gone from a remote cluster is gone from answers as fast as without the
// cache.
const CacheTTL = 5

// Ensure returns corefile with Wirespan's block forwarding zone to
// upstreams, tried in order (policy sequential: the first healthy one
// answers, so list the usual active gateway first). An existing block is
// replaced where it is; otherwise the block goes at the end, after a blank
// line. changed is false when corefile already was the result.
//
// The block's server listens on the port of the Corefile's root zone (".")
// block, so that it shares that listener: 53 when there is none, no port
// (CoreDNS's default) when the root zone's key has none.
//
// Ensure fails, changing nothing, when zone or upstreams are not usable,
// when the markers are damaged, when the Corefile outside the markers does
// not parse, and when it already serves zone on that port: CoreDNS would
// refuse to start with the zone defined twice.
func Ensure(corefile, zone string, upstreams []netip.AddrPort) (result string, changed bool, err error) {
	zone, err = ParseZone(zone)
	if err != nil {
		return corefile, false, err
	}
	if err := checkUpstreams(upstreams); err != nil {
		return corefile, false, err
	}
	lines := splitLines(corefile)
	regions, err := markedRegions(lines)
	if err != nil {
		return corefile, false, err
	}
	blocks, err := serverBlocks(strings.Join(blankRegions(lines, regions), ""))
	if err != nil {
		return corefile, false, fmt.Errorf("the Corefile does not parse outside Wirespan's markers: %w", err)
	}
	port := rootPort(blocks)
	if keys := serving(blocks, zone, port); len(keys) > 0 {
		return corefile, false, fmt.Errorf("the Corefile already has a server block for %s (line %d: %q) outside Wirespan's markers; "+
			"CoreDNS refuses the same zone twice, so Wirespan adds none: remove that block to let --coredns-forward manage it, "+
			"or leave --coredns-forward empty", zone, keys[0].line, keys[0].raw)
	}

	var b strings.Builder
	if len(regions) == 0 {
		eol := lineEnding(corefile)
		b.WriteString(corefile)
		if corefile != "" {
			if !strings.HasSuffix(corefile, "\n") {
				b.WriteString(eol)
			}
			b.WriteString(eol)
		}
		b.WriteString(render(zone, port, upstreams, eol))
	} else {
		// The first block is replaced in place, keeping its line ending;
		// any further one (a copy pasted by hand) goes, so that the zone
		// is defined once.
		b.WriteString(strings.Join(lines[:regions[0].begin], ""))
		b.WriteString(render(zone, port, upstreams, lineEnding(lines[regions[0].begin])))
		b.WriteString(strings.Join(cut(lines[regions[0].end+1:], shift(regions[1:], regions[0].end+1)), ""))
	}
	result = b.String()
	// Markers moved into another block by hand would put a server block
	// inside a server block: never write what does not read back right.
	if blocks, err := serverBlocks(result); err != nil || len(serving(blocks, zone, port)) != 1 {
		return corefile, false, errors.New("the Corefile has Wirespan's markers inside another block: move them (and what is between them) to the top level by hand")
	}
	return result, result != corefile, nil
}

// serving returns the top-level keys that make CoreDNS serve zone over
// plain DNS on port.
func serving(blocks [][]serverKey, zone, port string) []serverKey {
	var out []serverKey
	for _, keys := range blocks {
		for _, k := range keys {
			if a := parseKey(k.raw); a.zone == zone && a.transport == "dns" && samePort(a.port, port) {
				out = append(out, k)
			}
		}
	}
	return out
}

// Remove returns corefile without Wirespan's block and the blank line
// before it, leaving every other byte as it was. changed is false when
// there was no block. It fails, changing nothing, when a marker has no
// partner: what to cut would be a guess.
func Remove(corefile string) (result string, changed bool, err error) {
	lines := splitLines(corefile)
	regions, err := markedRegions(lines)
	if err != nil {
		return corefile, false, err
	}
	if len(regions) == 0 {
		return corefile, false, nil
	}
	return strings.Join(cut(lines, regions), ""), true, nil
}

// region is a block's line indexes, both markers included.
type region struct{ begin, end int }

// markedRegions finds the blocks between marker lines.
func markedRegions(lines []string) ([]region, error) {
	var (
		regions []region
		open    = -1
	)
	for i, l := range lines {
		switch markerKind(l) {
		case beginMarker:
			if open >= 0 {
				return nil, fmt.Errorf("line %d: %q inside the block begun on line %d: fix the Corefile's Wirespan markers by hand", i+1, beginMarker, open+1)
			}
			open = i
		case endMarker:
			if open < 0 {
				return nil, fmt.Errorf("line %d: %q without %q before it: fix the Corefile's Wirespan markers by hand", i+1, endMarker, beginMarker)
			}
			regions = append(regions, region{open, i})
			open = -1
		}
	}
	if open >= 0 {
		return nil, fmt.Errorf("line %d: %q has no %q after it: fix the Corefile's Wirespan markers by hand", open+1, beginMarker, endMarker)
	}
	return regions, nil
}

// markerKind returns beginMarker or endMarker for a marker line, else "".
func markerKind(line string) string {
	l := strings.TrimSpace(line)
	for _, m := range []string{beginMarker, endMarker} {
		if rest, ok := strings.CutPrefix(l, m); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
			return m
		}
	}
	return ""
}

// cut drops the regions from lines, each with the blank line just before
// it: the one Ensure adds in front of a new block.
func cut(lines []string, regions []region) []string {
	out := make([]string, 0, len(lines))
	next := 0
	for _, r := range regions {
		keep := lines[next:r.begin]
		if n := len(keep); n > 0 && strings.TrimSpace(keep[n-1]) == "" {
			keep = keep[:n-1]
		}
		out = append(out, keep...)
		next = r.end + 1
	}
	return append(out, lines[next:]...)
}

// shift moves regions n lines up, for cutting from lines[n:].
func shift(regions []region, n int) []region {
	out := make([]region, len(regions))
	for i, r := range regions {
		out[i] = region{r.begin - n, r.end - n}
	}
	return out
}

// blankRegions replaces the marked lines with empty ones, keeping line
// numbers right for error messages about the rest.
func blankRegions(lines []string, regions []region) []string {
	out := append([]string(nil), lines...)
	for _, r := range regions {
		for i := r.begin; i <= r.end; i++ {
			out[i] = "\n"
		}
	}
	return out
}

// rootPort is the port of the first plain-DNS key for the root zone, "53"
// when there is none.
func rootPort(blocks [][]serverKey) string {
	for _, keys := range blocks {
		for _, k := range keys {
			if a := parseKey(k.raw); a.zone == "." && a.transport == "dns" {
				return a.port
			}
		}
	}
	return "53"
}

// render writes the block, markers included, with the Corefile's line
// ending and the four-space indent of kubeadm's Corefile.
func render(zone, port string, upstreams []netip.AddrPort, eol string) string {
	key := zone
	if port != "" {
		key += ":" + port
	}
	to := make([]string, len(upstreams))
	for i, u := range upstreams {
		to[i] = u.String()
	}
	return strings.Join([]string{
		fmt.Sprintf("%s %s %s", beginMarker, zone, managedBy),
		key + " {",
		"    errors",
		fmt.Sprintf("    cache %d", CacheTTL),
		"    forward . " + strings.Join(to, " ") + " {",
		"        policy sequential",
		"    }",
		"}",
		endMarker,
	}, eol) + eol
}

// splitLines splits s after each "\n", keeping the line endings, so that
// joining the lines gives s back.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// lineEnding is the ending of the first line of s: "\r\n" for a Corefile
// written with Windows line endings, else "\n".
func lineEnding(s string) string {
	if i := strings.IndexByte(s, '\n'); i > 0 && s[i-1] == '\r' {
		return "\r\n"
	}
	return "\n"
}
