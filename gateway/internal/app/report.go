package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/gateway/internal/agent"
	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

// reporter writes, on each remote ClusterPeer, what the active gateway
// sees of it, and keeps the per-peer metrics.
type reporter struct {
	opts    Options
	writer  client.Client
	metrics *metrics
	// written is when each remote peer's status was last written, so
	// tunnel figures alone are written at most every StatusPeriod.
	written map[string]time.Time
}

// report writes each remote peer's status. dev is the WireGuard device as
// the kernel has it (nil: it could not be read, devErr says why); refused
// are the kernel refusals of this sync's apply, each put on the peer it
// concerns; role gives gossip's view.
func (r *reporter) report(ctx context.Context, w *world, plan agent.Plan, dev *wgtypes.Device, devErr error, refused []dataplane.Refusal, role *activeRole) error {
	var errs []error
	if dev == nil {
		// The kernel may have refused the device: each peer's status
		// still says so (see refused), with no tunnel figures.
		errs = append(errs, fmt.Errorf("read WireGuard device: %w", devErr))
		dev = &wgtypes.Device{}
	}
	now := time.Now()
	selfMismatch := w.self != nil && w.self.Spec.PublicKey != "" && w.self.Spec.PublicKey != w.in.PrivateKey.PublicKey().String()
	r.metrics.reset()
	up := 0
	for _, p := range plan.Peers {
		cp, ok := w.remote[p.Cluster]
		if !ok {
			continue
		}
		obs := agent.Observation{Learned: role.learned(p.Cluster), SelfKeyMismatch: selfMismatch, Now: now, RTT: role.rtt(p.Cluster)}
		for _, f := range refused {
			if p.Concerns(f, r.opts.Agent.WireGuardName) {
				obs.Refused = append(obs.Refused, f)
			}
		}
		if i := slices.IndexFunc(dev.Peers, func(x wgtypes.Peer) bool { return x.PublicKey == p.Key }); i >= 0 && p.Problem == "" {
			obs.WireGuard = &dev.Peers[i]
		}
		r.metrics.peer(p.Cluster, obs.WireGuard, obs.RTT, p.Refused, now)
		want := agent.RemoteStatus(cp.Status, cp.Generation, p, obs)
		if connectedTrue(want.Conditions) {
			up++
		}
		if err := r.writeStatus(ctx, cp, want, now); err != nil {
			errs = append(errs, err)
		}
	}
	r.metrics.peersUp.Set(float64(up))
	return errors.Join(errs...)
}

// writeStatus writes want unless it equals what is there, or differs only
// in tunnel figures written less than StatusPeriod ago.
func (r *reporter) writeStatus(ctx context.Context, cp *wirespanv1alpha1.ClusterPeer, want wirespanv1alpha1.ClusterPeerStatus, now time.Time) error {
	if equality.Semantic.DeepEqual(cp.Status, want) {
		return nil
	}
	// Tunnel figures alone wait for StatusPeriod; the endpoint does not:
	// it is where a gateway that becomes active dials first (endpoints.go).
	figuresOnly := cp.Status.DeepCopy()
	figuresOnly.Tunnel = want.Tunnel.DeepCopy()
	if figuresOnly.Tunnel != nil && cp.Status.Tunnel != nil {
		figuresOnly.Tunnel.Endpoint = cp.Status.Tunnel.Endpoint
	}
	if equality.Semantic.DeepEqual(*figuresOnly, want) && now.Sub(r.written[cp.Name]) < r.opts.StatusPeriod {
		return nil
	}
	updated := cp.DeepCopy()
	updated.Status = want
	err := r.writer.Status().Update(ctx, updated)
	switch {
	case apierrors.IsConflict(err), apierrors.IsNotFound(err):
		// The operator wrote in between, or the peer went; the watch
		// brings us back with the new object.
		return nil
	case err != nil:
		return fmt.Errorf("update status of ClusterPeer %s: %w", cp.Name, err)
	}
	if r.written == nil {
		r.written = map[string]time.Time{}
	}
	r.written[cp.Name] = now
	return nil
}

func connectedTrue(conds []metav1.Condition) bool {
	return meta.IsStatusConditionTrue(conds, wirespanv1alpha1.ConditionConnected)
}
