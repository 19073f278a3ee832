package coredns

import (
	"fmt"
	"strings"
	"unicode"
)

// token is one word of a Corefile, as CoreDNS's lexer splits it.
type token struct {
	text string
	line int // 1-based
}

// tokenize splits a Corefile into tokens exactly as CoreDNS's lexer (its
// fork of Caddy 1's, github.com/coredns/caddy/caddyfile) does: words
// separated by white space; "#" outside quotes comments out the rest of the
// line, even in the middle of a word; a word that starts with a double
// quote runs to the next unescaped quote, newlines included, and \" in it
// is a quote. A brace is a word of its own only with white space around
// it, and CoreDNS takes a quoted brace for a brace too.
func tokenize(s string) []token {
	var (
		toks                    []token
		cur                     strings.Builder
		inWord, quoted, escaped bool
		comment                 bool
		start                   int
		line                    = 1
	)
	emit := func() {
		toks = append(toks, token{text: cur.String(), line: start})
		cur.Reset()
		inWord, quoted = false, false
	}
	for _, c := range s {
		switch {
		case quoted:
			switch {
			case !escaped && c == '\\':
				escaped = true
				continue
			case !escaped && c == '"':
				emit()
				continue
			case escaped && c != '"':
				cur.WriteRune('\\') // only quotes are escaped
			}
			if c == '\n' {
				line++
			}
			cur.WriteRune(c)
			escaped = false
		case unicode.IsSpace(c):
			if inWord {
				emit()
			}
			if c == '\n' {
				line++
				comment = false
			}
		case c == '#' || comment:
			comment = true
		case !inWord && c == '"':
			inWord, quoted, start = true, true, line
		default:
			if !inWord {
				inWord, start = true, line
			}
			cur.WriteRune(c)
		}
	}
	if inWord {
		emit()
	}
	return toks
}

// serverKey is one address in front of a server block, such as
// "clusterset.local:53" or "dns://.:53".
type serverKey struct {
	raw  string
	line int
}

// serverBlocks returns the keys of every top-level block of a Corefile
// (server blocks and snippets), in order. It fails on what it cannot read
// safely: unbalanced braces, or a server block without braces (allowed by
// CoreDNS only when it is the file's only block, so adding another would
// change its meaning).
func serverBlocks(corefile string) ([][]serverKey, error) {
	var (
		blocks  [][]serverKey
		keys    []serverKey
		depth   int
		another bool // the last key ended with a comma: more keys follow
	)
	for _, t := range tokenize(corefile) {
		if depth > 0 {
			switch t.text {
			case "{":
				depth++
			case "}":
				depth--
			}
			continue
		}
		switch t.text {
		case "}":
			return nil, fmt.Errorf("line %d: } closes no block", t.line)
		case "{":
			if len(keys) == 0 {
				return nil, fmt.Errorf("line %d: { opens a block without a server address", t.line)
			}
			blocks = append(blocks, keys)
			keys, another, depth = nil, false, 1
			continue
		}
		if len(keys) > 0 && !another && t.line != keys[len(keys)-1].line {
			if keys[0].raw != "import" {
				return nil, fmt.Errorf("line %d: server block %q has no braces", keys[0].line, keys[0].raw)
			}
			// A top-level import pulls in blocks this function cannot
			// see; it is not a block itself.
			keys = nil
		}
		if t.text == "" {
			continue // "" is no address for CoreDNS either
		}
		another = strings.HasSuffix(t.text, ",")
		keys = append(keys, serverKey{raw: strings.TrimSuffix(t.text, ","), line: t.line})
	}
	if depth > 0 {
		return nil, fmt.Errorf("a block is not closed: %d } missing at the end", depth)
	}
	if len(keys) > 0 && keys[0].raw != "import" {
		return nil, fmt.Errorf("line %d: server block %q has no braces", keys[0].line, keys[0].raw)
	}
	return blocks, nil
}

// address is a server key taken apart: CoreDNS listens for zone on port
// (empty: its default port, 53 unless -dns.port says otherwise) with a
// transport; dns means plain DNS over UDP and TCP.
type address struct {
	zone      string // lower case, no trailing dot; "." for the root
	port      string
	transport string
}

// parseKey reads a server key: [transport://]zone[:port]. Keys CoreDNS
// reads some other way (reverse CIDR zones, placeholders) come out as zones
// that match nothing Wirespan writes, which is all that matters here.
func parseKey(raw string) address {
	a := address{transport: "dns"}
	rest := strings.ToLower(raw)
	if scheme, after, ok := strings.Cut(rest, "://"); ok {
		a.transport, rest = scheme, after
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && allDigits(rest[i+1:]) {
		rest, a.port = rest[:i], rest[i+1:]
	}
	if rest != "." {
		rest = strings.TrimSuffix(rest, ".")
	}
	a.zone = rest
	return a
}

// samePort says whether two keys' ports are one listener, counting an
// absent port as CoreDNS's default, 53.
func samePort(a, b string) bool {
	if a == "" {
		a = "53"
	}
	if b == "" {
		b = "53"
	}
	return a == b
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
