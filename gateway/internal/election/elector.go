package election

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/internal/version"
)

// Config configures an Elector.
type Config struct {
	// Lease is the Lease that fences the active role.
	Lease types.NamespacedName
	// Identity is this node's name, written as the Lease's holder.
	Identity string
	// Duration is how long a standby waits without seeing a renewal before
	// it takes the role; RenewPeriod how often the holder renews and a
	// candidate reads the Lease.
	Duration    time.Duration
	RenewPeriod time.Duration
	// Reader reads the Lease from the API server, not from a cache: a
	// candidate must see renewals as they happen.
	Reader client.Reader
	Writer client.Writer
	Log    logr.Logger
	// AfterOutage is how much longer than Duration a standby waits after
	// the API server answers it again: the holder may need that long to
	// renew (a gateway restarted during the outage first builds its
	// caches), and taking the role from a holder that is alive moves
	// traffic for nothing.
	AfterOutage time.Duration
	// StaleWatch is how long a node that is not a candidate trusts a watch
	// that shows nothing. A live holder renews every RenewPeriod, so such
	// a watch may be broken: client-go re-establishes a watch with a
	// backoff of up to 30 s after a long API server outage, and a role
	// that moved meanwhile would reach the node agent that late. The node
	// then reads the Lease itself: every StaleWatch while the Lease
	// changes, less and less often (up to a minute) while it does not,
	// and not at all once the watch shows an event again. Zero: 5 s, or 5
	// RenewPeriods if longer.
	StaleWatch time.Duration
	// Metrics may be nil.
	Metrics *Metrics
	// Version is this gateway's version, which the holder writes in the
	// Lease's wirespan.io/version annotation on every write, so that a
	// reader of the Lease (kubectl wirespan diagnose) learns what the
	// active gateway runs without a port of its own. Empty: the binary's
	// (version.Get).
	Version string
}

// Elector runs one node's candidacy. Create it with New, feed it the
// Lease's watch events with Observe, say whether the node may hold the role
// with SetCandidate, and run it with Start.
type Elector struct {
	cfg     Config
	wake    chan struct{}
	changed chan struct{}

	mu        sync.Mutex
	candidate bool
	// candidateSet: SetCandidate has been called. Until then this node
	// writes nothing: a restarted holder must not give up the Lease it
	// finds itself holding before it knows whether it may keep it.
	candidateSet bool
	// successors are the other gateway nodes, in the order a handover
	// names them; stopping: the process is going away.
	successors []string
	stopping   bool
	// leading: this node holds the Lease. While it hands over (drainUntil
	// set), it keeps carrying traffic until the Lease changes from what
	// its handover wrote (handedVersion: the successor took it) or
	// Duration passes, so a planned handover loses nothing.
	leading       bool
	drainUntil    time.Time
	handedVersion string
	obs           Observation
	lease         *coordinationv1.Lease // the last version read or written
	watched       string                // the holder the watch last showed
	watchSeen     bool                  // the watch has shown the Lease
	lastRenew     time.Time
	apiDown       bool
	lastErr       string
	// lastEvent is when the watch last showed the Lease, readAt when this
	// node last read it; the newer says who holds it (observedHolder).
	// A node agent whose watch showed nothing for StaleWatch reads the
	// Lease itself (staleWatch): at nextFallback, every fallbackEvery.
	lastEvent, readAt   time.Time
	nextFallback        time.Time
	fallbackEvery       time.Duration
	fallbackReadVersion string
}

// New returns an Elector that is not yet a candidate.
func New(cfg Config) *Elector {
	if cfg.Version == "" {
		cfg.Version = version.Get()
	}
	if cfg.StaleWatch == 0 {
		cfg.StaleWatch = max(5*time.Second, 5*cfg.RenewPeriod)
	}
	return &Elector{cfg: cfg, wake: make(chan struct{}, 1), changed: make(chan struct{}, 1)}
}

// Changed receives when the active node, as this node sees it, may have
// changed.
func (e *Elector) Changed() <-chan struct{} { return e.changed }

// NeedLeaderElection is false: the Elector is the election.
func (e *Elector) NeedLeaderElection() bool { return false }

// SetCandidate says whether this node may hold the role. Giving it up while
// holding the Lease releases it.
func (e *Elector) SetCandidate(ok bool) {
	e.mu.Lock()
	changed := e.candidate != ok || !e.candidateSet
	e.candidate, e.candidateSet = ok, true
	e.mu.Unlock()
	if changed {
		poke(e.wake)
	}
}

