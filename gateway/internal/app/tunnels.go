package app

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wirespan/wirespan/gateway/internal/agent"
	"github.com/wirespan/wirespan/gateway/internal/dataplane"
	"github.com/wirespan/wirespan/gateway/internal/probe"
	"github.com/wirespan/wirespan/gateway/internal/tunnelwatch"
)

// tunnelCheckInterval is how often the active gateway samples its
// WireGuard counters; a quarter of tunnelwatch's shortest wait, so a stall
// is seen within a quarter more.
const tunnelCheckInterval = 125 * time.Millisecond

// isolatedAfter is how long every peer must have been silent, while the
// Lease cannot be renewed, for the active gateway to count itself cut off:
// two gossip heartbeats, so a slow machine is not taken for a cut one.
const isolatedAfter = 2 * time.Second

// tunnels watches the active gateway's WireGuard sessions between syncs:
// it restarts those that carry traffic one way only (package tunnelwatch
// says which and why), and turns the gateway passive while it is cut off
// (agent.Passive).
//
// It runs on a goroutine of its own: a sync can hang for as long as the
// API server does not answer, which is exactly when a cut-off gateway must
// stop dialing. mu serializes its kernel writes with the sync's apply.
type tunnels struct {
	device  string
	applier *dataplane.Applier
	kernel  dataplane.Kernel
	log     logr.Logger
	metrics *metrics
	wake    func()
	// confirmed says whether this node's hold on the role is confirmed
	// (election.Elector.Confirmed; a test's fake); now is the clock.
	confirmed func() bool
	now       func() time.Time

	mu    sync.Mutex
	watch *tunnelwatch.Watch
	// names are the peers' cluster names, from the last plan, for the log
	// and the metric.
	names map[wgtypes.Key]string
	// passive: this gateway is cut off and starts no handshake.
	passive bool
	// natted: this cluster is behind NAT (no endpoint in its ClusterPeer),
	// or no plan has said yet that it is not (a gateway that put its kept
	// state back during an API server outage). Nobody can dial in to such
	// a cluster, so it never turns passive: a passive gateway behind NAT
	// would stay silent until its API server answers.
	natted bool
}

// learn takes the peers' names from the plan this gateway applies, and
// whether the cluster has an endpoint peers can dial.
func (t *tunnels) learn(plan agent.Plan, selfHasEndpoint bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.natted = !selfHasEndpoint
	clear(t.names)
	for _, p := range plan.Peers {
		t.names[p.Key] = p.Cluster
	}
}

// apply applies plan's state with f, made passive if the gateway is,
// with no check in between.
func (t *tunnels) apply(plan agent.Plan, f func(dataplane.State) ([]string, error)) ([]string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := plan.State
	if t.passive && plan.Role == agent.RoleGateway {
		st = agent.Passive(st)
	}
	return f(st)
}

// isPassive says whether the gateway is passive now.
func (t *tunnels) isPassive() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.passive
}

// run checks the tunnels every tunnelCheckInterval until ctx is done.
func (t *tunnels) run(ctx context.Context) {
	tick := time.NewTicker(tunnelCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.check()
		}
	}
}

// check samples the device, turns the gateway passive when it is cut off
// and back when it is not, and restarts the peers that stopped answering.
// On a node with no WireGuard device it only forgets what it saw, so a new
// device starts every clock afresh.
//
// Restarts need a confirmed role (a renewal within the Lease duration): a
// holder that cannot renew may have been replaced, and a handshake it
// starts would take the peers' traffic from its successor.
func (t *tunnels) check() {
	t.mu.Lock()
	defer t.mu.Unlock()
	dev, err := t.kernel.Device(t.device)
	if err != nil {
		// Not the active gateway (or its device is missing, which the
		// next sync reports and repairs).
		t.watch.Reset()
		t.passive = false
		return
	}
	now := t.now()
	stalled := t.watch.Stalled(dev.Peers, now)
	confirmed := t.confirmed()
	isolated := !confirmed && !t.natted && len(dev.Peers) > 0 && now.Sub(t.watch.Heard()) > isolatedAfter
	if isolated != t.passive {
		t.passive = isolated
		if isolated {
			t.log.Info("cut off: the Lease cannot be renewed and no peer has been heard; WireGuard starts no handshake until one of them answers again, and answers peers that dial in",
				"silentFor", now.Sub(t.watch.Heard()).Round(time.Millisecond))
			if err := t.applier.Silence(t.device); err != nil {
				t.log.Error(err, "silence WireGuard")
			}
		} else {
			t.log.Info("no longer cut off; WireGuard dials its peers again", "confirmed", confirmed)
		}
		t.wake()
	}
	if !confirmed || t.passive || len(stalled) == 0 {
		return
	}
	keys := make([]wgtypes.Key, 0, len(stalled))
	for _, r := range stalled {
		keys = append(keys, r.Key)
		peer := t.names[r.Key]
		t.metrics.tunnelRestarts.WithLabelValues(peer).Inc()
		log := t.log
		if r.Attempt > 1 {
			// A peer that stays silent (a remote cluster that is down) is
			// logged once, at its first restart.
			log = log.V(1)
		}
		log.Info("restarting the WireGuard session with a peer that stopped answering", "peer", peer, "attempt", r.Attempt)
	}
	if err := t.applier.RestartPeers(t.device, keys); err != nil {
		t.log.Error(err, "restart WireGuard sessions; WireGuard retries on its own")
	}
}

// newTunnels watches the device of s's gateway.
func newTunnels(s *syncer, confirmed func() bool) *tunnels {
	return &tunnels{
		device: s.opts.Agent.WireGuardName, applier: s.applier, kernel: s.kernel, log: s.log, metrics: s.metrics,
		wake: s.wake, confirmed: confirmed, now: time.Now, natted: true,
		watch: tunnelwatch.New(tunnelwatch.Defaults), names: map[wgtypes.Key]string{},
	}
}

// peerStats returns the device's figures of each peer, by cluster (a
// ProbeRequest's view of the tunnels).
func (t *tunnels) peerStats() (map[string]probe.PeerStats, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	dev, err := t.kernel.Device(t.device)
	if err != nil {
		return nil, err
	}
	out := make(map[string]probe.PeerStats, len(dev.Peers))
	for _, p := range dev.Peers {
		if name, ok := t.names[p.PublicKey]; ok {
			out[name] = probe.PeerStats{LastHandshake: p.LastHandshakeTime, Received: p.ReceiveBytes}
		}
	}
	return out, nil
}

// rehandshake restarts the session with the named peer at once, for a
// ProbeRequest that asks whether its endpoint answers. It needs what
// check's restarts need, a confirmed role and a gateway that is not
// passive, for the same reason.
func (t *tunnels) rehandshake(cluster string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.passive || !t.confirmed() {
		return errors.New("this gateway cannot renew the Lease now, so it starts no handshake (it could take the peers' traffic from a successor)")
	}
	for key, name := range t.names {
		if name == cluster {
			t.metrics.tunnelRestarts.WithLabelValues(name).Inc()
			return t.applier.RestartPeers(t.device, []wgtypes.Key{key})
		}
	}
	return fmt.Errorf("no tunnel to %s", cluster)
}
