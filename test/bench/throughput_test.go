package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// iperfSeconds is each throughput run's length.
const iperfSeconds = "3"

// throughputRounds is how many times each path is measured in one
// benchmark iteration; its rate is the median of them.
const throughputRounds = 5

// BenchmarkThroughput measures one TCP stream between pods of two peered
// dual-stack lab clusters, in each family: between pods on the gateway
// nodes (pod, node bridge, gateway's userspace WireGuard, router, the
// other gateway, bridge, pod), and between pods behind node agents (the
// same with VXLAN from the node to its gateway on both sides). Next to
// them, in the same run, a standalone wireguard-go tunnel of the same
// module version configured with `wg` between two namespaces, in each
// family, and plain veth.
//
// Each round measures, per family, the reference, then the pods on the
// gateway nodes; the reference again, then the pods behind node agents,
// then the same pods through a standalone wireguard-go beside each active
// gateway carrying the pod ranges in its place (inPlace). A path's ratio
// is the median of the rounds' ratios of its rate to the reference run
// before it (just before, or before the Wirespan run the device in place
// follows): on a shared machine the rates drift with the other load
// by more than the differences measured (the reference alone by 0.2 to
// 0.4 Gbit/s between runs), and a drift reaches runs seconds apart alike.
// The device in place is the layout's own cost, which any userspace
// device pays here, so ratio-wirespan-node-agents-to-in-place, the median
// of the rounds' ratios of the two adjacent runs, is what Wirespan's
// process adds.
//
// On a shared two-core machine the rates follow the other load more than
// anything else, so each path also reports the CPU time its two
// WireGuard processes (the gateways, or the standalone wireguard-go
// devices) spent per gigabyte carried: the figure that says whether a path
// costs Wirespan more work, whatever else runs. It also proves that a
// stream crossed the devices named: a run whose devices spent less than
// minCPUPerGB fails the benchmark.
func BenchmarkThroughput(b *testing.B) {
	st := peeredLab(b, "--ip-family", "dual")
	c1, c2 := st.Clusters[0], st.Clusters[1]
	wgA, wgB, veth, wgPIDs := standalone(b)
	gateways := []int{processPID(b, st, c1.Nodes[0].Name+"-wirespan-gateway"), processPID(b, st, c2.Nodes[0].Name+"-wirespan-gateway")}
	inPlacePIDs, useInPlace, putBack := inPlace(b, st)
	ref4 := throughputPath{name: "ref-wireguard-go", server: wgB, client: wgA, address: "10.99.0.2", pids: wgPIDs}
	ref6 := throughputPath{name: "ref-wireguard-go-ipv6", server: wgB, client: wgA, address: "fd99::2", pids: wgPIDs}
	// Pods[0] is echo-0 on the gateway node, Pods[1] echo-1 behind the
	// node agent; IPs[0] is IPv4, IPs[1] IPv6.
	pods := func(name string, pod, family int, pids []int) throughputPath {
		return throughputPath{name: name, server: c2.Pods[pod].Netns, client: c1.Pods[pod].Netns, address: c2.Pods[pod].IPs[family], pids: pids}
	}
	inPlaceOf := func(p throughputPath, name string) throughputPath {
		p.name, p.pids, p.inPlace, p.pairedWith = name, inPlacePIDs, true, p.name
		return p
	}
	nodeAgents4, nodeAgents6 := pods("wirespan-node-agents", 1, 0, gateways), pods("wirespan-node-agents-ipv6", 1, 1, gateways)
	groups := []throughputGroup{
		{&ref4, []throughputPath{pods("wirespan", 0, 0, gateways)}},
		{&ref6, []throughputPath{pods("wirespan-ipv6", 0, 1, gateways)}},
		{&ref4, []throughputPath{nodeAgents4, inPlaceOf(nodeAgents4, "in-place-node-agents")}},
		{&ref6, []throughputPath{nodeAgents6, inPlaceOf(nodeAgents6, "in-place-node-agents-ipv6")}},
		{nil, []throughputPath{{name: "ref-veth", server: veth, client: wgA, address: "10.98.0.2"}}},
	}
	b.ResetTimer()
	m := throughputMeasurements{}
	for range b.N {
		for range throughputRounds {
			for _, g := range groups {
				m.runGroup(b, g, useInPlace)
			}
		}
	}
	b.StopTimer()
	putBack()
	reported := map[string]bool{}
	for _, g := range groups {
		paths := g.paths
		if g.ref != nil {
			paths = append([]throughputPath{*g.ref}, paths...)
		}
		for _, p := range paths {
			if reported[p.name] {
				continue
			}
			reported[p.name] = true
			b.ReportMetric(median(m.rates[p.name]), "Gbit/s-"+p.name)
			if g.ref != nil && p.name != g.ref.name {
				b.ReportMetric(median(m.ratios[p.name]), "ratio-"+p.name)
			}
			if p.pairedWith != "" {
				b.ReportMetric(median(m.ratios[p.pairedWith+"-to-in-place"]), "ratio-"+p.pairedWith+"-to-in-place")
			}
			if m.gb[p.name] > 0 && p.pids != nil {
				b.ReportMetric(m.cpu[p.name]/m.gb[p.name], "cpu-s/GB-"+p.name)
			}
		}
	}
}

