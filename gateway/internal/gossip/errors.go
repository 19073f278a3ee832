package gossip

import "errors"

// Reasons a received message is dropped. Every error returned by Decode, and
// by the merge of a decoded state, wraps exactly one of them, so a caller can
// count drops by reason with errors.Is.
var (
	// ErrMalformed: the message does not follow the wire format (truncated,
	// trailing bytes, bad name, non-canonical prefix, invalid JSON, MACs out
	// of order...).
	ErrMalformed = errors.New("malformed gossip message")
	// ErrTooLarge: the message, a list in it or its exports exceed a limit.
	ErrTooLarge = errors.New("gossip message too large")
	// ErrUnknownVersion: the magic is right but the format version is not
	// one this code speaks.
	ErrUnknownVersion = errors.New("unknown gossip format version")
	// ErrUnknownSender: the message speaks for a cluster that is not a
	// known peer (not in Git, forgotten, or our own cluster).
	ErrUnknownSender = errors.New("gossip message from unknown cluster")
	// ErrNoMAC: the sender is known but the message carries no MAC for our
	// cluster; usually the sender's view of Git lags behind ours.
	ErrNoMAC = errors.New("gossip message carries no MAC for this cluster")
	// ErrBadMAC: the MAC for our cluster does not match: the message was not
	// produced with the sender cluster's key (forged or corrupted).
	ErrBadMAC = errors.New("gossip message MAC mismatch")
	// ErrReplay: the message comes from an epoch (a boot) of its sender
	// that a later epoch has replaced: a replay, or a gateway that lost a
	// failover and still talks.
	ErrReplay = errors.New("gossip message from a retired epoch")
	// ErrUnproven: the message is authentic but does not echo this
	// gateway's epoch, so it may have been recorded before this gateway
	// started; usually the sender has not heard from us yet.
	ErrUnproven = errors.New("gossip message not proven fresh")
	// ErrStale: the state is older than one already accepted for its cluster.
	ErrStale = errors.New("stale gossip state")
	// ErrDuplicate: the state has the version already held. This is the
	// normal outcome of periodic push/pull and is not a fault.
	ErrDuplicate = errors.New("duplicate gossip state")
)

// Result labels of wirespan_gossip_messages_received_total.
const (
	resultAccepted       = "accepted"
	resultDuplicate      = "duplicate"
	resultStale          = "stale"
	resultMalformed      = "malformed"
	resultTooLarge       = "too_large"
	resultUnknownVersion = "unknown_version"
	resultUnknownSender  = "unknown_sender"
	resultNoMAC          = "no_mac"
	resultBadMAC         = "bad_mac"
	resultReplay         = "replay"
	resultUnproven       = "unproven"
)

// results lists every result label, so that all series exist from the start.
var results = []string{
	resultAccepted, resultDuplicate, resultStale, resultMalformed, resultTooLarge,
	resultUnknownVersion, resultUnknownSender, resultNoMAC, resultBadMAC, resultReplay, resultUnproven,
}

// resultOf maps the outcome of receiving one message to its metric label.
func resultOf(err error) string {
	switch {
	case err == nil:
		return resultAccepted
	case errors.Is(err, ErrDuplicate):
		return resultDuplicate
	case errors.Is(err, ErrStale):
		return resultStale
	case errors.Is(err, ErrTooLarge):
		return resultTooLarge
	case errors.Is(err, ErrUnknownVersion):
		return resultUnknownVersion
	case errors.Is(err, ErrUnknownSender):
		return resultUnknownSender
	case errors.Is(err, ErrNoMAC):
		return resultNoMAC
	case errors.Is(err, ErrBadMAC):
		return resultBadMAC
	case errors.Is(err, ErrReplay):
		return resultReplay
	case errors.Is(err, ErrUnproven):
		return resultUnproven
	default:
		return resultMalformed
	}
}
