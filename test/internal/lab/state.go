package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/wirespan/wirespan/test/internal/lab/plan"
	"github.com/wirespan/wirespan/test/internal/lab/proc"
)

// stateFile is the lab's record of itself, in its state folder. It is
// written before anything is created, so `down` can always find the prefix
// of what to remove, and rewritten after each process starts.
const stateFile = "state.json"

// state is what state.json holds.
type state struct {
	Config     plan.Config       `json:"config"`
	PublicKeys map[string]string `json:"publicKeys,omitempty"`
	Processes  []*proc.Process   `json:"processes,omitempty"`
	Up         bool              `json:"up"`
	// Kubectl is the kubectl `up` ran with, so that `apply` runs the
	// same one from any folder, not only inside the checkout.
	Kubectl string `json:"kubectl,omitempty"`

	mu   sync.Mutex
	path string
}

func loadState(dir string) (*state, error) {
	path := filepath.Join(dir, stateFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no lab in %s (no %s): run `wirespan-lab up` first", dir, stateFile)
	}
	if err != nil {
		return nil, err
	}
	s := &state{path: path}
	if err := json.Unmarshal(raw, s); err != nil {
		return nil, fmt.Errorf("%s is damaged (%w): `wirespan-lab down` still removes what the lab made", path, err)
	}
	return s, nil
}

// save writes the state atomically (a crash never leaves half a file).
func (s *state) save() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, s.path)
}

func (s *state) addProcess(p *proc.Process) error {
	s.mu.Lock()
	s.Processes = append(s.Processes, p)
	s.mu.Unlock()
	return s.save()
}
