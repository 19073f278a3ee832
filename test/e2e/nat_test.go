package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/wirespan/wirespan/internal/poll"
	"github.com/wirespan/wirespan/test/internal/drill"
)

// TestNATMappingChangeRecovers has the router in front of c3 (behind NAT)
// forget c3's UDP mappings while a pod of c1 pings a pod of c3: c3's
// gateway's next packet out takes a new outside port, and traffic into c3
// must be back within the failover budget (its NAT keepalive, 1 s, makes
// that packet come soon even when nothing else is sent).
func TestNATMappingChangeRecovers(t *testing.T) {
	l := drill.Lab{Cmd: func(args ...string) *exec.Cmd { return labCmd(sharedDir, sharedInstance, args...) }}
	if err := l.Run("apply", shared.ClusterPeersDir); err != nil { // as from Git; a no-op when applied
		t.Fatal(err)
	}
	waitConnected(t, 2*time.Minute)
	var dst, c1Gateway, c1Device, c3Key string
	for _, c := range shared.Clusters {
		for _, p := range c.Pods {
			if c.Name == natCluster && p.Name == "echo-1" {
				dst = p.IP
			}
		}
		for _, n := range c.Nodes {
			if c.Name == "c1" && n.Gateway {
				c1Gateway, c1Device = n.Netns, n.WireGuard
			}
		}
		if c.Name == natCluster {
			c3Key = c.PublicKey
		}
	}
	// Where c1's gateway sends to c3: the NAT router's outside address and
	// port for c3's gateway.
	endpoint := func() string {
		out, _ := exec.Command("ip", "netns", "exec", c1Gateway, "wg", "show", c1Device, "endpoints").CombinedOutput()
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == c3Key {
				return f[1]
			}
		}
		return ""
	}
	p, err := drill.StartPinger(l, "c1", "echo-1", dst)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	poll.Until(t, 10*time.Second, "c1's echo-1 gets replies from c3's echo-1", p.Flowing)
	before := endpoint()
	start := time.Now()
	if err := l.Run("remap", natCluster); err != nil {
		t.Fatal(err)
	}
	var after string
	poll.Until(t, 20*time.Second, "c3 seen at a new outside port, and traffic flowing", func() error {
		if after = endpoint(); after == before {
			return fmt.Errorf("c1 still sends to %s", after)
		}
		return p.Flowing()
	})
	gap := p.Gap(start)
	t.Logf("c3's outside endpoint %s -> %s; longest traffic gap %v (budget %v)", before, after, gap.Round(time.Millisecond), failoverBudget)
	if before == "" || before == after {
		t.Errorf("the NAT mapping did not change (%q -> %q): the test proves nothing", before, after)
	}
	if gap >= failoverBudget {
		t.Errorf("traffic gap %v after the NAT mapping changed, budget %v", gap.Round(time.Millisecond), failoverBudget)
	}
}