// SetSuccessors names the other gateway nodes. A holder that gives the
// role up hands the Lease to the first of them, which takes it at once; with
// none, a holder that stops keeps the Lease, so that it takes the role
// straight back when it starts again and nothing moves.
func (e *Elector) SetSuccessors(nodes []string) {
	e.mu.Lock()
	e.successors = slices.Clone(nodes)
	e.mu.Unlock()
}

// Observe takes a Lease from the watch. When the holder changed, a
// candidate reads the Lease again at once (its reads, not the watch, drive
// its decisions, so they are never out of order); any other node takes the
// holder from it.
func (e *Elector) Observe(l *coordinationv1.Lease) {
	holder := ""
	if l != nil && l.Spec.HolderIdentity != nil {
		holder = *l.Spec.HolderIdentity
	}
	e.mu.Lock()
	changed := e.watched != holder || !e.watchSeen
	e.watched, e.watchSeen = holder, true
	e.lastEvent = time.Now()
	e.fallbackEvery, e.nextFallback = 0, time.Time{}
	e.mu.Unlock()
	// A renewal alone changes nothing a candidate acts on at once (it
	// reads every RenewPeriod anyway); a new holder, such as a successor
	// named in a handover, is read now.
	if changed {
		poke(e.wake)
		poke(e.changed)
	}
}

// Confirmed says whether this node holds the Lease and renewed it within
// Duration. A holder whose renewals fail keeps the role (see the package
// comment) but cannot know whether a standby took it meanwhile: it is not
// confirmed.
func (e *Elector) Confirmed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leading && time.Since(e.lastRenew) < e.cfg.Duration
}

// Known says whether this node has learned who holds the Lease (or that
// nobody does) since it started. Until then Active says nothing.
func (e *Elector) Known() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.obs.Known || e.watchSeen
}

// Active is the node that carries the cluster's traffic as this node sees
// it, "" when none is known.
func (e *Elector) Active() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.activeLocked(time.Now())
}

func (e *Elector) activeLocked(now time.Time) string {
	if e.leading || e.handingOver(now) {
		return e.cfg.Identity
	}
	return e.observedHolder()
}

// handingOver: this node gave the Lease away and nobody has written it
// since, for at most Duration.
func (e *Elector) handingOver(now time.Time) bool {
	return now.Before(e.drainUntil) && e.obs.Record.Version == e.handedVersion
}

// observedHolder is the holder from this node's own reads while it is a
// candidate (or draining), from the watch otherwise (and from the first
// read until the watch has shown the Lease, and from a read of a node
// agent whose watch went quiet until the watch shows the Lease again).
func (e *Elector) observedHolder() string {
	fromReads := e.candidate || !e.drainUntil.IsZero() || !e.watchSeen || e.readAt.After(e.lastEvent)
	if fromReads && e.obs.Known {
		if !e.obs.Record.Exists {
			return ""
		}
		return e.obs.Record.Holder
	}
	return e.watched
}

// Start runs the candidacy until ctx is done, then hands the Lease to a
// successor if it holds it and carries traffic until the successor takes
// it (at most Duration), so that a rollout hands over without a gap.
func (e *Elector) Start(ctx context.Context) error {
	tick := time.NewTicker(e.cfg.RenewPeriod)
	defer tick.Stop()
	for {
		e.step(ctx)
		select {
		case <-ctx.Done():
			e.stop()
			return nil
		case <-e.wake:
		case <-tick.C:
		}
	}
}

// stop hands the Lease over on the way out and waits for the successor.
func (e *Elector) stop() {
	e.mu.Lock()
	e.stopping = true
	e.mu.Unlock()
	e.SetCandidate(false)
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Duration)
	defer cancel()
	e.step(ctx)
	for e.draining(time.Now()) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(e.cfg.RenewPeriod / 4):
		}
		e.read(ctx)
	}
}

func (e *Elector) draining(now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.handingOver(now)
}

