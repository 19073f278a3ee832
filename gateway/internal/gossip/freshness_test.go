package gossip

import (
	"encoding/json"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Freshness under attack and under churn: replays, a restart whose
// versions are behind, a failover. Same pool and views as hostile_test.go.

// TestReplays: authentic messages of a, recorded off the wire, replayed by
// c: to a b that just restarted (on main it had no floor left and took
// them), and, once a restarted, to a b that knows a's new boot.
func TestReplays(t *testing.T) {
	a, b, c := exportingPool(t)
	record := func(n *node) []byte {
		n.mu.Lock()
		defer n.mu.Unlock()
		return append([]byte(nil), n.sealedStateLocked()...)
	}

	// a restarts: b learns its new boot; what a's previous boot said is
	// refused as a replay, even though it echoes b's epoch.
	recorded := record(a)
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	a2 := restart(t, a, b)
	if err := a2.SetLocal(stateOf("a", "172.%d.0.0/16")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b learns a's new state", func() bool { return knows(b, "a", "172.97.0.0/16") })
	replay := b.received(resultReplay)
	if err := c.ml.SendReliable(nodeAt(b.LocalAddr()), recorded); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b refuses a message of a's retired epoch", func() bool { return b.received(resultReplay) == replay+1 })
	if !knows(b, "a", "172.97.0.0/16") {
		t.Errorf("b's state of a changed: %+v", b.Clusters()["a"])
	}

	// b restarts while a is gone: nothing refreshes a's state, and the
	// replayed state of a's current boot is refused, unproven.
	recorded = record(a2)
	if err := a2.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := b.Shutdown(); err != nil {
		t.Fatal(err)
	}
	b2 := restart(t, b, c)
	if err := c.ml.SendReliable(nodeAt(b2.LocalAddr()), recorded); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b2 refuses the replay as unproven", func() bool { return b2.received(resultUnproven) >= 1 })
	if st, ok := b2.Clusters()["a"]; ok {
		t.Fatalf("b2 took a's state from a replay: %+v", st)
	}
}

// TestRestartWithClockBehind: a gateway restarts and its versions start
// again from 1, as they would from a clock behind on main (where every
// message was then dropped as stale until the clock caught up). Its new
// boot supersedes the old one at once.
func TestRestartWithClockBehind(t *testing.T) {
	a, b, c := exportingPool(t)
	for i := range 3 {
		if err := a.SetLocal(stateOf("a", "10.%d."+string(rune('1'+i))+".0/24")); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "b holds version 4 of a", func() bool { return b.Clusters()["a"].Version == 4 })
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	stale := b.received(resultStale) + exportsReceived(b, resultStale)
	a2 := restart(t, a, c) // publishes its state, version 1
	if err := a2.SetExports(map[ExportKey]json.RawMessage{key("shop", "web"): rec("2")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b takes a's new boot's state and exports", func() bool {
		got, complete := exportsOf(b, "a")
		return knows(b, "a", "10.97.0.0/16") && b.Clusters()["a"].Version == 1 &&
			complete && reflect.DeepEqual(got, map[string]string{"shop/web": `{"v":"2"}`})
	})
	if got := b.received(resultStale) + exportsReceived(b, resultStale); got != stale {
		t.Errorf("%v messages of the new boot dropped as stale", got-stale)
	}
}

// TestFailoverKeepsExports: a's active gateway moves to another node (same
// key, same tunnel address, a new boot). b never withdraws a's exports and
// never reports a silent meanwhile, and then names the new gateway.
func TestFailoverKeepsExports(t *testing.T) {
	a, b, _ := exportingPool(t)
	var gaps atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if ce := b.RemoteExports()["a"]; ce.Silent || len(ce.Exports) != 1 {
				gaps.Add(1)
			}
		}
	}()
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	a2 := startGateway(t, "a", "gw-a-2", fastPushPull, int(a.LocalAddr().Port()))
	a2.join(t, a.peers)
	if err := a2.SetExports(map[ExportKey]json.RawMessage{key("shop", "web"): rec("1")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b names a's new gateway", func() bool {
		for _, m := range b.Members() {
			if m.Name == "a/gw-a-2" {
				return b.Clusters()["a"].ActiveGateway == "gw-a-2"
			}
		}
		return false
	})
	close(stop)
	<-done
	if n := gaps.Load(); n > 0 {
		t.Errorf("b's view of a's exports was withdrawn or silent %d times during the failover", n)
	}
}

// TestHandshakeNeedsNoRound: two gateways whose heartbeat rounds never
// come (ProbeInterval of an hour) find each other, prove their epochs and
// exchange state and exports from the heartbeats sent when the peers are
// set and the answers they prompt alone; and again when one restarts. A
// failover must not wait for a round: the new gateway has to know the
// other clusters' exports before its MCS controller reconciles.
func TestHandshakeNeedsNoRound(t *testing.T) {
	noRounds := func(c *Config) { c.ProbeInterval = time.Hour }
	keys := map[string]wgtypes.Key{"a": testKey("a").PublicKey(), "b": testKey("b").PublicKey()}
	a := startGateway(t, "a", "gw-a", noPushPull, AnyPort, noRounds)
	b := startGateway(t, "b", "gw-b", noPushPull, AnyPort, noRounds)
	if err := b.SetExports(map[ExportKey]json.RawMessage{key("shop", "db"): rec("b")}); err != nil {
		t.Fatal(err)
	}
	b.join(t, keys)
	a.join(t, keys)
	learns := func(n *node) func() bool {
		return func() bool { return knows(n, "b", "10.98.0.0/16") && n.RemoteExports()["b"].Complete }
	}
	eventually(t, "a learns b's state and exports", learns(a))

	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	a2 := startGateway(t, "a", "gw-a-2", noPushPull, int(a.LocalAddr().Port()), noRounds)
	a2.join(t, keys)
	eventually(t, "a's new gateway learns b's state and exports", learns(a2))
	t.Logf("a's new gateway had b's state and exports %v after it started", time.Since(start).Round(time.Millisecond))
	eventually(t, "b names a's new gateway", func() bool { return b.Clusters()["a"].ActiveGateway == "gw-a-2" })
}
