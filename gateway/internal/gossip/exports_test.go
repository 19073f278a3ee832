package gossip

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testExportTTL is the pool's ExportTTL in tests.
const testExportTTL = 1500 * time.Millisecond

func key(ns, name string) ExportKey { return ExportKey{Namespace: ns, Name: name} }

func rec(s string) json.RawMessage { return json.RawMessage(fmt.Sprintf(`{"v":%q}`, s)) }

func TestExportsRoundTrip(t *testing.T) {
	krA := testKeyring(t, "a", testKey("a"), "b", "c")
	krB := testKeyring(t, "b", testKey("b"), "a", "c")
	for _, b := range []exportBatch{
		{Cluster: "a", Items: []exportItem{
			{Key: key("ns", "db"), Version: 3, Deleted: true},
			{Key: key("ns", "web"), Version: 4, Data: rec("x")},
		}},
		{Cluster: "a", Snapshot: true, High: 9, Items: []exportItem{{Key: key("a", "b"), Version: 9, Data: rec("y")}}},
		{Cluster: "a", Snapshot: true, High: 9},
	} {
		msg := sealExports(t, b, krA)
		got, err := openExports(msg, krB)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !reflect.DeepEqual(got, b) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, b)
		}
	}
}

// rawExports writes the body of an export message field by field, without
// checks; flags bit 0 makes it a snapshot, any other bit an unknown kind.
type rawExports struct {
	b     []byte
	flags int
}

func newRawExports(cluster string, flags int, high uint64, n int) *rawExports {
	r := &rawExports{flags: flags}
	r.b = append(r.b, byte(len(cluster)))
	r.b = append(r.b, cluster...)
	r.b = binary.BigEndian.AppendUint64(r.b, high)
	r.b = binary.BigEndian.AppendUint32(r.b, uint32(n))
	return r
}

func (r *rawExports) item(ns, name string, ver uint64, del int, data string) *rawExports {
	r.b = append(r.b, byte(len(ns)))
	r.b = append(r.b, ns...)
	r.b = append(r.b, byte(len(name)))
	r.b = append(r.b, name...)
	r.b = binary.BigEndian.AppendUint64(r.b, ver)
	r.b = append(r.b, byte(del))
	r.b = binary.BigEndian.AppendUint32(r.b, uint32(len(data)))
	r.b = append(r.b, data...)
	return r
}

// sealed wraps the body in a message from kr's cluster.
func (r *rawExports) sealed(t *testing.T, kr *Keyring) []byte {
	k := kindBatch
	if r.flags == 1 {
		k = kindSnapshot
	}
	msg := sealFor(t, k, r.b, kr)
	if r.flags > 1 {
		msg[envelopeFixed-1] = 9 // an unknown kind, refused before the MAC
	}
	return msg
}