// minCPUPerGB is the least CPU time per gigabyte carried that the two
// WireGuard processes of a path spend when the stream crosses them (they
// spend about 4 here: encryption alone is more than 1); a run below it
// crossed other devices, and its figures would be credited to the wrong
// ones.
const minCPUPerGB = 1.0

// throughputPath is one stream to measure: an iperf3 server in server, a
// client in client sending to address, and the processes whose CPU time
// it costs.
type throughputPath struct {
	name, server, client, address string
	pids                          []int
	// inPlace routes the stream through the devices in place for its run.
	inPlace bool
	// pairedWith names the path run just before this one whose rate is
	// divided by this one's, round by round.
	pairedWith string
}

// throughputGroup is measured in this order in each round: the reference
// (if any), then the paths, each path's ratio to that reference run.
type throughputGroup struct {
	ref   *throughputPath
	paths []throughputPath
}

// runGroup measures g once; useInPlace routes the pod ranges through the
// devices in place (true) or back through the gateways (false).
func (m *throughputMeasurements) runGroup(b *testing.B, g throughputGroup, useInPlace func(bool)) {
	b.Helper()
	ref := 0.0
	if g.ref != nil {
		ref = m.run(b, *g.ref)
	}
	for _, p := range g.paths {
		if p.inPlace {
			useInPlace(true)
		}
		r := m.run(b, p)
		if p.inPlace {
			useInPlace(false)
		}
		if ref > 0 {
			m.ratios[p.name] = append(m.ratios[p.name], r/ref)
		}
		if p.pairedWith != "" {
			rates := m.rates[p.pairedWith]
			m.ratios[p.pairedWith+"-to-in-place"] = append(m.ratios[p.pairedWith+"-to-in-place"], rates[len(rates)-1]/r)
		}
	}
}

// throughputMeasurements collects, per path name, the rate of every run
// in Gbit/s, the ratios to the reference run beside each, and the CPU
// seconds the path's processes spent and the gigabytes carried in all.
type throughputMeasurements struct {
	rates, ratios map[string][]float64
	cpu, gb       map[string]float64
}

// run measures p once, records it, and returns its rate in Gbit/s.
func (m *throughputMeasurements) run(b *testing.B, p throughputPath) float64 {
	b.Helper()
	if m.rates == nil {
		m.rates, m.ratios = map[string][]float64{}, map[string][]float64{}
		m.cpu, m.gb = map[string]float64{}, map[string]float64{}
	}
	before := processesCPU(b, p.pids)
	rate, bytes := iperf(b, p.server, p.client, p.address)
	cpu := processesCPU(b, p.pids) - before
	if p.pids != nil && cpu/(bytes/1e9) < minCPUPerGB {
		b.Fatalf("%s: its WireGuard processes (PIDs %v) spent %.2f CPU-s per GB carried, less than %.1f: the stream did not cross them", p.name, p.pids, cpu/(bytes/1e9), minCPUPerGB)
	}
	m.cpu[p.name] += cpu
	m.gb[p.name] += bytes / 1e9
	m.rates[p.name] = append(m.rates[p.name], rate)
	return rate
}

// median is the middle of xs (the mean of the two middle ones for an even
// count); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// processesCPU is the CPU time the processes have used (cpuSeconds).
func processesCPU(b *testing.B, pids []int) float64 {
	b.Helper()
	var sum float64
	for _, pid := range pids {
		s, err := cpuSeconds(pid)
		if err != nil {
			b.Fatal(err)
		}
		sum += s
	}
	return sum
}

// processPID is the PID of one of the lab's processes, by name.
func processPID(b *testing.B, st *labStatus, name string) int {
	b.Helper()
	for _, p := range st.Processes {
		if p.Name == name {
			return p.PID
		}
	}
	b.Fatalf("no lab process %s", name)
	return 0
}

