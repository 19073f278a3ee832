package dataplane

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Kinds of object a Refusal names; they are also the values of the
// refusal metrics' kind label.
const (
	KindLink     = "link"
	KindAddress  = "address"
	KindDevice   = "wireguard"
	KindPeer     = "peer"
	KindRoute    = "route"
	KindRule     = "rule"
	KindNeighbor = "neighbor"
	KindClamp    = "mss-clamp"
	KindGossip   = "gossip-input"
	KindSysctl   = "sysctl"
)

// Refusal is one object Apply could not put in place (or read): the kernel
// refused it, or the device it needs is missing. Apply carries on past it
// and tries it again on the next call.
type Refusal struct {
	// Kind is one of the Kind constants.
	Kind string
	// Object names the object in `ip` words, such as
	// "10.2.0.0/16 dev wirespan0 src 100.96.0.1 table 51820".
	Object string
	// Dst is a refused route's destination, Peer a refused WireGuard
	// peer's key, and Link the link a refused link, address or device
	// setting belongs to, so the caller can tell which remote clusters it
	// concerns.
	Dst  netip.Prefix
	Peer wgtypes.Key
	Link string
	Err  error
}

func (r Refusal) Error() string { return fmt.Sprintf("%s %s: %v", r.Kind, r.Object, r.Err) }
func (r Refusal) Unwrap() error { return r.Err }

// ApplyError is what Apply returns when some objects could not be put in
// place. Everything it does not list was applied.
type ApplyError struct {
	Refused []Refusal
}

func (e *ApplyError) Error() string {
	parts := make([]string, 0, len(e.Refused))
	for _, r := range e.Refused {
		parts = append(parts, r.Error())
	}
	return fmt.Sprintf("%d kernel objects not applied: %s", len(e.Refused), strings.Join(parts, "; "))
}

// Unwrap lets errors.Is and errors.As look at each refusal.
func (e *ApplyError) Unwrap() []error {
	out := make([]error, 0, len(e.Refused))
	for _, r := range e.Refused {
		out = append(out, r)
	}
	return out
}

// RefusalLog remembers the refusals of the last Apply, so that an object
// the kernel refuses on every sync is logged once, when it first fails (or
// fails differently), and once more when it is finally taken, instead of
// once per sync.
type RefusalLog struct {
	last map[string]bool
}

// Update records the refusals of one Apply. It returns those not seen last
// time, and the text of those seen last time that are gone now.
func (l *RefusalLog) Update(refused []Refusal) (appeared []Refusal, cleared []string) {
	now := make(map[string]bool, len(refused))
	for _, r := range refused {
		key := r.Error()
		now[key] = true
		if !l.last[key] {
			appeared = append(appeared, r)
		}
	}
	for key := range l.last {
		if !now[key] {
			cleared = append(cleared, key)
		}
	}
	slices.Sort(cleared)
	l.last = now
	return appeared, cleared
}
