// Command hostilepeer is a gossip speaker for one cluster that is not
// Wirespan's gateway: it holds the cluster's key and says whatever its
// records file says. The end-to-end test of a hostile cluster
// (test/e2e/peering_exports_test.go) builds it with `go build` and runs it
// in that cluster's active gateway node, to show what the other clusters
// do with exports that an honest gateway would never send: backdated,
// oversized, refused by any API server, or a flood.
//
// It is a test tool, never shipped: no image, chart or release builds it,
// and it lives under gateway/internal only because it uses the gossip
// package as the real gateway does (Go's internal-package rule).
//
// It binds the cluster's tunnel address (derived from its key, as the
// gateway's) on --port, which may differ from the gossip port the real
// gateway holds; it sends to the peers' gossip port (--peer-port). It
// publishes --pod-cidrs and --service-cidrs as the cluster's state, prints
// every 500 ms the clusters that spoke to it authentically ("members
// c1,c3"), and once every peer has, publishes the records of --records as
// its exports ("published N records"); until SIGTERM or SIGINT.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/wirespan/wirespan/gateway/internal/agent"
	"github.com/wirespan/wirespan/gateway/internal/gossip"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "hostilepeer:", err)
		os.Exit(1)
	}
}

type options struct {
	cluster, node, keyFile, records string
	peers                           []string // name=base64 public key
	tunnelCIDR                      string
	port, peerPort                  int
	podCIDRs, serviceCIDRs          string
}

func parse() (options, error) {
	var o options
	fs := flag.NewFlagSet("hostilepeer", flag.ContinueOnError)
	fs.StringVar(&o.cluster, "cluster", "", "the cluster to speak for")
	fs.StringVar(&o.node, "node", "", "the node named as its active gateway")
	fs.StringVar(&o.keyFile, "private-key-file", "", "file holding the cluster's WireGuard private key (base64)")
	fs.Func("peer", "a peer cluster, NAME=PUBLICKEY (repeat)", func(s string) error { o.peers = append(o.peers, s); return nil })
	fs.StringVar(&o.tunnelCIDR, "tunnel-cidr", "100.96.0.0/16", "the gateways' --tunnel-cidr")
	fs.IntVar(&o.port, "port", gossip.DefaultPort, "port to bind on the tunnel address")
	fs.IntVar(&o.peerPort, "peer-port", gossip.DefaultPort, "the peers' gossip port")
	fs.StringVar(&o.podCIDRs, "pod-cidrs", "", "comma-separated pod ranges to announce")
	fs.StringVar(&o.serviceCIDRs, "service-cidrs", "", "comma-separated Service ranges to announce")
	fs.StringVar(&o.records, "records", "", `JSON file {"namespace/name": record, ...} of the exports to publish`)
	if err := fs.Parse(os.Args[1:]); err != nil {
		return o, err
	}
	if o.cluster == "" || o.node == "" || o.keyFile == "" || len(o.peers) == 0 {
		return o, fmt.Errorf("--cluster, --node, --private-key-file and --peer are required")
	}
	return o, nil
}

func run() error {
	o, err := parse()
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(o.keyFile)
	if err != nil {
		return fmt.Errorf("read the private key: %w", err)
	}
	priv, err := wgtypes.ParseKey(strings.TrimSpace(string(raw)))
	if err != nil {
		return fmt.Errorf("parse the private key in %s: %w", o.keyFile, err)
	}
	peers := map[string]wgtypes.Key{}
	for _, p := range o.peers {
		name, key, _ := strings.Cut(p, "=")
		if peers[name], err = wgtypes.ParseKey(key); err != nil {
			return fmt.Errorf("--peer %s: %w", p, err)
		}
	}
	tunnel, err := netip.ParsePrefix(o.tunnelCIDR)
	if err != nil {
		return fmt.Errorf("--tunnel-cidr: %w", err)
	}
	state := gossip.ClusterState{Cluster: o.cluster, ActiveGateway: o.node}
	if state.PodCIDRs, err = prefixes(o.podCIDRs); err != nil {
		return fmt.Errorf("--pod-cidrs: %w", err)
	}
	if state.ServiceCIDRs, err = prefixes(o.serviceCIDRs); err != nil {
		return fmt.Errorf("--service-cidrs: %w", err)
	}
	records, err := readRecords(o.records)
	if err != nil {
		return err
	}

	g, err := gossip.New(gossip.Config{
		Cluster: o.cluster, Node: o.node, PrivateKey: priv,
		BindAddr: agent.TunnelAddress(tunnel, priv.PublicKey()), Port: o.port,
		PeerAddr: func(k wgtypes.Key) netip.AddrPort {
			return netip.AddrPortFrom(agent.TunnelAddress(tunnel, k), uint16(o.peerPort))
		},
	})
	if err != nil {
		return fmt.Errorf("start gossip: %w", err)
	}
	defer func() { _ = g.Shutdown() }()
	if err := g.SetPeers(peers); err != nil {
		return fmt.Errorf("set peers: %w", err)
	}
	if err := g.SetLocal(state); err != nil {
		return fmt.Errorf("publish the state: %w", err)
	}
	fmt.Printf("speaking for %s on %s, %d records\n", o.cluster, g.LocalAddr(), len(records))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	published := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			heard := heardFrom(g, o.cluster)
			fmt.Println("members", strings.Join(heard, ","))
			// The records go out once every peer is present: changes are
			// sent to present peers only, and a set over 16 MiB has no
			// snapshot to carry it to the others later.
			if !published && len(heard) == len(peers) {
				published = true
				if err := g.SetExports(records); err != nil {
					// What our own gossip refuses (over 256 KiB, not
					// JSON) is left out; the rest goes.
					fmt.Println("refused by our own gossip:", err)
				}
				fmt.Println("published", len(records), "records")
			}
		}
	}
}

// heardFrom returns the clusters other than local that spoke to us
// authentically, sorted.
func heardFrom(g *gossip.Gossip, local string) []string {
	var heard []string
	for _, m := range g.Members() {
		if m.Cluster != local {
			heard = append(heard, m.Cluster)
		}
	}
	slices.Sort(heard)
	return heard
}

func prefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' }) {
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("parse %q: %w", f, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// readRecords reads the exports to publish, keyed "namespace/name".
func readRecords(path string) (map[gossip.ExportKey]json.RawMessage, error) {
	out := map[gossip.ExportKey]json.RawMessage{}
	if path == "" {
		return out, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the records: %w", err)
	}
	var byKey map[string]json.RawMessage
	if err := json.Unmarshal(raw, &byKey); err != nil {
		return nil, fmt.Errorf("decode the records in %s: %w", path, err)
	}
	for k, rec := range byKey {
		ns, name, ok := strings.Cut(k, "/")
		if !ok {
			return nil, fmt.Errorf("record key %q is not namespace/name", k)
		}
		out[gossip.ExportKey{Namespace: ns, Name: name}] = rec
	}
	return out, nil
}
