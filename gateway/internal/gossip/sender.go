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
	// What each member gets this round, in order: our state, the batches of
	// export changes, our whole export set.
	type delivery struct {
		node     memberlist.Node
		state    bool
		snapshot bool
	}
	plan := map[string]*delivery{}
	get := func(n memberlist.Node) *delivery {
		if d, ok := plan[n.Name]; ok {
			return d
		}
		d := &delivery{node: n}
		plan[n.Name] = d
		return d
	}
	if msg != nil {
		targets := map[string]memberlist.Node{}
		if o.all {
			targets = maps.Clone(g.members)
		} else {
			maps.Copy(targets, o.joined)
			for name := range o.retry {
				if n, ok := g.members[name]; ok { // not dead or gone since
					targets[name] = n
				}
			}
		}
		for _, n := range targets {
			get(n).state = true
		}
	}
	batches := g.batchesLocked()
	if len(batches) > 0 {
		for _, n := range g.members {
			get(n)
		}
	}
	var snapshot []byte
	if len(g.exp.snapshotTo) > 0 {
		if snapshot = g.snapshotLocked(); snapshot != nil {
			for _, n := range g.exp.snapshotTo {
				get(n).snapshot = true
			}
			g.exp.snapshotTo = map[string]memberlist.Node{}
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
		wg           sync.WaitGroup
		mu           sync.Mutex
		failedState  = map[string]memberlist.Node{}
		failedExport = map[string]memberlist.Node{}
	)
	for _, d := range plan {
		n := d.node
		cluster, _, ok := splitName(n.Name)
		// Members of unknown clusters cannot verify our messages: skip
		// them, and our own cluster's other gateways, which do not take
		// them.
		if n.Name == g.name || !ok || cluster == g.cfg.Cluster || !kr.Has(cluster) {
			continue
		}
		wg.Go(func() {
			fail := func(into map[string]memberlist.Node, what string, err error) {
				g.metrics.sent.WithLabelValues("error").Inc()
				g.log.V(1).Info("Send gossip "+what+" failed", "member", n.Name, "error", err.Error())
				mu.Lock()
				into[n.Name] = n
				mu.Unlock()
			}
			if d.state {
				if err := g.ml.SendReliable(&n, msg); err != nil {
					fail(failedState, "state", err)
				} else {
					g.metrics.sent.WithLabelValues("ok").Inc()
				}
			}
			var exports [][]byte
			if d.snapshot {
				// The snapshot holds every change: the batches are moot.
				exports = [][]byte{snapshot}
			} else {
				exports = batches
			}
			for _, m := range exports {
				if err := g.ml.SendReliable(&n, m); err != nil {
					// A lost batch leaves a gap only a snapshot fills.
					fail(failedExport, "exports", err)
					return
				}
				g.metrics.sent.WithLabelValues("ok").Inc()
			}
		})
	}
	wg.Wait()
	if len(pull) > 0 {
		// Join with known members is a push/pull exchange with each.
		if _, err := g.ml.Join(pull); err != nil {
			g.log.V(1).Info("Push/pull with new peers failed", "addrs", pull, "error", err.Error())
		}
	}
	if len(failedState) == 0 && len(failedExport) == 0 {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.out.retry == nil {
		g.out.retry = map[string]memberlist.Node{}
	}
	maps.Copy(g.out.retry, failedState)
	for name, n := range failedExport {
		if _, ok := g.members[name]; ok {
			g.exp.snapshotTo[name] = n
		}
	}
	return true
}