func TestDecodeExportsRejects(t *testing.T) {
	krA := testKeyring(t, "a", testKey("a"), "b")
	krB := testKeyring(t, "b", testKey("b"), "a")
	krC := testKeyring(t, "c", testKey("c"), "a", "b")
	good := func() *rawExports { return newRawExports("a", 0, 0, 1).item("ns", "web", 1, 0, `{}`) }
	valid := good().sealed(t, krA)
	if _, err := openExports(valid, krB); err != nil {
		t.Fatalf("the valid base message is refused: %v", err)
	}
	tampered := append([]byte(nil), valid...)
	tampered[len(tampered)-1] ^= 1
	forgedByC := newRawExports("a", 0, 0, 1).item("ns", "web", 1, 0, `{}`)
	cKeysAsA := testKeyring(t, "a", testKey("c"), "b") // c's key, claiming to be a
	for _, tc := range []struct {
		name string
		msg  []byte
		want error
	}{
		{"bad magic", []byte("WSPX\x02\x03"), ErrMalformed},
		{"unknown version", []byte(envelopeMagic + "\x01\x03xxxx"), ErrUnknownVersion},
		{"truncated", valid[:20], ErrMalformed},
		{"trailing bytes", append(append([]byte(nil), valid...), 0), ErrMalformed},
		{"flags", newRawExports("a", 2, 0, 0).sealed(t, krA), ErrMalformed},
		{"batch with high", newRawExports("a", 0, 5, 0).sealed(t, krA), ErrMalformed},
		{"version 0", newRawExports("a", 0, 0, 1).item("ns", "web", 0, 0, `{}`).sealed(t, krA), ErrMalformed},
		{"bad namespace", newRawExports("a", 0, 0, 1).item("Bad_NS", "web", 1, 0, `{}`).sealed(t, krA), ErrMalformed},
		{"invalid JSON", newRawExports("a", 0, 0, 1).item("ns", "web", 1, 0, `{`).sealed(t, krA), ErrMalformed},
		{"deleted with data", newRawExports("a", 0, 0, 1).item("ns", "web", 1, 1, `{}`).sealed(t, krA), ErrMalformed},
		{"deletion in snapshot", newRawExports("a", 1, 5, 1).item("ns", "web", 1, 1, ``).sealed(t, krA), ErrMalformed},
		{"version above snapshot", newRawExports("a", 1, 5, 1).item("ns", "web", 6, 0, `{}`).sealed(t, krA), ErrMalformed},
		{"keys out of order", newRawExports("a", 0, 0, 2).item("ns", "web", 1, 0, `{}`).item("ns", "db", 1, 0, `{}`).sealed(t, krA), ErrMalformed},
		{"duplicate keys", newRawExports("a", 0, 0, 2).item("ns", "web", 1, 0, `{}`).item("ns", "web", 2, 0, `{}`).sealed(t, krA), ErrMalformed},
		{"record too large", newRawExports("a", 0, 0, 1).item("ns", "web", 1, 0, `"`+strings.Repeat("x", MaxExportSize)+`"`).sealed(t, krA), ErrTooLarge},
		{"too many items", newRawExports("a", 0, 0, MaxExports+1).sealed(t, krA), ErrTooLarge},
		{"unknown sender", newRawExports("z", 0, 0, 0).sealed(t, testKeyring(t, "z", testKey("z"), "b")), ErrUnknownSender},
		{"our own cluster", newRawExports("b", 0, 0, 0).sealed(t, krB), ErrUnknownSender},
		{"no MAC for us", good().sealed(t, testKeyring(t, "a", testKey("a"), "c")), ErrNoMAC},
		{"tampered MAC", tampered, ErrBadMAC},
		{"c forging a", forgedByC.sealed(t, cKeysAsA), ErrBadMAC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := openExports(tc.msg, krB)
			if !errors.Is(err, tc.want) {
				t.Fatalf("decode = %v, want %v", err, tc.want)
			}
			_ = krC
		})
	}
}

func TestRemoteExportsApply(t *testing.T) {
	re := newRemoteExports()
	var counter uint64
	batch := func(items ...exportItem) exportBatch { return exportBatch{Cluster: "a", Items: items} }
	snap := func(high uint64, items ...exportItem) exportBatch {
		return exportBatch{Cluster: "a", Snapshot: true, High: high, Items: items}
	}
	live := func() map[string]string {
		out := map[string]string{}
		for k, v := range re.live() {
			out[k.String()] = fmt.Sprintf("%d:%s", re.items[k].Version, v.Record)
		}
		return out
	}
	step := func(what string, b exportBatch, wantErr error, want map[string]string) {
		t.Helper()
		if _, err := re.apply(b, 1, &counter); !errors.Is(err, wantErr) {
			t.Fatalf("%s: apply = %v, want %v", what, err, wantErr)
		}
		if got := live(); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: live = %v, want %v", what, got, want)
		}
	}
	step("first change", batch(exportItem{Key: key("n", "web"), Version: 10, Data: rec("1")}), nil,
		map[string]string{"n/web": `10:{"v":"1"}`})
	if re.synced {
		t.Fatal("synced before any snapshot")
	}
	step("older change of the same export", batch(exportItem{Key: key("n", "web"), Version: 9, Data: rec("0")}), ErrDuplicate,
		map[string]string{"n/web": `10:{"v":"1"}`})
	step("deletion", batch(exportItem{Key: key("n", "web"), Version: 11, Deleted: true}), nil, map[string]string{})
	step("the change it overtook comes late", batch(exportItem{Key: key("n", "web"), Version: 10, Data: rec("1")}), ErrDuplicate,
		map[string]string{})
	step("snapshot drops what it does not list, keeps newer changes",
		func() exportBatch {
			re.items[key("n", "new")] = exportItem{Key: key("n", "new"), Version: 30, Data: rec("n")}
			re.items[key("n", "old")] = exportItem{Key: key("n", "old"), Version: 12, Data: rec("o")}
			return snap(20, exportItem{Key: key("n", "db"), Version: 15, Data: rec("d")})
		}(), nil,
		map[string]string{"n/db": `15:{"v":"d"}`, "n/new": `30:{"v":"n"}`})
	if !re.synced || re.floor != 20 {
		t.Fatalf("after snapshot: synced %v floor %d", re.synced, re.floor)
	}
	if _, ok := re.items[key("n", "web")]; ok {
		t.Error("the tombstone below the snapshot was kept")
	}
	step("same snapshot again", snap(20, exportItem{Key: key("n", "db"), Version: 15, Data: rec("d")}), ErrDuplicate,
		map[string]string{"n/db": `15:{"v":"d"}`, "n/new": `30:{"v":"n"}`})
	step("older snapshot", snap(19), ErrStale, map[string]string{"n/db": `15:{"v":"d"}`, "n/new": `30:{"v":"n"}`})
	step("replayed change below the snapshot", batch(exportItem{Key: key("n", "old"), Version: 12, Data: rec("o")}), ErrDuplicate,
		map[string]string{"n/db": `15:{"v":"d"}`, "n/new": `30:{"v":"n"}`})
}

