package gossip

import (
	"maps"
	"sync"

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
	for {
		select {
		case <-g.stop:
			return
		case <-g.kick:
			g.flush()
		}
	}
}

// flush does one round of the outbox's work.
func (g *Gossip) flush() {
	g.mu.Lock()
	o := g.out
	g.out = outbox{}
	msg, kr := g.sealed, g.keyring
	targets := o.joined
	if o.all || len(o.pull) > 0 {
		targets = maps.Clone(g.members)
	}
	g.mu.Unlock()

	var pull []string
	wantPull := map[string]bool{}
	for _, c := range o.pull {
		wantPull[c] = true
	}
	var wg sync.WaitGroup
	for _, n := range targets {
		cluster, _, ok := splitName(n.Name)
		// Members of unknown clusters cannot verify our state: skip them,
		// and our own cluster's other gateways, which do not take it.
		if n.Name == g.name || !ok || cluster == g.cfg.Cluster || !kr.Has(cluster) {
			continue
		}
		if wantPull[cluster] {
			pull = append(pull, addrPort(&n).String())
		}
		if _, joined := o.joined[n.Name]; msg == nil || !(o.all || joined) {
			continue
		}
		wg.Go(func() {
			if err := g.ml.SendReliable(&n, msg); err != nil {
				g.metrics.sent.WithLabelValues("error").Inc()
				g.log.V(1).Info("Send gossip state failed", "member", n.Name, "error", err.Error())
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
}
