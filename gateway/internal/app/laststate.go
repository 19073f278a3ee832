package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

// lastState keeps, on the node, the data plane the active gateway last
// applied, so that a gateway restarted while the API server is unreachable
// can bring its tunnels back. A kernel WireGuard device outlives the
// process, but a userspace one does not: its TUN stays, routes point into
// it, and without this every cross-cluster packet would be dropped until
// the API server returned.
//
// The file holds the cluster's private key: it is written 0600 in a 0700
// folder, and never logged. Only the active gateway keeps one; any other
// role removes it, so a node that stopped being the gateway never comes
// back as one from an old copy.
type lastState struct {
	path string
	// saved is what the file holds, to write only changes.
	saved []byte
}

// keptFormat numbers the file's layout (dataplane.State in JSON); it
// changes whenever State's fields do.
const keptFormat = 1

// keptState is the file.
type keptState struct {
	Format int             `json:"format"`
	State  dataplane.State `json:"state"`
}

// save records st as the last applied gateway state.
func (l *lastState) save(st dataplane.State) error {
	if l.path == "" {
		return nil
	}
	raw, err := json.Marshal(keptState{Format: keptFormat, State: st})
	if err != nil {
		return fmt.Errorf("encode the data plane state: %w", err)
	}
	if string(raw) == string(l.saved) {
		return nil
	}
	dir := filepath.Dir(l.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keep the data plane state: %w", err)
	}
	// A hostPath folder the kubelet made is 0755: the key is root's alone.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("keep the data plane state: %w", err)
	}
	tmp := l.path + ".new"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return fmt.Errorf("keep the data plane state: %w", err)
	}
	if err := os.Rename(tmp, l.path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("keep the data plane state: %w", err)
	}
	l.saved = raw
	return nil
}

// forget removes the file: this node is not the active gateway.
func (l *lastState) forget() error {
	if l.path == "" {
		return nil
	}
	l.saved = nil
	if err := os.Remove(l.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the kept data plane state: %w", err)
	}
	return nil
}

// load returns the kept state; ok is false when there is none.
func (l *lastState) load() (st dataplane.State, ok bool, err error) {
	if l.path == "" {
		return st, false, nil
	}
	raw, err := os.ReadFile(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("read the kept data plane state: %w", err)
	}
	var kept keptState
	if err := json.Unmarshal(raw, &kept); err != nil {
		return st, false, fmt.Errorf("the kept data plane state %s is not valid: %w", l.path, err)
	}
	if kept.Format != keptFormat {
		// Another version's fields could read as an empty rule or no
		// address: better not to use it than to apply half of it.
		return st, false, fmt.Errorf("the kept data plane state %s is in format %d, this gateway reads %d: not used", l.path, kept.Format, keptFormat)
	}
	l.saved = raw
	return kept.State, true, nil
}