// step reads the Lease when needed and carries out one decision.
func (e *Elector) step(ctx context.Context) {
	e.mu.Lock()
	stale := e.staleWatch(time.Now())
	needRead := (e.candidate && !e.leading) || !e.obs.Known || (e.leading && e.lease == nil) || (!e.drainUntil.IsZero() && time.Now().Before(e.drainUntil)) || stale
	holder := e.observedHolder()
	e.mu.Unlock()
	if needRead {
		e.read(ctx)
	}
	if stale {
		e.afterFallbackRead(holder)
	}
	e.mu.Lock()
	if !e.candidateSet || (e.apiDown && !e.leading) {
		// A candidate acts only on what it just read: a write based on an
		// old read could land the moment the API server comes back,
		// before the holder's first renewal.
		e.mu.Unlock()
		return
	}
	in := Input{
		Identity: e.cfg.Identity, Candidate: e.candidate, Observed: e.obs, LastRenew: e.lastRenew,
		Now: time.Now(), Duration: e.cfg.Duration, RenewPeriod: e.cfg.RenewPeriod,
	}
	if e.leading && e.lease != nil {
		// The holder's own writes are its observation: it does not read
		// between renewals.
		in.Observed = Observation{Known: true, Record: recordOf(e.lease), Since: e.lastRenew}
	}
	e.mu.Unlock()
	switch action := Decide(in); action {
	case Create, Acquire, Renew, Release:
		e.write(ctx, action, in.Now)
	}
}

// staleWatch says whether this node agent should read the Lease itself
// now: its watch has shown nothing for StaleWatch (see Config.StaleWatch).
func (e *Elector) staleWatch(now time.Time) bool {
	return !e.candidate && !e.leading && e.watchSeen && e.drainUntil.IsZero() &&
		now.Sub(e.lastEvent) >= e.cfg.StaleWatch && !now.Before(e.nextFallback)
}

// afterFallbackRead schedules the next read of a node agent whose watch is
// quiet, and tells the syncer when the read found another holder than it
// knew. A Lease that changed since the last such read is alive while the
// watch shows nothing: read again in StaleWatch. One that did not change
// (nobody renews it) is read less and less often; a failed read is tried
// again in StaleWatch.
func (e *Elector) afterFallbackRead(before string) {
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.apiDown || e.fallbackEvery == 0 || e.obs.Record.Version != e.fallbackReadVersion:
		e.fallbackEvery = e.cfg.StaleWatch
	default:
		e.fallbackEvery = min(2*e.fallbackEvery, time.Minute)
	}
	e.fallbackReadVersion = e.obs.Record.Version
	e.nextFallback = now.Add(e.fallbackEvery)
	if after := e.observedHolder(); after != before {
		e.cfg.Log.Info("the Lease's watch showed nothing for a while; read the Lease instead", "holder", after, "was", before)
		poke(e.changed)
	}
}

// read gets the Lease from the API server and updates the observation.
func (e *Elector) read(ctx context.Context) {
	var l coordinationv1.Lease
	err := e.cfg.Reader.Get(ctx, e.cfg.Lease, &l)
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	var rec Record
	switch {
	case apierrors.IsNotFound(err):
		e.lease = nil
	case err != nil:
		e.apiDown = true
		e.noteErrLocked(fmt.Errorf("read Lease %s: %w", e.cfg.Lease, err))
		return
	default:
		e.lease = &l
		rec = recordOf(&l)
	}
	e.lastErr = ""
	e.readAt = now
	if !e.obs.Known {
		poke(e.changed)
	}
	switch {
	case e.apiDown:
		// Silence is counted only while the API server answers, and the
		// holder gets AfterOutage to come back.
		e.obs.Since = now.Add(e.cfg.AfterOutage)
	case !e.obs.Known || rec != e.obs.Record:
		e.obs.Since = now
	}
	e.apiDown = false
	e.obs.Record, e.obs.Known = rec, true
	if e.leading && rec.Holder != e.cfg.Identity {
		e.leading, e.lastRenew = false, time.Time{}
		e.cfg.Log.Info("another gateway holds the Lease: this one is no longer active", "holder", rec.Holder)
		e.cfg.Metrics.transition("lost")
		poke(e.changed)
	}
	if !e.drainUntil.IsZero() && !e.handingOver(now) {
		e.drainUntil, e.handedVersion = time.Time{}, ""
		poke(e.changed)
	}
}

