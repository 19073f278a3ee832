package gossip

import (
	"errors"

	"github.com/hashicorp/memberlist"
)

// delegate receives memberlist's callbacks. memberlist is only a transport
// here: it hands over Wirespan's messages (NotifyMsg) and is refused every
// other member (NotifyAlive, NotifyMerge), so that nothing a packet claims
// about membership is ever believed.
type delegate struct{ g *Gossip }

var (
	_ memberlist.Delegate      = delegate{}
	_ memberlist.AliveDelegate = delegate{}
	_ memberlist.MergeDelegate = delegate{}
)

// errNotAMember is what memberlist is told about every other node.
var errNotAMember = errors.New("wirespan decides membership from authenticated messages")

// NodeMeta implements memberlist.Delegate; members carry no metadata.
func (delegate) NodeMeta(int) []byte { return nil }

// NotifyMsg implements memberlist.Delegate: a message sent to us directly.
func (d delegate) NotifyMsg(b []byte) { d.g.receive(b) }

// GetBroadcasts implements memberlist.Delegate. Nothing is broadcast (or
// relayed): each gateway sends its own messages directly.
func (delegate) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState implements memberlist.Delegate. memberlist's push/pull is off
// and refused: it cannot tell whom it exchanges with, and snapshots go
// only to verified peers.
func (delegate) LocalState(bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate; see LocalState.
func (delegate) MergeRemoteState([]byte, bool) {}

// NotifyAlive implements memberlist.AliveDelegate: only we are a member of
// our memberlist. (The guard already refuses alive messages; this holds
// for any that memberlist builds itself.)
func (d delegate) NotifyAlive(n *memberlist.Node) error {
	if n.Name == d.g.name {
		return nil
	}
	return errNotAMember
}

// NotifyMerge implements memberlist.MergeDelegate: no push/pull merges.
func (delegate) NotifyMerge([]*memberlist.Node) error { return errNotAMember }
