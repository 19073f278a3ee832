package gossip

import (
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate receives memberlist's callbacks. Some of them (the Notify*
// events) run under memberlist's node lock: they only update Gossip's own
// fields and wake the sender, never call back into memberlist.
type delegate struct{ g *Gossip }

var (
	_ memberlist.Delegate      = delegate{}
	_ memberlist.EventDelegate = delegate{}
	_ memberlist.PingDelegate  = delegate{}
)

// NodeMeta implements memberlist.Delegate; members carry no metadata.
func (delegate) NodeMeta(int) []byte { return nil }

// NotifyMsg implements memberlist.Delegate: a state sent with SendReliable.
func (d delegate) NotifyMsg(b []byte) { d.g.dispatch(b) }

// GetBroadcasts implements memberlist.Delegate. States are not broadcast
// (and never relayed): each node sends its own directly and in push/pull.
func (delegate) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState implements memberlist.Delegate: our own state, authenticated
// for every known peer, for a push/pull exchange; bundled with the snapshot
// of our exports once we speak for them.
func (d delegate) LocalState(bool) []byte {
	d.g.mu.Lock()
	defer d.g.mu.Unlock()
	if snap := d.g.snapshotLocked(); snap != nil {
		return bundle(d.g.sealed, snap)
	}
	return slices.Clone(d.g.sealed)
}

// MergeRemoteState implements memberlist.Delegate: the other side's own
// state from a push/pull exchange (empty if it has none yet).
func (d delegate) MergeRemoteState(b []byte, _ bool) {
	if len(b) > 0 {
		d.g.dispatch(b)
	}
}

// NotifyJoin implements memberlist.EventDelegate.
func (d delegate) NotifyJoin(n *memberlist.Node) {
	g := d.g
	g.mu.Lock()
	g.members[n.Name] = copyNode(n)
	g.metrics.members.Set(float64(len(g.members)))
	if n.Name != g.name {
		g.out.join(copyNode(n))
		g.exp.snapshotTo[n.Name] = copyNode(n)
	}
	if cluster, _, ok := splitName(n.Name); ok {
		delete(g.exp.goneAt, cluster)
	}
	g.mu.Unlock()
	g.log.V(1).Info("Gossip member joined", "member", n.Name, "addr", addrPort(n))
	g.wake()
	g.signal()
}

// NotifyLeave implements memberlist.EventDelegate: a member left or was
// declared dead.
func (d delegate) NotifyLeave(n *memberlist.Node) {
	g := d.g
	g.mu.Lock()
	delete(g.members, n.Name)
	delete(g.exp.snapshotTo, n.Name)
	if cluster, _, ok := splitName(n.Name); ok {
		g.clusterLeftLocked(cluster)
	}
	g.metrics.members.Set(float64(len(g.members)))
	g.mu.Unlock()
	g.log.V(1).Info("Gossip member left", "member", n.Name)
	g.signal()
}

// NotifyUpdate implements memberlist.EventDelegate (address or metadata
// change).
func (d delegate) NotifyUpdate(n *memberlist.Node) {
	g := d.g
	g.mu.Lock()
	g.members[n.Name] = copyNode(n)
	g.mu.Unlock()
	g.signal()
}

// AckPayload implements memberlist.PingDelegate.
func (delegate) AckPayload() []byte { return nil }

// NotifyPingComplete implements memberlist.PingDelegate: it records the round
// trip to the prober's target, by cluster.
func (d delegate) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, _ []byte) {
	cluster, _, ok := splitName(other.Name)
	if !ok {
		return
	}
	g := d.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.keyring.Has(cluster) {
		g.rtt[cluster] = rtt
	}
}

// receive verifies one message and merges the state it carries.
func (g *Gossip) receive(b []byte) {
	g.mu.Lock()
	s, err := Decode(b, g.keyring)
	if err == nil {
		err = g.remote.merge(s)
	}
	g.metrics.clusters.Set(float64(len(g.remote.states)))
	g.mu.Unlock()

	g.metrics.received.WithLabelValues(resultOf(err)).Inc()
	switch {
	case err == nil:
		g.log.V(1).Info("Gossip state accepted", "cluster", s.Cluster, "version", s.Version)
		g.signal()
	case resultOf(err) == resultDuplicate:
	default:
		g.log.V(1).Info("Gossip message dropped", "reason", resultOf(err), "error", err.Error())
	}
}

func copyNode(n *memberlist.Node) memberlist.Node {
	c := *n
	c.Addr = slices.Clone(n.Addr)
	c.Meta = slices.Clone(n.Meta)
	return c
}
