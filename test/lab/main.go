// Command wirespan-lab runs several real Kubernetes clusters on this Linux
// machine, without Docker, and Wirespan in them. See docs/lab.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/wirespan/wirespan/test/internal/lab"
	"github.com/wirespan/wirespan/test/internal/lab/echo"
	"github.com/wirespan/wirespan/test/internal/lab/plan"
)

const usage = `wirespan-lab: several real Kubernetes clusters on this machine, no Docker.

Usage:
  wirespan-lab up [--clusters N] [--nodes N] [--gateways N] [--nat CLUSTER]
                  [--ip-family ipv4|ipv6|dual] [--cluster-ip-family CLUSTER=FAMILY,...]
                  [--kube-proxy-min-sync-period D]
  wirespan-lab down
  wirespan-lab status [--json]
  wirespan-lab kubeconfig CLUSTER
  wirespan-lab exec CLUSTER POD|NODE -- COMMAND [ARGS...]
  wirespan-lab apply DIR
  wirespan-lab restart PROCESS [--grace D]   (a name from status, e.g. c1-n0-wirespan-gateway)
  wirespan-lab kill PROCESS                  (SIGKILL, as a crash; not restarted)
  wirespan-lab cut NODE                      (the node loses its network link; heal undoes it)
  wirespan-lab heal NODE
  wirespan-lab remap CLUSTER                 (the NAT router forgets the cluster's UDP mappings)

Flags may come before or after a command's arguments (exec's go before
CLUSTER: what follows POD|NODE is the command's). Every command takes
--state-dir DIR (default: .lab in the Wirespan checkout, or
$WIRESPAN_LAB_DIR) and --instance N (default 0; labs with different
instances and state folders can run side by side). up also takes --repo
DIR (default: the checkout around the current folder) and --bin-dir DIR;
the other commands work from any folder given --state-dir. Run a command
with -h for its flags. docs/lab.md describes the lab.
`

func main() {
	log.SetFlags(0)
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "wirespan-lab:", err)
		os.Exit(1)
	}
}

type common struct {
	stateDir string
	instance int
	repo     string
	binDir   string
}

func (c *common) bind(fs *flag.FlagSet) {
	fs.StringVar(&c.stateDir, "state-dir", "", "the lab's state folder (default: .lab in the checkout, or $WIRESPAN_LAB_DIR)")
	fs.IntVar(&c.instance, "instance", 0, "which lab, when several run side by side (0..63): sets the name prefix and host addresses")
	fs.StringVar(&c.repo, "repo", "", "the Wirespan checkout whose binaries to run (default: found from the current folder)")
	fs.StringVar(&c.binDir, "bin-dir", "", "where wirespan-operator and wirespan-gateway are (default: bin/ in the checkout, where `make build` puts it)")
}

func (c *common) lab() (*lab.Lab, error) {
	root := c.repo
	if root == "" {
		root = findRepo()
	} else {
		// state.json records paths under it, for use from any folder.
		var err error
		if root, err = filepath.Abs(root); err != nil {
			return nil, err
		}
	}
	dir := c.stateDir
	if dir == "" {
		dir = os.Getenv("WIRESPAN_LAB_DIR")
	}
	if dir == "" {
		if root == "" {
			return nil, errors.New("not inside a Wirespan checkout: pass --repo and --state-dir")
		}
		dir = filepath.Join(root, ".lab")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	bins := lab.DefaultBins(root)
	if c.binDir != "" {
		// Absolute, as the lab's processes are recorded with it: `restart`
		// runs them again from whatever folder it is called in.
		binDir, err := filepath.Abs(c.binDir)
		if err != nil {
			return nil, err
		}
		bins.Operator = filepath.Join(binDir, "wirespan-operator")
		bins.Gateway = filepath.Join(binDir, "wirespan-gateway")
	}
	return &lab.Lab{Dir: dir, Bins: bins, Out: os.Stdout}, nil
}

// findRepo walks up from the current folder to Wirespan's go.mod.
func findRepo() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if raw, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.Contains(string(raw), "module github.com/wirespan/wirespan\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func run(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Print(usage)
		return nil
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("wirespan-lab "+cmd, flag.ContinueOnError)
	var c common
	c.bind(fs)
	switch cmd {
	case "up":
		return up(fs, &c, args)
	case "down":
		if err := parseNoArgs(fs, args); err != nil {
			return err
		}
		l, err := c.lab()
		if err != nil {
			return err
		}
		return l.DownInstance(c.instance)
	case "status":
		asJSON := fs.Bool("json", false, "print the stable JSON document (docs/lab.md) instead of tables")
		if err := parseNoArgs(fs, args); err != nil {
			return err
		}
		l, err := c.lab()
		if err != nil {
			return err
		}
		s, err := l.Status()
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(s)
		}
		s.Print(os.Stdout)
		return nil
	case "kubeconfig":
		l, cluster, err := c.labAnd(fs, args, "kubeconfig CLUSTER")
		if err != nil {
			return err
		}
		path, err := l.Kubeconfig(cluster)
		if err != nil {
			return err
		}
		fmt.Println(path)
		return nil
	case "exec":
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := fs.Args()
		if len(rest) < 2 {
			return errors.New("usage: wirespan-lab exec CLUSTER POD|NODE -- COMMAND [ARGS...]")
		}
		argv := rest[2:]
		if len(argv) > 0 && argv[0] == "--" {
			argv = argv[1:]
		}
		l, err := c.lab()
		if err != nil {
			return err
		}
		return l.Exec(rest[0], rest[1], argv)
	case "apply":
		l, dir, err := c.labAnd(fs, args, "apply DIR")
		if err != nil {
			return err
		}
		return l.Apply(dir)
	case "restart":
		grace := fs.Duration("grace", 5*time.Second, "how long to wait after SIGTERM before SIGKILL")
		l, name, err := c.labAnd(fs, args, "restart PROCESS [--grace D] (see `wirespan-lab status` for names)")
		if err != nil {
			return err
		}
		p, err := l.Restart(name, *grace)
		if err != nil {
			return err
		}
		fmt.Printf("restarted %s: pid %d, log %s\n", p.Name, p.PID, p.Log)
		return nil
	case "kill":
		l, name, err := c.labAnd(fs, args, "kill PROCESS (see `wirespan-lab status` for names)")
		if err == nil {
			err = l.Kill(name)
		}
		return done(err, name, "killed with SIGKILL; not restarted (restart starts it again)")
	case "cut":
		l, node, err := c.labAnd(fs, args, "cut NODE")
		if err == nil {
			err = l.Cut(node)
		}
		return done(err, node, "cut off the network (heal joins it again)")
	case "heal":
		l, node, err := c.labAnd(fs, args, "heal NODE")
		if err == nil {
			err = l.Heal(node)
		}
		return done(err, node, "joined the network again")
	case "remap":
		l, cluster, err := c.labAnd(fs, args, "remap CLUSTER (a cluster behind NAT)")
		if err != nil {
			return err
		}
		n, err := l.Remap(cluster)
		return done(err, cluster, fmt.Sprintf("the NAT router forgot %d UDP mappings; the next packets out get new outside ports", n))
	case "echo":
		return serveEcho(fs, args)
	case "probe":
		return probe(fs, args)
	default:
		return fmt.Errorf("unknown command %q\n\n%s", cmd, usage)
	}
}

