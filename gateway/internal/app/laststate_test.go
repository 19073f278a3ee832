package app

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wirespan/wirespan/gateway/internal/dataplane"
)

func TestLastStateKeepsTheGatewayStateRootOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wirespan")
	if err := os.MkdirAll(dir, 0o755); err != nil { // as a hostPath volume comes
		t.Fatal(err)
	}
	l := &lastState{path: filepath.Join(dir, "gateway-state.json")}
	if _, ok, err := l.load(); ok || err != nil {
		t.Fatalf("load with no file: ok %v, err %v", ok, err)
	}
	key, _ := wgtypes.GeneratePrivateKey()
	peer, _ := wgtypes.GeneratePrivateKey()
	st := dataplane.State{
		Table: 51820,
		WireGuard: &dataplane.Device{Name: "wirespan0", PrivateKey: key, ListenPort: 51820, FirewallMark: 0xca, MTU: 1420,
			Addresses: []netip.Prefix{netip.MustParsePrefix("100.96.1.2/32"), netip.MustParsePrefix("fd77:7370:616e::1:2/128")},
			Peers: []dataplane.Peer{{PublicKey: peer.PublicKey(), Endpoint: netip.MustParseAddrPort("172.28.2.10:51820"),
				AlsoAccepted: []netip.AddrPort{netip.MustParseAddrPort("172.28.2.11:51820")},
				AllowedIPs:   []netip.Prefix{netip.MustParsePrefix("10.2.0.0/16")}, Keepalive: 25 * time.Second}}},
		Routes:    []dataplane.Route{{Dst: netip.MustParsePrefix("10.2.0.0/16"), Dev: "wirespan0", Src: netip.MustParseAddr("100.96.1.2")}},
		Rules:     []dataplane.Rule{{Priority: 100, Table: 51820, SkipMark: 0xca}, {IPv6: true, Priority: 100, Table: 51820, SkipMark: 0xca}},
		Neighbors: []dataplane.Neighbor{{Dev: "wirespan-vx", IP: netip.MustParseAddr("172.28.1.10"), MAC: net.HardwareAddr{2, 1, 2, 3, 4, 5}}},
		MSSClamp:  []string{"wirespan0"},
		Sysctls:   map[string]string{"net/ipv4/ip_forward": "1"},
	}
	if err := l.save(st); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, l.path: 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode().Perm(), err, want)
		}
	}
	got, ok, err := (&lastState{path: l.path}).load()
	if !ok || err != nil || !reflect.DeepEqual(got, st) {
		t.Fatalf("loaded %+v, %v, %v; want what was saved", got, ok, err)
	}
	// An unchanged state is not written again.
	before, _ := os.Stat(l.path)
	time.Sleep(10 * time.Millisecond)
	if err := l.save(st); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(l.path); !after.ModTime().Equal(before.ModTime()) {
		t.Error("an unchanged state was written again")
	}
	// Not the gateway any more: the copy goes.
	if err := l.forget(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l.path); !os.IsNotExist(err) {
		t.Errorf("after forget: %v", err)
	}
	// A damaged file is an error, not a state.
	if err := os.WriteFile(l.path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := l.load(); ok || err == nil || !strings.Contains(err.Error(), "not valid") {
		t.Errorf("damaged file: ok %v, err %v", ok, err)
	}
	// Another format is refused, not half applied.
	if err := os.WriteFile(l.path, []byte(`{"format":99,"state":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := l.load(); ok || err == nil || !strings.Contains(err.Error(), "format 99") {
		t.Errorf("other format: ok %v, err %v", ok, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("files left in %s: %v", dir, entries)
	}
}
