package gossip

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

const (
	// DefaultPort is the memberlist port (TCP and UDP) on the tunnel address.
	DefaultPort = 7946
	// AnyPort as Config.Port lets the kernel choose a free port (tests);
	// LocalAddr tells which.
	AnyPort = -1
)

// Config configures a Gossip. Zero durations take the defaults, which suit a
// pool of a few dozen gateways over WAN tunnels: failures seen in a few
// seconds, state changes delivered at once, full resync every 10 s.
type Config struct {
	// Cluster and Node name this member "<Cluster>/<Node>"; Cluster is an
	// RFC 1123 label, Node a DNS subdomain (the Kubernetes node name).
	Cluster, Node string
	// PrivateKey is the cluster's WireGuard private key.
	PrivateKey wgtypes.Key
	// BindAddr is the address to bind and advertise: the cluster's tunnel
	// address.
	BindAddr netip.Addr
	// Port is the TCP and UDP port; 0 means DefaultPort, AnyPort a free one.
	Port int
	// Logger receives Gossip's logs, and memberlist's at V(1) and V(2).
	Logger logr.Logger
	// Registerer, if set, gets the wirespan_gossip_* metrics; Shutdown
	// unregisters them.
	Registerer prometheus.Registerer

	// PeerAddr returns where a peer cluster's gateway listens: its tunnel
	// address (derived from its public key) and the gossip port. Only
	// these addresses may reach the gossip port, and only they get our
	// messages: a name or an address that a packet claims decides nothing.
	// Required.
	PeerAddr func(publicKey wgtypes.Key) netip.AddrPort

	// ProbeInterval is the time between two heartbeats to every peer, and
	// two pings of every present peer (default 1 s); ProbeTimeout is how
	// long to wait for a ping's ack, and should exceed the worst round
	// trip (default 500 ms). A cluster is present while its last fresh
	// message is less than 5 × ProbeInterval old.
	ProbeInterval, ProbeTimeout time.Duration
	// PushPullInterval is the time between two sends of our state and our
	// whole export set to one present peer chosen at random, which heals
	// lost changes (default 10 s).
	PushPullInterval time.Duration
	// TCPTimeout bounds connecting to a member (default 5 s).
	TCPTimeout time.Duration
	// RetryInterval is the wait before resending to a present peer that a
	// direct send failed to reach (default 2 × ProbeInterval).
	RetryInterval time.Duration
	// ExportTTL is how long a cluster can go without a fresh
	// authenticated message before RemoteExports reports it Silent
	// (default 30 s): long enough to ride out a gateway restart or a
	// failover, short enough that clients stop being sent to endpoints
	// nobody can reach.
	ExportTTL time.Duration
	// MaxStreams bounds the incoming streams read at once (default 8); a
	// stream beyond it is closed at once, and its sender retries. With
	// the largest message of 16 MiB it bounds what incoming streams hold.
	MaxStreams int
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ProbeInterval, time.Second)
	def(&c.ProbeTimeout, 500*time.Millisecond)
	def(&c.PushPullInterval, 10*time.Second)
	def(&c.TCPTimeout, 5*time.Second)
	def(&c.RetryInterval, 2*c.ProbeInterval)
	def(&c.ExportTTL, 30*time.Second)
	if c.MaxStreams <= 0 {
		c.MaxStreams = 8
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.Logger.GetSink() == nil {
		c.Logger = logr.Discard()
	}
}

func (c *Config) validate() error {
	if err := validateCluster(c.Cluster); err != nil {
		return err
	}
	if err := validateNode(c.Node); err != nil {
		return err
	}
	if c.PrivateKey == (wgtypes.Key{}) {
		return fmt.Errorf("no private key")
	}
	if c.PeerAddr == nil {
		return fmt.Errorf("no PeerAddr")
	}
	if !c.BindAddr.IsValid() {
		return fmt.Errorf("no bind address")
	}
	if c.Port != AnyPort && (c.Port < 1 || c.Port > 65535) {
		return fmt.Errorf("port %d out of range", c.Port)
	}
	return nil
}

// presence is how long a cluster counts as present after its last fresh
// message: five heartbeats, so that a lost packet or two changes nothing.
func (c *Config) presence() time.Duration { return 5 * c.ProbeInterval }
