package gossip

import (
	"maps"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// outbox is the work the sender owes, accumulated (coalesced) under
// Gossip.mu between two rounds.
type outbox struct {
	// all: send our state to every member (it changed, or so did the
	// recipients it is authenticated for).
	all bool
	// joined: members that joined since the last round and get our state.
	joined map[string]memberlist.Node
	// retry: members a direct send failed to reach; tried again after
	// Config.RetryInterval while they are still members, so that a state
	// change is not left to the next push/pull with that member, which in a
	// large pool can be minutes away.
	retry map[string]memberlist.Node
	// pull: clusters just added to the peers. Their members sent us their
	// state before we knew them and will not resend it until it changes,
	// so the sender asks them for a push/pull exchange now.
	pull []string
}

func (o *outbox) join(n memberlist.Node) {
	if o.joined == nil {
		o.joined = map[string]memberlist.Node{}
	}
	o.joined[n.Name] = n
}

// wake tells the sender there is work, without blocking.
func (g *Gossip) wake() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// sendLoop runs the sender until Shutdown. Sends block on TCP connects, so
// they run here rather than in SetLocal or in memberlist's callbacks.
func (g *Gossip) sendLoop() {
	defer close(g.done)
	var retry <-chan time.Time
	for {
		select {
		case <-g.stop:
			return
		case <-g.kick:
		case <-retry:
		}
		retry = nil
		if g.flush() {
			retry = time.After(g.cfg.RetryInterval)
		}
	}
}

// flush does one round of the outbox's work. It reports whether sends
// failed and are to be retried.
func (g *Gossip) flush() bool {
	g.mu.Lock()
	o := g.out
	g.out = outbox{}
	msg, kr := g.sealed, g.keyring
	send := map[string]memberlist.Node{}
	switch {
	case msg == nil:
	case o.all:
		send = maps.Clone(g.members)
	default:
		maps.Copy(send, o.joined)
		for name := range o.retry {
			if n, ok := g.members[name]; ok { // not dead or gone since
				send[name] = n
			}
		}
	}
	var pull []string
	for _, c := range o.pull {
		for _, n := range g.members {
			if cl, _, _ := splitName(n.Name); cl == c {
				pull = append(pull, addrPort(&n).String())
			}
		}
	}
	g.mu.Unlock()

	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed = map[string]memberlist.Node{}
	)
	for _, n := range send {
		cluster, _, ok := splitName(n.Name)
		// Members of unknown clusters cannot verify our state: skip them,
		// and our own cluster's other gateways, which do not take it.
		if n.Name == g.name || !ok || cluster == g.cfg.Cluster || !kr.Has(cluster) {
			continue
		}
		wg.Go(func() {
			if err := g.ml.SendReliable(&n, msg); err != nil {
				g.metrics.sent.WithLabelValues("error").Inc()
				g.log.V(1).Info("Send gossip state failed", "member", n.Name, "error", err.Error())
				mu.Lock()
				failed[n.Name] = n
				mu.Unlock()
				return
			}
			g.metrics.sent.WithLabelValues("ok").Inc()
		})
	}
	wg.Wait()
	if len(pull) > 0 {
		// Join with known members is a push/pull exchange with each.
		if _, err := g.ml.Join(pull); err != nil {
			g.log.V(1).Info("Push/pull with new peers failed", "addrs", pull, "error", err.Error())
		}
	}
	if len(failed) == 0 {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.out.retry == nil {
		g.out.retry = failed
	} else {
		maps.Copy(g.out.retry, failed)
	}
	return true
}
