package lab

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/wirespan/wirespan/test/internal/lab/plan"
)

// StatusVersion is the version of the `status --json` document. It changes
// only when a field is removed or changes meaning; fields may be added.
const StatusVersion = 1

// Status is the `status --json` document: a stable interface for scripts,
// documented in docs/lab.md.
type Status struct {
	Version   int             `json:"version"`
	StateDir  string          `json:"stateDir"`
	Instance  int             `json:"instance"`
	Up        bool            `json:"up"`
	Router    string          `json:"router"`
	GitOps    string          `json:"clusterPeersDir"`
	Clusters  []ClusterStatus `json:"clusters"`
	Processes []ProcessStatus `json:"processes"`
}

// ClusterStatus describes one cluster.
type ClusterStatus struct {
	Name         string   `json:"name"`
	Kubeconfig   string   `json:"kubeconfig"`
	APIServer    string   `json:"apiServer"`
	PodCIDRs     []string `json:"podCIDRs"`
	ServiceCIDRs []string `json:"serviceCIDRs"`
	DNS          string   `json:"clusterDNS"`
	NAT          bool     `json:"nat"`
	// IPFamily is ipv4, ipv6 or dual; the first of a list of addresses or
	// ranges is of the primary family, and a single one is of it.
	IPFamily  string `json:"ipFamily"`
	PublicKey string `json:"publicKey"`
	// Bridge is the cluster's underlay bridge, in the router namespace:
	// every node's underlay link is a port of it.
	Bridge string       `json:"bridge"`
	Nodes  []NodeStatus `json:"nodes"`
	Pods   []PodStatus  `json:"pods"`
}

// NodeStatus describes one node.
type NodeStatus struct {
	Name       string `json:"name"`
	Netns      string `json:"netns"`
	UnderlayIP string `json:"underlayIP"`
	PodCIDR    string `json:"podCIDR"`
	// UnderlayIPs and PodCIDRs hold one of each of the cluster's families.
	UnderlayIPs []string `json:"underlayIPs"`
	PodCIDRs    []string `json:"podCIDRs"`
	Gateway     bool     `json:"gateway"`
	// WireGuard is the name the node's WireGuard interface gets when it is
	// the cluster's active gateway.
	WireGuard string `json:"wireGuard"`
}

// PodStatus describes one pod.
type PodStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Node      string `json:"node"`
	IP        string `json:"ip"`
	// IPs hold one address of each of the cluster's families.
	IPs   []string `json:"ips"`
	Netns string   `json:"netns"`
}

// ProcessStatus is one process the lab started.
type ProcessStatus struct {
	Name    string `json:"name"`
	PID     int    `json:"pid"`
	Netns   string `json:"netns,omitempty"`
	Running bool   `json:"running"`
	Log     string `json:"log"`
}

// Status reports the lab from its record, with each process checked.
func (l *Lab) Status() (*Status, error) {
	p, st, err := l.load()
	if err != nil {
		return nil, err
	}
	s := &Status{Version: StatusVersion, StateDir: l.Dir, Instance: p.Instance, Up: st.Up, Router: p.Router, GitOps: l.clusterPeersDir()}
	for _, c := range p.Clusters {
		cs := ClusterStatus{
			Name: c.Name, Kubeconfig: l.kubeconfig(c.Name), APIServer: l.apiURL(c),
			PodCIDRs: plan.Strings(c.PodCIDRs()), ServiceCIDRs: plan.Strings(c.ServiceCIDRs()),
			DNS: c.DNSServiceIPs()[0].String(), NAT: c.NAT, IPFamily: string(c.Family), PublicKey: st.PublicKeys[c.Name],
			Bridge: c.Bridge,
		}
		for _, n := range c.Nodes {
			ips, pods := plan.Strings(n.InternalIPs(&c)), plan.Strings(n.PodCIDRs(&c))
			cs.Nodes = append(cs.Nodes, NodeStatus{Name: n.Name, Netns: n.Netns, UnderlayIP: ips[0], PodCIDR: pods[0],
				UnderlayIPs: ips, PodCIDRs: pods, Gateway: n.Gateway, WireGuard: n.WireGuard})
		}
		for _, pod := range c.Pods {
			ips := plan.Strings(pod.IPs(&c))
			cs.Pods = append(cs.Pods, PodStatus{Namespace: pod.Namespace, Name: pod.Name, Node: pod.Node, IP: ips[0], IPs: ips, Netns: pod.Netns})
		}
		s.Clusters = append(s.Clusters, cs)
	}
	for _, pr := range st.Processes {
		s.Processes = append(s.Processes, ProcessStatus{Name: pr.Name, PID: pr.PID, Netns: pr.Netns, Running: pr.Alive(), Log: pr.Log})
	}
	return s, nil
}

