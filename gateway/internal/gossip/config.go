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

	// ProbeInterval is the time between failure-detection probes of one
	// random member (default 1 s); ProbeTimeout is how long to wait for the
	// ack, and should exceed the worst round trip (default 500 ms).
	ProbeInterval, ProbeTimeout time.Duration
	// PushPullInterval is the time between full state exchanges with one
	// random member, which heals partitions (default 10 s).
	PushPullInterval time.Duration
	// GossipInterval is the time between membership gossip rounds
	// (default 200 ms).
	GossipInterval time.Duration
	// TCPTimeout bounds connecting to a member (default 5 s).
	TCPTimeout time.Duration
	// LeaveTimeout bounds waiting for the leave broadcast in Shutdown
	// (default 2 s).
	LeaveTimeout time.Duration
	// RetryInterval is the wait before resending our state to a member that
	// a direct send failed to reach, while it is still a member
	// (default 2 × ProbeInterval).
	RetryInterval time.Duration
	// ExportTTL is how long a cluster can have no gateway in the pool
	// before RemoteExports reports it Silent (default 30 s): long enough
	// to ride out a gateway restart, short enough that clients stop being
	// sent to endpoints nobody can reach.
	ExportTTL time.Duration
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
	def(&c.GossipInterval, 200*time.Millisecond)
	def(&c.TCPTimeout, 5*time.Second)
	def(&c.LeaveTimeout, 2*time.Second)
	def(&c.RetryInterval, 2*c.ProbeInterval)
	def(&c.ExportTTL, 30*time.Second)
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
	if !c.BindAddr.IsValid() {
		return fmt.Errorf("no bind address")
	}
	if c.Port != AnyPort && (c.Port < 1 || c.Port > 65535) {
		return fmt.Errorf("port %d out of range", c.Port)
	}
	return nil
}
