package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wirespan/wirespan/internal/poll"
)

// Gateway failover runs in a lab of its own (instance failoverInstance):
// two clusters of three nodes, two of them gateways. A pod on c2's node
// agent pings a pod on c1's node agent every 10 ms, so every packet
// crosses both clusters' active gateways and both node agents' VXLAN
// links; each fault below hits c1's active gateway, and the test asserts
// the longest gap between replies against the budget and prints it.
const failoverInstance = "8"

// failoverBudget is the feature: traffic back within two seconds.
const failoverBudget = 2 * time.Second

type failoverLab struct {
	dir string
	st  *labStatus
}

func upFailoverLab(t *testing.T) *failoverLab {
	t.Helper()
	l := &failoverLab{dir: filepath.Join(repo, ".cache", "e2e-failover-lab")}
	if out, err := l.cmd("down").CombinedOutput(); err != nil {
		t.Fatalf("lab down before the test: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			keepLogs(l.dir)
		}
		if out, err := l.cmd("down").CombinedOutput(); err != nil {
			t.Errorf("lab down: %v\n%s", err, out)
		}
	})
	if out, err := l.cmd("up", "--clusters", "2", "--nodes", "3", "--gateways", "2").CombinedOutput(); err != nil {
		t.Fatalf("lab up: %v\n%s", err, out)
	}
	var err error
	if l.st, err = status(l.dir, failoverInstance); err != nil {
		t.Fatal(err)
	}
	if out, err := l.cmd("apply", l.st.ClusterPeersDir).CombinedOutput(); err != nil {
		t.Fatalf("apply the ClusterPeers: %v\n%s", err, out)
	}
	poll.Until(t, 90*time.Second, "c2's echo-2 reaches c1's echo-2", func() error {
		_, err := l.exec("c2", "echo-2", "ping", "-c", "1", "-W", "1", l.podIP("c1", "echo-2"))
		return err
	})
	return l
}

func (l *failoverLab) cmd(args ...string) *exec.Cmd { return labCmd(l.dir, failoverInstance, args...) }

