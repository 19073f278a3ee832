package gossip

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// benchEpoch is a's epoch in the benchmarks, proven to the receiver.
const benchEpoch = 0xa1

// benchReceiver starts cluster b's gateway with peers a and c, a's epoch
// proven, as after a handshake; shut down at the end.
func benchReceiver(tb testing.TB) *Gossip {
	tb.Helper()
	g, err := New(Config{
		Cluster: "b", Node: "gw-b", PrivateKey: testKey("b"),
		BindAddr: loopback("b"), Port: AnyPort, PeerAddr: testPeerAddr,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = g.Shutdown() })
	if err := g.SetPeers(map[string]wgtypes.Key{"a": testKey("a").PublicKey(), "c": testKey("c").PublicKey()}); err != nil {
		tb.Fatal(err)
	}
	g.mu.Lock()
	g.sessions["a"].epoch, g.sessions["a"].proven = benchEpoch, true
	g.mu.Unlock()
	return g
}

// BenchmarkRefuseUnauthenticated measures what receiving costs, refused
// or not, in one run: 16 MiB messages refused before any hashing (from an
// unknown cluster, addressed to another, unproven, over their kind's
// limit), one refused by its MAC (one pass of SHA-256), and for reference
// an authentic small state and an authentic 1 MiB batch of exports. The
// whole path runs (g.receive), locks and metrics included.
func BenchmarkRefuseUnauthenticated(b *testing.B) {
	g := benchReceiver(b)
	big := make([]byte, MaxExportSnapshotSize)
	krA := testKeyring(b, "a", testKey("a"), "b", "c")
	seal := func(k kind, cluster string, kr *Keyring, echo uint64, body []byte) []byte {
		msg, err := sealMessage(header{kind: k, cluster: cluster, epoch: benchEpoch, seq: 1}, body, kr, func(string) uint64 { return echo })
		if err != nil {
			b.Fatal(err)
		}
		return msg
	}
	tooLarge := seal(kindSnapshot, "z", testKeyring(b, "z", testKey("z"), "b"), g.epoch, big)
	tooLarge[envelopeFixed-1] = byte(kindState)
	state, err := encodeState(sampleState("a", 1))
	if err != nil {
		b.Fatal(err)
	}
	batch := exportBatch{Cluster: "a"}
	for i := range 128 {
		data := json.RawMessage(`"` + strings.Repeat("x", 8<<10-64) + `"`)
		batch.Items = append(batch.Items, exportItem{Key: key("ns", fmt.Sprintf("svc-%04d", i)), Version: 1, Data: data})
	}
	batchBody, err := encodeExports(batch)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name, result string
		msg          []byte
	}{
		{"unknown-sender-16MiB", resultUnknownSender, seal(kindSnapshot, "z", testKeyring(b, "z", testKey("z"), "b"), g.epoch, big)},
		{"not-for-us-16MiB", resultNoMAC, seal(kindSnapshot, "a", testKeyring(b, "a", testKey("a"), "c"), g.epoch, big)},
		{"unproven-16MiB", resultUnproven, seal(kindSnapshot, "a", krA, g.epoch+1, big)},
		{"over-kind-limit-16MiB", resultTooLarge, tooLarge},
		{"bad-mac-16MiB", resultBadMAC, seal(kindSnapshot, "a", testKeyring(b, "a", testKey("c"), "b"), g.epoch, big)},
		{"reference-authentic-state", resultDuplicate, seal(kindState, "a", krA, g.epoch, state)},
		{"reference-authentic-batch-1MiB", resultDuplicate, seal(kindBatch, "a", krA, g.epoch, batchBody)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			g.receive(tc.msg) // an authentic message is accepted once, then a duplicate
			counter := g.metrics.received
			if k := kindOf(tc.msg); k == kindBatch || k == kindSnapshot {
				counter = g.metrics.exportsReceived
			}
			before := counterValue(counter.WithLabelValues(tc.result))
			b.SetBytes(int64(len(tc.msg)))
			b.ReportAllocs()
			for b.Loop() {
				g.receive(tc.msg)
			}
			if got := counterValue(counter.WithLabelValues(tc.result)) - before; got < float64(b.N) {
				b.Fatalf("%d messages counted as %s, want %d", int(got), tc.result, b.N)
			}
		})
	}
}

// BenchmarkExportFlood: an authentic but hostile peer sends batch after
// batch of new exports, 64 MiB per round. What b holds of it stays under
// the cap of one cluster's set (MaxExportSnapshotSize), refused records
// are counted, and the heap stays bounded. Reported: MiB held for a, MiB
// of live heap after the flood (after a GC), records refused per round.
func BenchmarkExportFlood(b *testing.B) {
	g := benchReceiver(b)
	krA := testKeyring(b, "a", testKey("a"), "b", "c")
	data := json.RawMessage(`"` + strings.Repeat("x", 8<<10-64) + `"`)
	next := 0
	flood := func() {
		for range 64 {
			batch := exportBatch{Cluster: "a"}
			for range 120 {
				next++
				batch.Items = append(batch.Items, exportItem{Key: key("flood", fmt.Sprintf("svc-%07d", next)), Version: uint64(next), Data: data})
			}
			body, err := encodeExports(batch)
			if err != nil {
				b.Fatal(err)
			}
			msg, err := sealMessage(header{kind: kindBatch, cluster: "a", epoch: benchEpoch, seq: uint64(next)}, body, krA, func(string) uint64 { return g.epoch })
			if err != nil {
				b.Fatal(err)
			}
			g.receive(msg)
		}
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	overCap := counterValue(g.metrics.refused.WithLabelValues(refusedOverCap))
	b.SetBytes(64 << 20)
	for b.Loop() {
		flood()
	}
	b.StopTimer()
	g.mu.Lock()
	held := g.exp.remote["a"].size
	g.mu.Unlock()
	if held > MaxExportSnapshotSize {
		b.Fatalf("b holds %d bytes of a's exports, cap %d", held, MaxExportSnapshotSize)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(held)/(1<<20), "held-MiB")
	b.ReportMetric((float64(ms.HeapAlloc)-float64(base))/(1<<20), "heap-MiB")
	b.ReportMetric((counterValue(g.metrics.refused.WithLabelValues(refusedOverCap))-overCap)/float64(b.N), "refused/op")
}
