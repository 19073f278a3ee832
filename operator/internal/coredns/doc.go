// Package coredns edits CoreDNS Corefile text so that the cluster DNS
// forwards the clusterset zone (clusterset.local) to Wirespan's clusterset
// DNS server. It is pure: strings in, strings out, no API calls; the
// operator's corefile controller reads and writes the ConfigMap.
//
// Wirespan's part of a Corefile is one server block between two marker
// comment lines, and nothing outside them is ever changed:
//
//	.:53 {                       ← the cluster's own blocks, left as they are
//	    ...
//	}
//	                             ← one blank line, added with the block
//	# wirespan: begin clusterset.local (managed by wirespan-operator --coredns-forward)
//	clusterset.local:53 {
//	    errors
//	    cache 5
//	    forward . 10.0.0.11:5353 10.0.0.12:5353 {
//	        policy sequential
//	    }
//	}
//	# wirespan: end
//
// Ensure writes that block (in place if it is there, else at the end) and
// Remove takes it out again with the blank line before it, so Remove after
// Ensure gives back the original text byte for byte. Both are idempotent.
//
// Ensure reads the Corefile's server blocks (a small tokenizer following
// CoreDNS's: quotes, comments, braces) for two reasons: the new block
// listens on the same port as the root zone's block, and a block for the
// zone that someone wrote by hand must not get a twin, because CoreDNS
// refuses to start with the same zone twice on one port.
package coredns
