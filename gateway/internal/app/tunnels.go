package app

import (
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wirespan/wirespan/gateway/internal/agent"
	"github.com/wirespan/wirespan/gateway/internal/tunnelwatch"
)

// tunnelCheckInterval is how often the active gateway samples its
// WireGuard counters for sessions that stopped answering; a quarter of
// tunnelwatch's shortest wait, so a stall is seen within a quarter more.
const tunnelCheckInterval = 250 * time.Millisecond

// tunnels restarts the active gateway's WireGuard sessions that carry
// traffic one way only (package tunnelwatch says which and why).
type tunnels struct {
	watch *tunnelwatch.Watch
	// names are the peers' cluster names, from the last plan, for the log
	// and the metric.
	names map[wgtypes.Key]string
	now   func() time.Time
}

func newTunnels() *tunnels {
	return &tunnels{watch: tunnelwatch.New(tunnelwatch.Defaults), names: map[wgtypes.Key]string{}, now: time.Now}
}

// learn takes the peers' names from the plan this gateway applied.
func (t *tunnels) learn(plan agent.Plan) {
	clear(t.names)
	for _, p := range plan.Peers {
		t.names[p.Key] = p.Cluster
	}
}

// checkTunnels samples the device and restarts the peers that stopped
// answering. It runs between syncs, on the syncer's goroutine, so it never
// races an apply; on a node that is not the active gateway it only forgets
// what it saw, so a new device starts every clock afresh.
func (s *syncer) checkTunnels() {
	if !s.role.running() {
		s.tunnels.watch.Reset()
		return
	}
	name := s.opts.Agent.WireGuardName
	dev, err := s.kernel.Device(name)
	if err != nil {
		// The next sync reports and repairs a missing device.
		return
	}
	stalled := s.tunnels.watch.Stalled(dev.Peers, s.tunnels.now())
	if len(stalled) == 0 {
		return
	}
	keys := make([]wgtypes.Key, 0, len(stalled))
	for _, r := range stalled {
		keys = append(keys, r.Key)
		peer := s.tunnels.names[r.Key]
		s.metrics.tunnelRestarts.WithLabelValues(peer).Inc()
		log := s.log
		if r.Attempt > 1 {
			// A peer that stays silent (a remote cluster that is down) is
			// logged once, at its first restart.
			log = log.V(1)
		}
		log.Info("restarting the WireGuard session with a peer that stopped answering", "peer", peer, "attempt", r.Attempt)
	}
	if err := s.applier.RestartPeers(name, keys); err != nil {
		s.log.Error(err, "restart WireGuard sessions; WireGuard retries on its own")
	}
}