// write carries out a Create, Acquire, Renew or Release.
func (e *Elector) write(ctx context.Context, action Action, now time.Time) {
	e.mu.Lock()
	var l *coordinationv1.Lease
	if e.lease != nil {
		l = e.lease.DeepCopy()
	}
	successor := ""
	if len(e.successors) > 0 {
		successor = e.successors[0]
	}
	if action == Release && successor == "" && e.stopping {
		// Nobody to hand over to: keep the Lease, and take the role back
		// at once on the next start (a restart changes nothing).
		e.leading, e.lastRenew = false, time.Time{}
		e.mu.Unlock()
		e.cfg.Log.Info("stopping with no other gateway to hand over to: the Lease stays with this node until it starts again")
		return
	}
	e.mu.Unlock()
	if action == Create {
		l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: e.cfg.Lease.Name, Namespace: e.cfg.Lease.Namespace}}
	}
	if l == nil {
		return
	}
	stamp := metav1.NewMicroTime(now)
	spec := &l.Spec
	switch action {
	case Create, Acquire:
		if spec.HolderIdentity == nil || *spec.HolderIdentity != e.cfg.Identity {
			spec.LeaseTransitions = ptr.To(ptr.Deref(spec.LeaseTransitions, 0) + 1)
			spec.AcquireTime = &stamp
		}
		spec.HolderIdentity = ptr.To(e.cfg.Identity)
		// The field holds whole seconds; the candidates use Duration
		// itself, which they all get from the same flag.
		spec.LeaseDurationSeconds = ptr.To(int32(math.Ceil(e.cfg.Duration.Seconds())))
		spec.RenewTime = &stamp
		metav1.SetMetaDataAnnotation(&l.ObjectMeta, wirespanv1alpha1.AnnotationVersion, e.cfg.Version)
	case Renew:
		spec.RenewTime = &stamp
		// Set on renewals too: a Lease taken over from a gateway that
		// wrote no version (an older release) gets one without a new
		// holder, and the annotation costs no extra write.
		metav1.SetMetaDataAnnotation(&l.ObjectMeta, wirespanv1alpha1.AnnotationVersion, e.cfg.Version)
	case Release:
		// The Lease names the successor from now on, whose version this
		// node does not know: it writes its own when it takes the Lease.
		delete(l.Annotations, wirespanv1alpha1.AnnotationVersion)
		// Handing over names the successor, which takes the Lease at once
		// (a holder that finds itself named renews without waiting); a
		// successor that is not there leaves it silent, and another
		// standby takes it after Duration.
		if spec.HolderIdentity == nil || successor != *spec.HolderIdentity {
			spec.LeaseTransitions = ptr.To(ptr.Deref(spec.LeaseTransitions, 0) + 1)
		}
		spec.HolderIdentity = ptr.To(successor)
		spec.RenewTime = &stamp
	}
	var err error
	if action == Create {
		err = e.cfg.Writer.Create(ctx, l)
	} else {
		err = e.cfg.Writer.Update(ctx, l)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		e.cfg.Metrics.writeFailed(action)
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err) {
			// Someone else wrote first: read again before deciding. A
			// holder steps down only if the read shows another holder.
			e.lease = nil
			poke(e.wake)
			return
		}
		// The API server is unreachable or refused: the holder keeps the
		// role (see the package comment) and tries again next period.
		e.noteErrLocked(fmt.Errorf("%s Lease %s: %w", action, e.cfg.Lease, err))
		if action == Release {
			// Could not hand over: stop holding; the Lease still names
			// this node, so a standby takes it after Duration.
			e.leading, e.lastRenew = false, time.Time{}
			poke(e.changed)
		}
		return
	}
	e.lastErr = ""
	e.lease = l
	e.obs = Observation{Known: true, Record: recordOf(l), Since: now}
	switch action {
	case Create, Acquire:
		if !e.leading {
			e.cfg.Log.Info("this gateway is now active", "lease", e.cfg.Lease.String())
			e.cfg.Metrics.transition("acquired")
			poke(e.changed)
		}
		e.leading, e.lastRenew = true, now
	case Renew:
		e.lastRenew = now
	case Release:
		e.leading, e.lastRenew = false, time.Time{}
		e.drainUntil, e.handedVersion = now.Add(e.cfg.Duration), l.ResourceVersion
		e.cfg.Log.Info("handed the Lease over; carrying traffic until the successor takes it", "lease", e.cfg.Lease.String(), "successor", successor)
		e.cfg.Metrics.transition("released")
		poke(e.changed)
	}
}

// noteErrLocked logs an error once until it changes or clears.
func (e *Elector) noteErrLocked(err error) {
	if msg := err.Error(); msg != e.lastErr {
		e.lastErr = msg
		e.cfg.Log.Error(err, "lease; the active role stays where it is until the API server answers")
	}
}

func recordOf(l *coordinationv1.Lease) Record {
	return Record{Exists: true, Holder: ptr.Deref(l.Spec.HolderIdentity, ""), Version: l.ResourceVersion}
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