// Print writes the status for people.
func (s *Status) Print(w io.Writer) {
	state := "up"
	if !s.Up {
		state = "not fully up (see the processes and their logs)"
	}
	fmt.Fprintf(w, "Lab in %s: %s\n", s.StateDir, state)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nCLUSTER\tAPI SERVER\tPODS\tSERVICES\tDNS\tNAT\tKUBECONFIG")
	for _, c := range s.Clusters {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\t%s\n", c.Name, c.APIServer, strings.Join(c.PodCIDRs, ","),
			strings.Join(c.ServiceCIDRs, ","), c.DNS, c.NAT, c.Kubeconfig)
	}
	fmt.Fprintln(tw, "\nNODE\tUNDERLAY\tPOD CIDR\tGATEWAY\tNETNS")
	for _, c := range s.Clusters {
		for _, n := range c.Nodes {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\n", n.Name, n.UnderlayIP, n.PodCIDR, n.Gateway, n.Netns)
		}
	}
	fmt.Fprintln(tw, "\nPOD\tCLUSTER\tNODE\tIP\tNETNS")
	for _, c := range s.Clusters {
		for _, p := range c.Pods {
			fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\n", p.Namespace, p.Name, c.Name, p.Node, p.IP, p.Netns)
		}
	}
	fmt.Fprintln(tw, "\nPROCESS\tPID\tSTATE\tLOG")
	for _, p := range s.Processes {
		st := "running"
		if !p.Running {
			st = "EXITED"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", p.Name, p.PID, st, p.Log)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nClusterPeer manifests (apply with `wirespan-lab apply %s`): %s\n", s.GitOps, s.GitOps)
}

// ExecArgv is the command line that runs argv inside a pod's (or node's)
// network namespace, with the pod's resolv.conf.
func (l *Lab) ExecArgv(cluster, target string, argv []string) ([]string, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("no command: use `exec %s %s -- COMMAND [ARGS...]`", cluster, target)
	}
	p, _, err := l.load()
	if err != nil {
		return nil, err
	}
	c, err := p.Cluster(cluster)
	if err != nil {
		return nil, err
	}
	netns := ""
	if n, err := c.Node(target); err == nil {
		netns = n.Netns
	} else if pod, perr := c.Pod(target); perr == nil {
		netns = pod.Netns
	} else {
		return nil, fmt.Errorf("%w; nodes: %s", perr, nodeNames(c))
	}
	return append([]string{"ip", "netns", "exec", netns}, argv...), nil
}

// Exec replaces this process with argv run in a pod's or node's network
// namespace, so its output and exit status are the command's own.
func (l *Lab) Exec(cluster, target string, argv []string) error {
	full, err := l.ExecArgv(cluster, target, argv)
	if err != nil {
		return err
	}
	ip, err := exec.LookPath(full[0])
	if err != nil {
		return err
	}
	return syscall.Exec(ip, full, os.Environ())
}

func nodeNames(c *plan.Cluster) string {
	var names []string
	for _, n := range c.Nodes {
		names = append(names, n.Name)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// Apply applies a folder of manifests (a GitOps checkout) to every cluster
// with kubectl, as Flux or Argo CD would.
func (l *Lab) Apply(dir string) error {
	p, st, err := l.load()
	if err != nil {
		return err
	}
	kubectl := st.Kubectl
	if kubectl == "" { // a lab brought up before state.json recorded it
		kubectl = l.Bins.Kubectl
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("%s is not a folder of manifests", dir)
	}
	var failed []string
	for _, c := range p.Clusters {
		cmd := exec.Command(kubectl, "--kubeconfig", l.kubeconfig(c.Name), "apply", "--recursive", "-f", dir)
		out, err := cmd.CombinedOutput()
		for line := range strings.Lines(string(out)) {
			l.printf("%s: %s", c.Name, line)
		}
		if err != nil {
			// kubectl's own words are printed above; a kubectl that did
			// not run printed none.
			failed = append(failed, fmt.Sprintf("%s (%s: %v)", c.Name, kubectl, err))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("kubectl apply failed in %s", strings.Join(failed, ", "))
	}
	return nil
}
