// Package drill runs failover drills on a lab: a ping every 10 ms between
// two pods, whose replies it times, and the faults that take a cluster's
// active gateway away (and undo them), driven through the wirespan-lab
// command and kubectl as a user would. The end-to-end tests assert their
// budget with it; the benchmarks report their figures.
package drill

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Lab runs a wirespan-lab command on the drill's lab, and kubectl against
// one of its clusters.
type Lab struct {
	Cmd     func(args ...string) *exec.Cmd
	Kubectl func(cluster string, args ...string) (string, error)
}

// Run runs a wirespan-lab command and says what failed.
func (l Lab) Run(args ...string) error {
	cmd := l.Cmd(args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("wirespan-lab %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Active is the holder of a cluster's gateway Lease.
func (l Lab) Active(cluster string) (string, error) {
	out, err := l.Kubectl(cluster, "get", "lease", "-n", "wirespan-system", "wirespan-gateway", "-o", "jsonpath={.spec.holderIdentity}")
	if err != nil {
		return "", fmt.Errorf("read the gateway Lease of %s: %w: %s", cluster, err, out)
	}
	return out, nil
}

// Prober runs a command in a pod that prints a line for each success, and
// keeps the time of each: a ping's replies (StartPinger), or DNS answers
// (StartResolver).
type Prober struct {
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	at   []time.Time
}

// StartPinger pings dst from a pod of the lab every 10 ms until Stop; ping
// -D stamps each reply from the same clock as this process's.
func StartPinger(l Lab, cluster, pod, dst string) (*Prober, error) {
	return startProber(l, cluster, pod, replyTime, "ping", "-D", "-n", "-i", "0.01", "-W", "1", dst)
}

// StartResolver asks the cluster DNS for name's A records from a pod of
// the lab every 50 ms until Stop, and keeps the time each query answered
// with an address was sent. The queries run side by side: one sent while
// the server is away may wait a second (dig's shortest timeout) and must
// not hide those sent after it is back.
func StartResolver(l Lab, cluster, pod, name string) (*Prober, error) {
	// Stop's SIGINT would not end a script's loop (bash goes on when its
	// foreground child did not die of it): the trap does.
	loop := `trap exit INT; while :; do ( t=$(date +%s.%N); if dig +short +time=1 +tries=1 "$1" A | grep -q '^[0-9]'; then echo "$t"; fi ) & sleep 0.05; done`
	return startProber(l, cluster, pod, epochTime, "bash", "-c", loop, "resolve", name)
}

func startProber(l Lab, cluster, pod string, parse func(string) (time.Time, bool), argv ...string) (*Prober, error) {
	p := &Prober{cmd: l.Cmd(append([]string{"exec", cluster, pod, "--"}, argv...)...), done: make(chan struct{})}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s in %s/%s: %w", argv[0], cluster, pod, err)
	}
	go func() {
		defer close(p.done)
		s := bufio.NewScanner(out)
		for s.Scan() {
			if at, ok := parse(s.Text()); ok {
				p.mu.Lock()
				p.at = append(p.at, at)
				p.mu.Unlock()
			}
		}
	}()
	return p, nil
}

// epochTime reads a line of date +%s.%N.
func epochTime(line string) (time.Time, bool) {
	secs, err := strconv.ParseFloat(strings.TrimSpace(line), 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, int64(secs*1e9)), true
}

// replyTime reads a reply line of ping -D: "[1796169303.577090] 64 bytes
// from ...".
func replyTime(line string) (time.Time, bool) {
	if !strings.HasPrefix(line, "[") || !strings.Contains(line, "bytes from") {
		return time.Time{}, false
	}
	secs, err := strconv.ParseFloat(strings.Trim(strings.Fields(line)[0], "[]"), 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, int64(secs*1e9)), true
}

// Stop ends the command; it is safe to call more than once.
func (p *Prober) Stop() {
	if p.cmd.ProcessState == nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		_ = p.cmd.Wait()
	}
}

// RepliesSince counts the successes after t0.
func (p *Prober) RepliesSince(t0 time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, at := range p.at {
		if at.After(t0) {
			n++
		}
	}
	return n
}

// Flowing says whether the last second had at least half the replies a
// ping every 10 ms gets.
func (p *Prober) Flowing() error {
	if n := p.RepliesSince(time.Now().Add(-time.Second)); n < 50 {
		return fmt.Errorf("%d replies in the last second", n)
	}
	return nil
}

// Answering says whether the last second had an answer (StartResolver).
func (p *Prober) Answering() error {
	if n := p.RepliesSince(time.Now().Add(-time.Second)); n == 0 {
		return errors.New("no answer in the last second")
	}
	return nil
}

// Gap is the longest silence between successes that ends after from; a
// silence still going on counts up to now.
func (p *Prober) Gap(from time.Time) time.Duration {
	p.mu.Lock()
	at := slices.Clone(p.at)
	p.mu.Unlock()
	// A resolver's answers arrive out of the order they were asked in.
	slices.SortFunc(at, time.Time.Compare)
	return longestGap(at, from, time.Now())
}

func longestGap(at []time.Time, from, now time.Time) time.Duration {
	if len(at) == 0 {
		return now.Sub(from) // never a reply: all of it is the gap
	}
	var longest time.Duration
	for i := 1; i < len(at); i++ {
		if at[i].After(from) {
			longest = max(longest, at[i].Sub(at[i-1]))
		}
	}
	if n := len(at); n > 0 {
		longest = max(longest, now.Sub(at[n-1]))
	}
	return longest
}

// Fault takes a cluster's active gateway away, and Undo brings the node
// back as it was (it then stands by: the role does not move back).
// Planned is true for a handover the gateway takes part in (it releases
// the role), false for a crash or a lost node.
type Fault struct {
	Name    string
	Planned bool
	Inject  func(l Lab, cluster, node string) error
	Undo    func(l Lab, cluster, node string) error
}

func gatewayProcess(node string) string { return node + "-wirespan-gateway" }

// Faults are the ways an active gateway goes away that failover must
// survive within its budget.
var Faults = []Fault{
	{
		Name:   "SIGKILL",
		Inject: func(l Lab, _, n string) error { return l.Run("kill", gatewayProcess(n)) },
		Undo:   func(l Lab, _, n string) error { return l.Run("restart", gatewayProcess(n)) },
	},
	{
		Name:   "NodeCutOff",
		Inject: func(l Lab, _, n string) error { return l.Run("cut", n) },
		Undo:   func(l Lab, _, n string) error { return l.Run("heal", n) },
	},
	{
		// A rollout: SIGTERM, and the new pod starts once the old is gone.
		Name:    "RolloutSIGTERM",
		Planned: true,
		Inject:  func(l Lab, _, n string) error { return l.Run("restart", gatewayProcess(n), "--grace", "10s") },
		Undo:    func(Lab, string, string) error { return nil },
	},
	{
		Name:    "LabelRemoved",
		Planned: true,
		Inject: func(l Lab, c, n string) error {
			_, err := l.Kubectl(c, "label", "node", n, "wirespan.io/gateway-")
			return err
		},
		Undo: func(l Lab, c, n string) error {
			_, err := l.Kubectl(c, "label", "node", n, "wirespan.io/gateway=true")
			return err
		},
	},
}

// Restart is the reference: the active gateway's process killed and
// started again at once. The role stays (it held the Lease), and the
// kernel state it left carries traffic while it starts.
var Restart = Fault{
	Name: "KillAndRestartAtOnce",
	Inject: func(l Lab, _, n string) error {
		if err := l.Run("kill", gatewayProcess(n)); err != nil {
			return err
		}
		return l.Run("restart", gatewayProcess(n))
	},
	Undo: func(Lab, string, string) error { return nil },
}