// iperf runs an iperf3 server in serverNS and a client in clientNS, and
// returns the received rate in Gbit/s and the bytes received.
func iperf(b *testing.B, serverNS, clientNS, addr string) (gbps, bytes float64) {
	b.Helper()
	server := exec.Command("ip", "netns", "exec", serverNS, "iperf3", "-s", "-1", "-p", "5201")
	if err := server.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = server.Process.Kill(); _ = server.Wait() }()
	var out []byte
	var err error
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
				Bytes         float64 `json:"bytes"`
			} `json:"sum_received"`
		} `json:"end"`
		// iperf3 -J can exit 0 with the failure here (as "unable to
		// connect to server" while the server is not listening yet).
		Error string `json:"error"`
	}
	for range 50 { // until the server listens
		out, err = exec.Command("ip", "netns", "exec", clientNS, "iperf3", "-c", addr, "-p", "5201", "-t", iperfSeconds, "-J").Output()
		r.Error = ""
		if jerr := json.Unmarshal(out, &r); err == nil && jerr == nil && r.Error == "" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || r.Error != "" {
		b.Fatalf("iperf3 %s -> %s: %v %s\n%s", clientNS, addr, err, r.Error, out)
	}
	if r.End.SumReceived.Bytes == 0 {
		// A zero would pass for a figure (and make a ratio +Inf).
		b.Fatalf("iperf3 %s -> %s carried nothing:\n%s", clientNS, addr, out)
	}
	return r.End.SumReceived.BitsPerSecond / 1e9, r.End.SumReceived.Bytes
}

// The standalone reference: namespaces wsb-a and wsb-b joined by a veth
// (10.98.0.0/24), with a wireguard-go device in each (10.99.0.0/24 and
// fd99::/64, MTU 1420 like Wirespan's tunnel on a 1500 underlay),
// configured with `wg`.
const standalonePrefix = "wsb-"

// It returns the namespaces and the wireguard-go processes' PIDs.
func standalone(b *testing.B) (a, bNS, vethNS string, pids []int) {
	b.Helper()
	b.Cleanup(removeStandalone)
	a, bNS = standalonePrefix+"a", standalonePrefix+"b"
	run := func(args ...string) {
		b.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "netns", "add", a)
	run("ip", "netns", "add", bNS)
	run("ip", "link", "add", "wsb-veth-a", "netns", a, "type", "veth", "peer", "wsb-veth-b", "netns", bNS)
	keys := map[string]wgtypes.Key{}
	for i, ns := range []string{a, bNS} {
		side := string("ab"[i])
		run("ip", "-n", ns, "link", "set", "lo", "up")
		run("ip", "-n", ns, "addr", "add", fmt.Sprintf("10.98.0.%d/24", i+1), "dev", "wsb-veth-"+side)
		run("ip", "-n", ns, "link", "set", "wsb-veth-"+side, "up")
		k, err := wgtypes.GeneratePrivateKey()
		if err != nil {
			b.Fatal(err)
		}
		keys[ns] = k
		dev := "wsb-wg-" + side
		cmd := exec.Command("ip", "netns", "exec", ns, filepath.Join(binDir, "wireguard-go"), "-f", dev)
		cmd.Env = append(os.Environ(), "LOG_LEVEL=error")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		pids = append(pids, cmd.Process.Pid)
		b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		for range 100 {
			if _, err := os.Stat("/var/run/wireguard/" + dev + ".sock"); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for i, ns := range []string{a, bNS} {
		side, other := string("ab"[i]), []string{bNS, a}[i]
		dev := "wsb-wg-" + side
		keyFile := filepath.Join(b.TempDir(), "key")
		if err := os.WriteFile(keyFile, []byte(keys[ns].String()), 0o600); err != nil {
			b.Fatal(err)
		}
		run("ip", "netns", "exec", ns, "wg", "set", dev, "private-key", keyFile, "listen-port", "51820",
			"peer", keys[other].PublicKey().String(), "allowed-ips", fmt.Sprintf("10.99.0.%d/32,fd99::%d/128", 2-i, 2-i),
			"endpoint", fmt.Sprintf("10.98.0.%d:51820", 2-i))
		run("ip", "-n", ns, "addr", "add", fmt.Sprintf("10.99.0.%d/24", i+1), "dev", dev)
		run("ip", "-n", ns, "addr", "add", fmt.Sprintf("fd99::%d/64", i+1), "dev", dev, "nodad")
		run("ip", "-n", ns, "link", "set", dev, "mtu", "1420", "up")
	}
	return a, bNS, bNS, pids
}

// removeStandalone removes the reference namespaces, their processes and
// their WireGuard sockets.
func removeStandalone() {
	for _, ns := range []string{standalonePrefix + "a", standalonePrefix + "b"} {
		if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
			for _, pid := range strings.Fields(string(out)) {
				_ = exec.Command("kill", "-9", pid).Run()
			}
		}
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
	socks, _ := filepath.Glob("/var/run/wireguard/" + standalonePrefix + "*.sock")
	for _, s := range socks {
		_ = os.Remove(s)
	}
}
