// Package election decides which of a cluster's gateway nodes is the active
// gateway, fenced by a coordination.k8s.io Lease. Every labeled gateway
// node runs a candidate; the holder renews the Lease every RenewPeriod; a
// standby takes the role once it has seen no renewal for Duration while it
// could reach the API server. The decision is a pure function of what the
// candidate observed (decide); the loop (Elector) only carries it out.
//
// Two choices make it different from client-go's leaderelection:
//
//   - A holder that gives the role up names its successor in the Lease,
//     which takes it at once, and carries traffic until it has; with no
//     successor, a holder that stops keeps the Lease and takes it straight
//     back when it starts again.
//   - The holder never steps down because the API server is unreachable. A
//     gateway that stops carrying traffic when the control plane is down
//     would turn a control-plane outage into a data-plane outage, and no
//     standby can take the role while the API server is down anyway. It
//     steps down when it sees another holder in the Lease, when it is no
//     longer a candidate, and when it stops.
//   - A standby counts the Lease as expired only from what it saw while it
//     could reach the API server: a failed read restarts its clock, so a
//     standby coming back from an outage waits a full Duration for the
//     holder to renew instead of taking the role at once.
package election

import (
	"time"
)

// Record is what a candidate read of the Lease: who holds it and which
// version of the object it is.
type Record struct {
	// Exists is false when there is no Lease object yet.
	Exists bool
	Holder string
	// Version is the object's resourceVersion; a renewal changes it.
	Version string
}

// Observation is a candidate's memory of the Lease.
type Observation struct {
	Record Record
	// Since is when this candidate first saw Record, or regained the API
	// server after a failed read, whichever is later: the holder has been
	// silent at least since then.
	Since time.Time
	// Known is false until the first successful read.
	Known bool
}

// Action is what the candidate does next.
type Action int

// The actions decide returns.
const (
	// Wait: nothing to do until the next read.
	Wait Action = iota
	// Create the Lease, holding it.
	Create
	// Acquire the Lease: write this candidate as holder over Record.Version.
	Acquire
	// Renew the Lease this candidate holds.
	Renew
	// Release the Lease this candidate holds: hand it to a successor
	// (Elector.SetSuccessors), or write no holder.
	Release
)

func (a Action) String() string {
	return [...]string{"wait", "create", "acquire", "renew", "release"}[a]
}

// Input is everything decide depends on.
type Input struct {
	Identity string
	// Candidate is false when this node may not hold the role (no gateway
	// label, no cluster key, shutting down).
	Candidate bool
	Observed  Observation
	// LastRenew is when this candidate's last successful write as holder
	// started; zero when it does not hold the Lease.
	LastRenew   time.Time
	Now         time.Time
	Duration    time.Duration
	RenewPeriod time.Duration
}

// Decide returns the next action.
func Decide(in Input) Action {
	o := in.Observed
	if !o.Known {
		return Wait
	}
	mine := o.Record.Exists && o.Record.Holder == in.Identity
	switch {
	case !in.Candidate && mine:
		return Release
	case !in.Candidate:
		return Wait
	case !o.Record.Exists:
		return Create
	case mine && in.LastRenew.IsZero():
		// This candidate held it before a restart: take it back at once,
		// the cheapest failover there is.
		return Acquire
	case mine && in.Now.Sub(in.LastRenew) >= in.RenewPeriod:
		return Renew
	case mine:
		return Wait
	case o.Record.Holder == "":
		return Acquire
	case in.Now.Sub(o.Since) >= in.Duration:
		return Acquire
	default:
		return Wait
	}
}
