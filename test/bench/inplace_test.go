package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// inPlacePort is the standalone device's port in a gateway's place: the
// stopped gateway's device keeps its own bound.
const inPlacePort = 51900

// inPlaceTable and inPlaceRulePriority route the pod ranges of the other
// cluster to the device in place: a rule ahead of Wirespan's (priority
// 100), so the gateway keeps running and keeps its own routes and
// tunnel (its gossip and Lease renewals go on as in the Wirespan runs).
const (
	inPlaceTable        = "51900"
	inPlaceRulePriority = "90"
)

// inPlace puts a standalone wireguard-go (the reference's binary) beside
// each active gateway, configured as the gateway's device is (its key,
// peers, allowed IPs, fwmark, MTU, routes and an MSS clamp like
// Wirespan's), and routes the other cluster's pod and Service ranges
// through it. The same pod-to-pod path then crosses a device that does
// nothing else, on a machine as busy with the clusters' control planes as
// in the Wirespan runs: what a standalone wireguard-go gets in this
// layout, so the ratio of Wirespan to it is what Wirespan's process adds
// (docs/benchmarks.md, issue 15). It returns the devices' PIDs; use,
// which routes the ranges through them (true) or back through the
// gateways (false) by adding or removing the rules ahead of Wirespan's,
// so that runs through either can alternate with nothing else changing;
// and putBack, which removes them and checks that pods behind node agents
// reach each other through the gateways again.
func inPlace(b *testing.B, st *labStatus) (pids []int, use func(bool), putBack func()) {
	b.Helper()
	run := func(args ...string) string {
		b.Helper()
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			b.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	type placed struct {
		ns     string
		cmd    *exec.Cmd
		routes []tableRoute
	}
	var devices []placed
	remove := func() {
		for _, d := range devices {
			for _, r := range d.routes {
				_ = exec.Command("ip", "-n", d.ns, r.family, "rule", "del", "to", r.Dst, "lookup", inPlaceTable, "priority", inPlaceRulePriority).Run()
			}
			_ = exec.Command("ip", "-n", d.ns, "-4", "route", "flush", "table", inPlaceTable).Run()
			_ = exec.Command("ip", "-n", d.ns, "-6", "route", "flush", "table", inPlaceTable).Run()
			_ = d.cmd.Process.Kill()
			_ = d.cmd.Wait()
			_ = exec.Command("ip", "netns", "exec", d.ns, "nft", "delete", "table", "inet", "wsb-clamp").Run()
		}
		devices = nil
	}
	b.Cleanup(remove)
	for i, c := range st.Clusters[:2] {
		gw := c.Nodes[0]
		conf := run("ip", "netns", "exec", gw.Netns, "wg", "showconf", gw.WireGuard)
		mtu := run("ip", "netns", "exec", gw.Netns, "cat", "/sys/class/net/"+gw.WireGuard+"/mtu")
		dev := fmt.Sprintf("%sip%d", standalonePrefix, i+1)
		cmd := exec.Command("ip", "netns", "exec", gw.Netns, filepath.Join(binDir, "wireguard-go"), "-f", dev)
		cmd.Env = append(os.Environ(), "LOG_LEVEL=error")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		d := placed{ns: gw.Netns, cmd: cmd, routes: rangeRoutes(b, gw.Netns, gw.WireGuard)}
		devices = append(devices, d)
		pids = append(pids, cmd.Process.Pid)
		waitSocket(b, dev)
		confFile := filepath.Join(b.TempDir(), dev+".conf")
		if err := os.WriteFile(confFile, []byte(onPort(conf, inPlacePort)), 0o600); err != nil {
			b.Fatal(err)
		}
		run("ip", "netns", "exec", gw.Netns, "wg", "setconf", dev, confFile)
		run("ip", "-n", gw.Netns, "link", "set", dev, "mtu", strings.TrimSpace(mtu), "up")
		for _, r := range d.routes {
			run(append([]string{"ip", "-n", gw.Netns}, r.via(dev)...)...)
		}
		clamp := fmt.Sprintf("add table inet wsb-clamp; add chain inet wsb-clamp clamp { type filter hook forward priority mangle; }; "+
			"add rule inet wsb-clamp clamp oifname %q tcp flags syn / syn,rst tcp option maxseg size set rt mtu; "+
			"add rule inet wsb-clamp clamp iifname %q tcp flags syn / syn,rst tcp option maxseg size set rt mtu", dev, dev)
		run("ip", "netns", "exec", gw.Netns, "nft", clamp)
	}
	use = func(on bool) {
		b.Helper()
		verb := "del"
		if on {
			verb = "add"
		}
		for _, d := range devices {
			for _, r := range d.routes {
				run("ip", "-n", d.ns, r.family, "rule", verb, "to", r.Dst, "lookup", inPlaceTable, "priority", inPlaceRulePriority)
			}
		}
	}
	return pids, use, func() {
		remove()
		c1, c2 := st.Clusters[0], st.Clusters[1]
		wait, err := firstReply(c2.Pods[1].Netns, c1.Pods[1].IPs[0], 30*time.Second)
		if err == nil {
			_, err = wait()
		}
		if err != nil {
			b.Fatalf("pods behind node agents do not reach each other through the gateways after the device in place went: %v", err)
		}
	}
}

// waitSocket waits for a wireguard-go device's UAPI socket.
func waitSocket(b *testing.B, dev string) {
	b.Helper()
	for range 100 {
		if _, err := os.Stat("/var/run/wireguard/" + dev + ".sock"); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatalf("wireguard-go %s made no UAPI socket", dev)
}

var (
	listenPortLine = regexp.MustCompile(`(?m)^ListenPort = \d+$`)
	endpointPort   = regexp.MustCompile(`(?m)^(Endpoint = .*):\d+$`)
)

// onPort is a `wg showconf` configuration that listens on port and sends
// to its peers' endpoints on port (the other side's device in place).
func onPort(conf string, port int) string {
	p := strconv.Itoa(port)
	conf = listenPortLine.ReplaceAllString(conf, "ListenPort = "+p)
	return endpointPort.ReplaceAllString(conf, "${1}:"+p)
}

// tableRoute is a route of Wirespan's table through the gateway's device,
// as `ip -j route` shows it.
type tableRoute struct {
	Dst     string `json:"dst"`
	Metrics []struct {
		MTU int `json:"mtu"`
	} `json:"metrics"`
	family string
}

// via is the `ip route replace` that sends the range to dev in the
// in-place table.
func (r tableRoute) via(dev string) []string {
	args := []string{r.family, "route", "replace", r.Dst, "dev", dev, "table", inPlaceTable}
	for _, m := range r.Metrics {
		if m.MTU != 0 {
			args = append(args, "mtu", strconv.Itoa(m.MTU))
		}
	}
	return args
}

// rangeRoutes are the routes of Wirespan's table through dev to ranges
// (the other clusters' pod and Service ranges), of both families; the
// routes to single tunnel addresses stay with the gateway, whose gossip
// uses them.
func rangeRoutes(b *testing.B, netns, dev string) []tableRoute {
	b.Helper()
	var all []tableRoute
	for _, family := range []string{"-4", "-6"} {
		out, err := exec.Command("ip", "-n", netns, family, "-j", "route", "show", "table", "51820", "dev", dev).Output()
		if err != nil {
			b.Fatalf("routes of %s in %s: %v", dev, netns, err)
		}
		var rs []tableRoute
		if err := json.Unmarshal(out, &rs); err != nil {
			b.Fatalf("routes of %s in %s: %v\n%s", dev, netns, err, out)
		}
		for _, r := range rs {
			if strings.Contains(r.Dst, "/") {
				r.family = family
				all = append(all, r)
			}
		}
	}
	if len(all) == 0 {
		b.Fatalf("no route to a range in Wirespan's table through %s in %s", dev, netns)
	}
	return all
}
