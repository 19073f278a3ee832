package lab

import (
	"slices"
	"time"

	"github.com/wirespan/wirespan/test/internal/lab/proc"
)

// Restart stops a process of the lab (SIGTERM, then SIGKILL after grace) and
// starts it again with the same arguments, in the same namespace, appending
// to the same log. It is how a test, or a user, sees what a component does
// across a restart.
func (l *Lab) Restart(name string, grace time.Duration) (*proc.Process, error) {
	_, st, err := l.load()
	if err != nil {
		return nil, err
	}
	old, err := st.process(name)
	if err != nil {
		return nil, err
	}
	i := slices.Index(st.Processes, old)
	// The new process starts only once the old one is gone: it needs the
	// same ports.
	if err := old.Stop(grace); err != nil {
		return nil, err
	}
	p, err := proc.Start(old.Name, old.Netns, old.Log, old.Args...)
	if err != nil {
		return nil, err
	}
	st.mu.Lock()
	st.Processes[i] = p
	st.mu.Unlock()
	return p, st.save()
}
