package linux

import (
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/wirespan/wirespan/internal/testreq"
)

// BenchmarkTunnelThroughput measures TCP throughput (iperf3, one stream,
// one second per round) through a WireGuard tunnel between two namespaces,
// with kernel WireGuard and with the embedded userspace device, and
// reports it as Mbit/s. The kernel case skips where the kernel has no
// WireGuard: the VM tier (test/vm, BenchmarkKernelVsUserspace) runs both
// in one guest, which makes the two figures comparable.
func BenchmarkTunnelThroughput(b *testing.B) {
	for _, mode := range []WireGuardMode{WireGuardKernel, WireGuardUserspace} {
		b.Run(string(mode), func(b *testing.B) {
			requireRoot(b)
			if mode == WireGuardKernel {
				requireKernelWireGuard(b)
			}
			if _, err := exec.LookPath("iperf3"); err != nil {
				testreq.CannotRun(b, testreq.Privileged, "needs iperf3 (make deps)")
			}
			nsA, nsB := vethPair(b)
			kA, kB := newKernelMode(b, nsA, mode), newKernelMode(b, nsB, mode)
			keyA, keyB := mustKey(b), mustKey(b)
			ends := []struct {
				k *Kernel
				e tunnelEnd
			}{
				{kA, tunnelEnd{Dev: devName(), Key: keyA, PeerKey: keyB.PublicKey(), Addr: "10.99.0.1", PeerAddr: "10.99.0.2", PeerUnderlay: "192.168.77.2"}},
				{kB, tunnelEnd{Dev: devName(), Key: keyB, PeerKey: keyA.PublicKey(), Addr: "10.99.0.2", PeerAddr: "10.99.0.1", PeerUnderlay: "192.168.77.1"}},
			}
			for _, end := range ends {
				b.Cleanup(func() { _ = end.k.DeleteLink(end.e.Dev) })
				if err := end.e.setup(end.k); err != nil {
					b.Fatal(err)
				}
			}
			pingThrough(b, nsA, "10.99.0.2")
			server := exec.Command("ip", "netns", "exec", nsB, "iperf3", "-s", "-p", "5201")
			if err := server.Start(); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = server.Process.Kill(); _ = server.Wait() })
			b.ResetTimer()
			var bits float64
			for range b.N {
				bits += iperf(b, nsA, "10.99.0.2")
			}
			b.ReportMetric(bits/float64(b.N)/1e6, "Mbit/s")
		})
	}
}

// iperf runs one iperf3 client round from ns and returns the bits per
// second the server received.
func iperf(b *testing.B, ns, addr string) float64 {
	b.Helper()
	var out []byte
	var err error
	// The server may not listen yet on the first round.
	for try := 0; try < 50; try++ {
		out, err = exec.Command("ip", "netns", "exec", ns, "iperf3", "-c", addr, "-p", "5201", "-t", "1", "-J").Output()
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		b.Fatalf("iperf3 to %s: %v\n%s", addr, err, out)
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		b.Fatalf("iperf3 output: %v\n%s", err, out)
	}
	return res.End.SumReceived.BitsPerSecond
}
