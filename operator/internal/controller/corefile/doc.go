// Package corefile holds the operator's Corefile controller. It keeps
// Wirespan's clusterset.local forwarding block in the CoreDNS ConfigMap's
// Corefile as the operator's flags say: present, forwarding to the
// --coredns-forward upstreams, when that flag is set; absent when it is
// empty. Running the operator without the flag is therefore how the block
// is taken out again.
//
//	CoreDNS ConfigMap ──► Reconcile ──► coredns.Ensure / coredns.Remove
//	(the one object           │          (pure, on the Corefile text)
//	 the cache holds)         └──► Update, only when the text changed
//
// CoreDNS's reload plugin notices the new Corefile; this package never
// restarts CoreDNS. Nothing outside Wirespan's marker lines is changed, and
// a Corefile the package cannot edit safely (a block for the zone written
// by hand, damaged markers, text that does not parse) is logged and left
// alone until it changes.
package corefile
