package lab

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"

	"github.com/wirespan/wirespan/test/internal/lab/plan"
	"github.com/wirespan/wirespan/test/internal/lab/proc"
)

// Faults for failover tests and drills: a process killed and not
// restarted, a node cut off from the network and joined again. They undo
// nothing by themselves: `restart` starts a killed process again, `heal`
// joins a cut node, and `down` removes everything either way.

// Kill stops a process of the lab with SIGKILL, as a crash would, and does
// not start it again (Restart does). It returns once the process is gone.
func (l *Lab) Kill(name string) error {
	_, st, err := l.load()
	if err != nil {
		return err
	}
	p, err := st.process(name)
	if err != nil {
		return err
	}
	if !p.Alive() {
		return fmt.Errorf("%s is not running", name)
	}
	if err := proc.Crash(p.PID); err != nil {
		return fmt.Errorf("kill %s: %w", name, err)
	}
	return nil
}

// Cut takes a node off its cluster's network, as a failed NIC or switch
// port would: the router's end of its link goes down, so the node reaches
// nothing (other nodes, other clusters, the API server) and nothing
// reaches it. Its processes keep running. Heal undoes it.
func (l *Lab) Cut(node string) error { return l.setNodeLink(node, "down") }

// Heal joins a node that Cut took off its network again.
func (l *Lab) Heal(node string) error { return l.setNodeLink(node, "up") }

func (l *Lab) setNodeLink(node, state string) error {
	p, _, err := l.load()
	if err != nil {
		return err
	}
	n, err := findNode(p, node)
	if err != nil {
		return err
	}
	out, err := exec.Command("ip", "-n", p.Router, "link", "set", n.RouterLink, state).CombinedOutput()
	if err != nil {
		return fmt.Errorf("set %s's link %s: %v: %s", node, state, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func findNode(p *plan.Plan, name string) (plan.Node, error) {
	var names []string
	for _, c := range p.Clusters {
		for _, n := range c.Nodes {
			if n.Name == name {
				return n, nil
			}
			names = append(names, n.Name)
		}
	}
	return plan.Node{}, fmt.Errorf("no node %q in this lab; it has: %s", name, strings.Join(names, ", "))
}

// process finds a process of the lab by name.
func (s *state) process(name string) (*proc.Process, error) {
	i := slices.IndexFunc(s.Processes, func(p *proc.Process) bool { return p.Name == name })
	if i < 0 {
		var names []string
		for _, p := range s.Processes {
			names = append(names, p.Name)
		}
		return nil, fmt.Errorf("no process %q in this lab; it has: %s", name, strings.Join(names, ", "))
	}
	return s.Processes[i], nil
}