func (l *failoverLab) exec(cluster, pod string, argv ...string) (string, error) {
	out, err := l.cmd(append([]string{"exec", cluster, pod, "--"}, argv...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (l *failoverLab) podIP(cluster, pod string) string {
	for _, c := range l.st.Clusters {
		for _, p := range c.Pods {
			if c.Name == cluster && p.Name == pod {
				return p.IP
			}
		}
	}
	panic("no pod " + cluster + "/" + pod)
}

func (l *failoverLab) kubectl(cluster string, args ...string) (string, error) {
	kc := filepath.Join(l.dir, cluster, "admin.kubeconfig")
	out, err := exec.Command(kubectl, append([]string{"--kubeconfig", kc}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// active is the holder of the cluster's gateway Lease.
func (l *failoverLab) active(t *testing.T, cluster string) string {
	t.Helper()
	out, err := l.kubectl(cluster, "get", "lease", "-n", "wirespan-system", "wirespan-gateway", "-o", "jsonpath={.spec.holderIdentity}")
	if err != nil {
		t.Fatalf("read the gateway Lease of %s: %v: %s", cluster, err, out)
	}
	return out
}

// pinger runs ping every 10 ms in a pod and keeps the times of the
// replies (ping -D prints each reply's wall-clock time).
type pinger struct {
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	at   []time.Time
}

func startPinger(t *testing.T, l *failoverLab, cluster, pod, dst string) *pinger {
	t.Helper()
	p := &pinger{cmd: l.cmd("exec", cluster, pod, "--", "ping", "-D", "-n", "-i", "0.01", "-W", "1", dst), done: make(chan struct{})}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		s := bufio.NewScanner(out)
		for s.Scan() {
			line := s.Text()
			if !strings.Contains(line, "bytes from") || !strings.HasPrefix(line, "[") {
				continue
			}
			secs, err := strconv.ParseFloat(strings.Trim(strings.Fields(line)[0], "[]"), 64)
			if err != nil {
				continue
			}
			p.mu.Lock()
			p.at = append(p.at, time.Unix(0, int64(secs*1e9)))
			p.mu.Unlock()
		}
	}()
	t.Cleanup(p.stop)
	poll.Until(t, 10*time.Second, "replies to the ping", func() error {
		if n := p.repliesSince(time.Now().Add(-time.Second)); n < 50 {
			return fmt.Errorf("%d replies in the last second", n)
		}
		return nil
	})
	return p
}

func (p *pinger) stop() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(os.Interrupt)
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	_ = p.cmd.Wait()
}

func (p *pinger) repliesSince(t0 time.Time) int {
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

// gap is the longest silence between replies that ends after from (a gap
// still open at the end counts up to now).
func (p *pinger) gap(from time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var longest time.Duration
	for i := 1; i < len(p.at); i++ {
		if p.at[i].After(from) {
			longest = max(longest, p.at[i].Sub(p.at[i-1]))
		}
	}
	if n := len(p.at); n > 0 {
		longest = max(longest, time.Since(p.at[n-1]))
	}
	return longest
}

// fault is one way c1's active gateway goes away, and how to undo it.
type fault struct {
	name   string
	inject func(l *failoverLab, node string) error
	undo   func(l *failoverLab, node string) error
}

func gatewayProcess(node string) string { return node + "-wirespan-gateway" }

var faults = []fault{
	{
		name:   "SIGKILL",
		inject: func(l *failoverLab, n string) error { return run(l.cmd("kill", gatewayProcess(n))) },
		undo:   func(l *failoverLab, n string) error { return run(l.cmd("restart", gatewayProcess(n))) },
	},
	{
		name:   "NodeCutOff",
		inject: func(l *failoverLab, n string) error { return run(l.cmd("cut", n)) },
		undo:   func(l *failoverLab, n string) error { return run(l.cmd("heal", n)) },
	},
	{
		// A rollout: SIGTERM, and the new pod starts once the old is gone.
		name: "RolloutSIGTERM",
		inject: func(l *failoverLab, n string) error {
			return run(l.cmd("restart", gatewayProcess(n), "--grace", "10s"))
		},
		undo: func(*failoverLab, string) error { return nil },
	},
	{
		name: "LabelRemoved",
		inject: func(l *failoverLab, n string) error {
			_, err := l.kubectl("c1", "label", "node", n, "wirespan.io/gateway-")
			return err
		},
		undo: func(l *failoverLab, n string) error {
			_, err := l.kubectl("c1", "label", "node", n, "wirespan.io/gateway=true")
			return err
		},
	},
}

func run(cmd *exec.Cmd) error {
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, out)
	}
	return nil
}

func TestGatewayFailover(t *testing.T) {
	l := upFailoverLab(t)
	dst := l.podIP("c1", "echo-2")
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			old := l.active(t, "c1")
			p := startPinger(t, l, "c2", "echo-2", dst)
			start := time.Now()
			if err := f.inject(l, old); err != nil {
				t.Fatal(err)
			}
			var successor string
			poll.Until(t, 20*time.Second, "another gateway active and traffic flowing for a second", func() error {
				if successor = l.active(t, "c1"); successor == old || successor == "" {
					return fmt.Errorf("the Lease holder is %q", successor)
				}
				if n := p.repliesSince(time.Now().Add(-time.Second)); n < 50 {
					return fmt.Errorf("%d replies in the last second", n)
				}
				return nil
			})
			gap := p.gap(start)
			p.stop()
			t.Logf("%s of %s: %s took over; longest traffic gap %v (budget %v)", f.name, old, successor, gap.Round(time.Millisecond), failoverBudget)
			if gap >= failoverBudget {
				t.Errorf("traffic gap %v, budget %v", gap.Round(time.Millisecond), failoverBudget)
			}
			checkDNSEndpoint(t, l, successor)

			// Undoing the fault must not move the role back, nor stop
			// the traffic.
			p = startPinger(t, l, "c2", "echo-2", dst)
			undone := time.Now()
			if err := f.undo(l, old); err != nil {
				t.Fatal(err)
			}
			time.Sleep(4 * time.Second)
			if now := l.active(t, "c1"); now != successor {
				t.Errorf("after the fault was undone the active gateway is %s, want %s still", now, successor)
			}
			if gap := p.gap(undone); gap >= failoverBudget {
				t.Errorf("undoing the fault stopped traffic for %v", gap.Round(time.Millisecond))
			} else {
				t.Logf("undoing it: longest gap %v", gap.Round(time.Millisecond))
			}
			p.stop()
		})
	}
}

// checkDNSEndpoint waits for the DNS Service's EndpointSlice to name the
// active gateway's node.
func checkDNSEndpoint(t *testing.T, l *failoverLab, node string) {
	t.Helper()
	poll.Until(t, 10*time.Second, "the DNS Service's endpoint on "+node, func() error {
		out, err := l.kubectl("c1", "get", "endpointslice", "-n", "wirespan-system", "wirespan-dns-active", "-o", "jsonpath={.endpoints[*].nodeName}")
		if err != nil {
			return errors.New(out)
		}
		if out != node {
			return fmt.Errorf("it names %q", out)
		}
		return nil
	})
}