// labAnd parses a command that takes one argument, and opens the lab.
func (c *common) labAnd(fs *flag.FlagSet, args []string, usage string) (*lab.Lab, string, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, "", err
	}
	if len(pos) != 1 {
		return nil, "", errors.New("usage: wirespan-lab " + usage)
	}
	l, err := c.lab()
	return l, pos[0], err
}

// done prints what a command did to what, unless it failed.
func done(err error, what, did string) error {
	if err == nil {
		fmt.Printf("%s: %s\n", what, did)
	}
	return err
}

// parseInterspersed parses flags wherever they stand among the positional
// arguments, as kubectl does: `restart NAME --grace 0s` as well as
// `restart --grace 0s NAME` (Go's flag package stops at the first
// positional argument). A "--" ends the flags; it and what follows are
// positional. It returns the positional arguments in order.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

func parseNoArgs(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return nil
}

func up(fs *flag.FlagSet, c *common, args []string) error {
	def := plan.DefaultConfig()
	cfg := def
	fs.IntVar(&cfg.Clusters, "clusters", def.Clusters, fmt.Sprintf("number of clusters (1..%d), named c1, c2, ...", plan.MaxClusters))
	fs.IntVar(&cfg.Nodes, "nodes", def.Nodes, fmt.Sprintf("nodes per cluster (1..%d)", plan.MaxNodes))
	fs.IntVar(&cfg.Gateways, "gateways", def.Gateways, "how many of each cluster's nodes are labeled wirespan.io/gateway=true")
	fs.StringVar(&cfg.NAT, "nat", "", "put this cluster (e.g. c2) behind NAT: it can reach the others, they cannot reach it")
	fs.DurationVar(&cfg.KubeProxyMinSync, "kube-proxy-min-sync-period", 0, "kube-proxy's minimum sync period, its --iptables-min-sync-period, which nftables mode reads too (0: its default, 1s); longer spares CPU when thousands of Services change, as in the scale benchmark")
	family := fs.String("ip-family", string(plan.IPv4), "IP family of the clusters' pods, Services and node addresses: ipv4, ipv6 or dual (dual-stack, IPv4 first)")
	clusterFamilies := fs.String("cluster-ip-family", "", "make some clusters differ from --ip-family, e.g. c3=ipv4 or c2=ipv6,c3=ipv4")
	keep := fs.Bool("keep-on-failure", false, "when up fails, leave the lab as it is for diagnosis instead of tearing it down (an interrupted up is always torn down)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	var err error
	if cfg.IPFamily, err = plan.ParseFamily(*family); err != nil {
		return fmt.Errorf("--ip-family %w", err)
	}
	if cfg.ClusterIPFamilies, err = plan.ParseClusterFamilies(*clusterFamilies); err != nil {
		return err
	}
	cfg.Instance = c.instance
	if c.repo == "" && findRepo() == "" {
		return errors.New("not inside a Wirespan checkout: run `up` from one, or pass --repo (the checkout whose binaries and chart the lab runs)")
	}
	l, err := c.lab()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return l.Up(ctx, cfg, *keep)
}

// serveEcho is the workload in the lab's echo pods (started by `up`).
func serveEcho(fs *flag.FlagSet, args []string) error {
	var id echo.Identity
	fs.StringVar(&id.Cluster, "cluster", "", "cluster name to answer with")
	fs.StringVar(&id.Pod, "pod", "", "namespace/name to answer with")
	fs.StringVar(&id.IP, "ip", "", "pod IP to answer with")
	port := fs.Int("port", plan.EchoPort, "TCP and UDP port")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return echo.Serve(ctx, id, *port)
}

// probe asks an echo server who it is: `wirespan-lab probe udp IP:PORT`.
func probe(fs *flag.FlagSet, args []string) error {
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 || (fs.Arg(0) != "tcp" && fs.Arg(0) != "udp") {
		return errors.New("usage: wirespan-lab probe tcp|udp HOST:PORT")
	}
	id, err := echo.Probe(fs.Arg(0), fs.Arg(1), *timeout)
	if err != nil {
		return err
	}
	fmt.Println(id)
	return nil
}