// exportsOf returns what n holds of cluster c's exports, as "key=record".
func exportsOf(n *node, c string) (map[string]string, bool) {
	ce, ok := n.RemoteExports()[c]
	if !ok {
		return nil, false
	}
	out := map[string]string{}
	for k, v := range ce.Exports {
		out[k.String()] = string(v.Record)
	}
	return out, ce.Complete
}

func TestGossipExports(t *testing.T) {
	nodes := startPool(t, noPushPull, "a", "b", "c")
	a := nodes[0]
	if err := a.SetExports(map[ExportKey]json.RawMessage{key("shop", "web"): rec("1"), key("shop", "db"): rec("2")}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"shop/web": `{"v":"1"}`, "shop/db": `{"v":"2"}`}
	for _, n := range nodes[1:] {
		eventually(t, n.cluster+" learns a's exports", func() bool {
			got, _ := exportsOf(n, "a")
			return reflect.DeepEqual(got, want)
		})
	}
	// A change and a deletion travel as one batch.
	if err := a.SetExports(map[ExportKey]json.RawMessage{key("shop", "web"): rec("3")}); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"shop/web": `{"v":"3"}`}
	for _, n := range nodes[1:] {
		eventually(t, n.cluster+" learns the change and the deletion", func() bool {
			got, _ := exportsOf(n, "a")
			return reflect.DeepEqual(got, want)
		})
	}
	// Invalid records are refused, the rest goes out.
	err := a.SetExports(map[ExportKey]json.RawMessage{key("shop", "web"): rec("3"), key("shop", "bad"): json.RawMessage(`{`), key("Bad", "x"): rec("4")})
	var refused *RefusedExportsError
	if !errors.As(err, &refused) || len(refused.Refused) != 2 ||
		refused.Refused[key("shop", "bad")] == nil || refused.Refused[key("Bad", "x")] == nil ||
		!strings.Contains(err.Error(), "shop/bad") || !strings.Contains(err.Error(), "Bad/x") {
		t.Errorf("SetExports with invalid records = %v, want an error naming both, and only them", err)
	}
}

