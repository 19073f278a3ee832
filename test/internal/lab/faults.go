package lab

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

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
		return fmt.Errorf("set %s's link %s: %w: %s", node, state, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Remap makes the router behind which a NAT cluster sits forget the
// cluster's UDP mappings, as a home router or carrier-grade NAT does when
// it reboots or times a mapping out: the next packet out gets a new,
// random, outside port (the router masquerades with random ports), and
// nothing from outside reaches the old one. It returns how many mappings
// it dropped.
func (l *Lab) Remap(cluster string) (int, error) {
	p, _, err := l.load()
	if err != nil {
		return 0, err
	}
	var c *plan.Cluster
	for i := range p.Clusters {
		if p.Clusters[i].Name == cluster {
			c = &p.Clusters[i]
		}
	}
	switch {
	case c == nil:
		return 0, fmt.Errorf("no cluster %q in this lab", cluster)
	case !c.NAT:
		return 0, fmt.Errorf("cluster %s is not behind NAT (up --nat %s makes it so)", cluster, cluster)
	}
	ns, err := netns.GetFromName(p.Router)
	if err != nil {
		return 0, fmt.Errorf("open the router's namespace: %w", err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return 0, fmt.Errorf("netlink in the router's namespace: %w", err)
	}
	defer h.Close()
	dropped := 0
	for _, n := range c.Nodes {
		f := &netlink.ConntrackFilter{}
		if err := f.AddIP(netlink.ConntrackOrigSrcIP, n.UnderlayIP.AsSlice()); err != nil {
			return dropped, err
		}
		if err := f.AddProtocol(unix.IPPROTO_UDP); err != nil {
			return dropped, err
		}
		k, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, f)
		dropped += int(k)
		if err != nil {
			return dropped, fmt.Errorf("drop the mappings of %s: %w", n.Name, err)
		}
	}
	return dropped, nil
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