func TestGossipExportsLateJoinerAndTTL(t *testing.T) {
	nodes := startPool(t, noPushPull, "a", "b")
	a, b := nodes[0], nodes[1]
	if err := a.SetExports(map[ExportKey]json.RawMessage{key("shop", "web"): rec("1")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b learns a's exports", func() bool { got, _ := exportsOf(b, "a"); return len(got) == 1 })

	// b restarts: the new b learns the whole set from the snapshot that
	// comes with joining, not from a change.
	if err := b.Shutdown(); err != nil {
		t.Fatal(err)
	}
	b2 := restart(t, b, a)
	eventually(t, "restarted b has a's complete set", func() bool {
		got, complete := exportsOf(b2, "a")
		return complete && reflect.DeepEqual(got, map[string]string{"shop/web": `{"v":"1"}`})
	})

	// a goes away: b keeps its exports, and after the TTL says a is
	// silent, still with them (what to do with them is the caller's call).
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	left := time.Now()
	eventually(t, "b sees a leave", func() bool { return len(b2.Members()) == 1 })
	if ce := b2.RemoteExports()["a"]; ce.Silent || len(ce.Exports) != 1 {
		t.Fatalf("right after the leave: silent %v with %d exports, want not silent with 1", ce.Silent, len(ce.Exports))
	}
	eventually(t, "a goes silent", func() bool { return b2.RemoteExports()["a"].Silent })
	// The TTL runs from a's last heartbeat, at most one ProbeInterval
	// (100 ms) before its shutdown.
	if d := time.Since(left); d < testExportTTL-200*time.Millisecond {
		t.Errorf("silent %v after the leave, TTL %v", d, testExportTTL)
	}
	ce := b2.RemoteExports()["a"]
	if got, _ := exportsOf(b2, "a"); !reflect.DeepEqual(got, map[string]string{"shop/web": `{"v":"1"}`}) || ce.SilentSince.IsZero() {
		t.Errorf("silent a: exports %v, silent since %v; want its last set and a time", got, ce.SilentSince)
	}
}

func TestGossipPublishOneExport(t *testing.T) {
	nodes := startPool(t, noPushPull, "a", "b")
	a, b := nodes[0], nodes[1]
	if err := a.PublishExport(key("shop", "web"), rec("0")); !errors.Is(err, ErrExportsNotSet) {
		t.Fatalf("PublishExport before SetExports = %v, want ErrExportsNotSet", err)
	}
	if err := a.SetExports(map[ExportKey]json.RawMessage{key("shop", "web"): rec("1")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b learns a's set", func() bool { got, _ := exportsOf(b, "a"); return len(got) == 1 })
	gen := b.RemoteExports()["a"].Generation
	if again := b.RemoteExports()["a"].Generation; again != gen {
		t.Fatalf("generation moved from %d to %d with no change", gen, again)
	}

	if err := a.PublishExport(key("shop", "db"), rec("2")); err != nil {
		t.Fatal(err)
	}
	if err := a.WithdrawExport(key("shop", "web")); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"shop/db": `{"v":"2"}`}
	eventually(t, "b learns the new export and the withdrawal", func() bool {
		got, _ := exportsOf(b, "a")
		return reflect.DeepEqual(got, want)
	})
	if now := b.RemoteExports()["a"].Generation; now == gen {
		t.Errorf("generation still %d after changes", now)
	}
	err := a.PublishExport(key("shop", "bad"), json.RawMessage(`{`))
	var refused *RefusedExportsError
	if !errors.As(err, &refused) || refused.Refused[key("shop", "bad")] == nil {
		t.Errorf("PublishExport of invalid JSON = %v, want it refused by key", err)
	}
}

func TestGossipExportsCountsBadMessages(t *testing.T) {
	nodes := startPool(t, noPushPull, "a", "b")
	b := nodes[1]
	before := exportsReceived(b, resultBadMAC)
	krA := testKeyring(t, "a", testKey("c"), "b") // not a's key
	// The forger echoes b's epoch, which travels in the clear in b's
	// messages: only the MAC can refuse it.
	body := newRawExports("a", 0, 0, 1).item("ns", "web", 1, 0, `{}`).b
	msg, err := sealMessage(header{kind: kindBatch, cluster: "a", epoch: 1, seq: 1}, body, krA, func(string) uint64 { return b.epoch })
	if err != nil {
		t.Fatal(err)
	}
	b.receive(msg)
	if got := exportsReceived(b, resultBadMAC) - before; got != 1 {
		t.Errorf("bad MAC count grew by %v, want 1", got)
	}
	if got, _ := exportsOf(b, "a"); len(got) > 0 {
		t.Errorf("forged export accepted: %v", got)
	}
}
