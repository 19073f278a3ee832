// Package probe answers a ProbeRequest: it looks at the network from this
// node the way `kubectl wirespan diagnose` cannot through the API alone
// (whether a peer's endpoint answers on UDP, the path MTU through each
// tunnel and on the underlay, the reverse-path filter's verdict on
// Wirespan's links, the gossip pool, what the cluster DNS answers) and
// writes what it found into the request's status.
//
// The decisions (what to probe, in which order, what the figures mean)
// are here and pure; every packet and kernel question goes through Env,
// whose real implementation is package netprobe.
package probe

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/gateway/internal/dataplane"
	"github.com/wirespan/wirespan/gateway/internal/gossip"
)

// Waits of the probes. Each peer is probed on its own goroutine, so a
// request costs about the slowest peer: at most RoundTrips echoes of
// RoundTripWait, then HandshakeWait, then UDPWait, then the MTU search,
// in which a lost echo costs EchoWait.
const (
	RoundTrips    = 2
	RoundTripWait = time.Second
	HandshakeWait = 2 * time.Second
	UDPWait       = time.Second
	EchoWait      = 300 * time.Millisecond
)

// MinMTU is the smallest MTU the search tries: IPv4's minimum datagram
// every link must carry unfragmented.
const MinMTU = 576

// Peer is one remote cluster as the gateway's last plan has it.
type Peer struct {
	Cluster string
	// HasKey is false when no tunnel is built (no key in Git, or an
	// invalid one); Problem says why.
	HasKey  bool
	Problem string
	// Endpoint is where the device sends the peer's traffic (zero: not
	// known yet, a peer behind NAT that has not dialed in).
	Endpoint netip.AddrPort
	// TunnelAddr is the peer's IPv4 tunnel address, which answers echoes
	// through the tunnel.
	TunnelAddr netip.Addr
}

// Path is one reverse-path question: would the kernel accept a packet
// from Source arriving on Link for Destination? Range is the range
// Source stands for.
type Path struct {
	Link        string
	Range       netip.Prefix
	Source      netip.Addr
	Destination netip.Addr
}

// Inputs is what the node knows when the request comes.
type Inputs struct {
	// Node is this node's name, Role its role (ProbeRoleGateway or
	// ProbeRoleNodeAgent), Version the gateway's version.
	Node, Role, Version string
	// Device is the WireGuard link (the active gateway only).
	Device string
	Peers  []Peer
	Paths  []Path
	// Gossip is what the gossip pool heard (the active gateway only).
	Gossip []gossip.PeerHeard
	// DNSServer is the cluster DNS Service's address; zero when it could
	// not be read, and DNSError then says why.
	DNSServer netip.AddrPort
	DNSError  string
}

// PeerStats is what the WireGuard device shows of one peer.
type PeerStats struct {
	LastHandshake time.Time
	Received      int64
}

// Env is the network and the kernel, as the probes use them.
type Env interface {
	// Peers reads the device's figures of every peer, by cluster.
	Peers() (map[string]PeerStats, error)
	// Rehandshake makes the device start a new handshake with the peer.
	Rehandshake(cluster string) error
	// LinkMTU is a link's MTU.
	LinkMTU(link string) (int, error)
	// Echo sends one ICMP echo of size bytes (IP header included) to dst
	// with don't-fragment set, and says whether the reply came within
	// wait.
	Echo(ctx context.Context, dst netip.Addr, size int, wait time.Duration) (bool, error)
	// UDPRefused sends one empty datagram to ep and says whether its host
	// answered port unreachable within wait.
	UDPRefused(ctx context.Context, ep netip.AddrPort, wait time.Duration) (bool, error)
	// UnderlayEcho is Echo on the node network, with the WireGuard
	// device's fwmark, so it takes the route WireGuard's packets take.
	UnderlayEcho(ctx context.Context, dst netip.Addr, size int, wait time.Duration) (bool, error)
	// UnderlayMTU sends a datagram of size bytes (IP header included) to
	// ep with don't-fragment set and returns the path MTU the kernel
	// knows towards it afterwards.
	UnderlayMTU(ctx context.Context, ep netip.AddrPort, size int) (int, error)
	// ReversePath asks the kernel's routing whether it accepts p, and
	// the link's effective rp_filter.
	ReversePath(p Path) (rpFilter int, accepted bool, message string, err error)
	// Lookup asks server for name's A and AAAA records.
	Lookup(ctx context.Context, server netip.AddrPort, name string) (rcode string, addrs []netip.Addr, err error)
}

// Run probes what spec asks of this node and returns the status to write.
func Run(ctx context.Context, spec wirespanv1alpha1.ProbeRequestSpec, in Inputs, env Env, now func() time.Time) wirespanv1alpha1.ProbeRequestStatus {
	start := metav1.NewTime(now())
	st := wirespanv1alpha1.ProbeRequestStatus{Node: in.Node, Role: in.Role, Version: in.Version, StartTime: &start}
	var wg sync.WaitGroup
	if in.Role == wirespanv1alpha1.ProbeRoleGateway {
		peers := selectPeers(spec.Peers, in.Peers)
		st.Peers = make([]wirespanv1alpha1.PeerProbe, len(peers))
		stats, statsErr := env.Peers()
		mtu, mtuErr := env.LinkMTU(in.Device)
		for i, p := range peers {
			wg.Go(func() {
				st.Peers[i] = probePeer(ctx, p, peerEnv{Env: env, stats: stats, statsErr: statsErr, mtu: mtu, mtuErr: mtuErr}, now)
			})
		}
		st.Gossip = gossipMembers(in.Gossip)
	}
	st.DNS = make([]wirespanv1alpha1.DNSProbe, len(spec.DNSNames))
	for i, name := range spec.DNSNames {
		wg.Go(func() { st.DNS[i] = lookup(ctx, in, env, name) })
	}
	var rpErrs []string
	st.ReversePath, rpErrs = reversePaths(in.Paths, env)
	wg.Wait()
	for _, e := range rpErrs {
		st.Warnings = append(st.Warnings, "reverse-path filter not checked: "+e)
	}
	done := metav1.NewTime(now())
	st.CompletionTime = &done
	return st
}

// selectPeers returns the peers asked for, in the order asked (all, by
// name, when none is named); a name this gateway does not peer with comes
// back as a peer without key, so the answer says so.
func selectPeers(names []string, known []Peer) []Peer {
	if len(names) == 0 {
		out := slices.Clone(known)
		slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.Cluster, b.Cluster) })
		return out
	}
	out := make([]Peer, 0, len(names))
	for _, n := range names {
		if i := slices.IndexFunc(known, func(p Peer) bool { return p.Cluster == n }); i >= 0 {
			out = append(out, known[i])
			continue
		}
		out = append(out, Peer{Cluster: n, Problem: "this gateway does not peer with it (no such ClusterPeer, or it is this cluster's own)"})
	}
	return out
}

// peerEnv is Env with what every peer's probe shares, read once.
type peerEnv struct {
	Env
	stats    map[string]PeerStats
	statsErr error
	mtu      int
	mtuErr   error
}

func probePeer(ctx context.Context, p Peer, env peerEnv, now func() time.Time) wirespanv1alpha1.PeerProbe {
	out := wirespanv1alpha1.PeerProbe{Name: p.Cluster, UDP: wirespanv1alpha1.UDPNotProbed}
	if p.Endpoint.IsValid() {
		out.Endpoint = p.Endpoint.String()
	}
	if !p.HasKey {
		out.UDPMessage = "no tunnel: " + p.Problem
		return out
	}
	answered := probeUDP(ctx, p, env, now, &out)
	if env.mtuErr != nil {
		out.MTUMessage = fmt.Sprintf("read the tunnel's MTU: %v", env.mtuErr)
		return out
	}
	out.TunnelMTU = int32(env.mtu)
	probeMTU(ctx, p, env, answered, &out)
	return out
}

// probeUDP fills the UDP result: a small echo through the tunnel that
// comes back answers it (traffic arriving from the peer would not: it
// keeps arriving when only our packets are dropped); else a new handshake
// is started and awaited; else one empty datagram tells a closed port
// (refused) from a silent path. It returns whether the tunnel carries
// traffic both ways.
func probeUDP(ctx context.Context, p Peer, env peerEnv, now func() time.Time, out *wirespanv1alpha1.PeerProbe) bool {
	if env.statsErr != nil {
		out.UDPMessage = fmt.Sprintf("read the WireGuard device: %v", env.statsErr)
		return false
	}
	before, start := env.stats[p.Cluster], now()
	setLast := func(t time.Time) {
		if !t.IsZero() {
			mt := metav1.NewTime(t)
			out.LastHandshakeTime = &mt
		}
	}
	setLast(before.LastHandshake)
	if p.TunnelAddr.IsValid() {
		for range RoundTrips {
			if ok, _ := env.Echo(ctx, p.TunnelAddr, smallEcho, RoundTripWait); ok {
				out.UDP = wirespanv1alpha1.UDPAnswered
				out.UDPMessage = fmt.Sprintf("an echo through the tunnel to %s came back; %s", p.TunnelAddr, lastHandshake(before.LastHandshake, start))
				return true
			}
		}
	}
	if !p.Endpoint.IsValid() {
		out.UDPMessage = "no endpoint to send to: the peer lists none and has not dialed in (a cluster behind NAT must dial first)"
		return false
	}
	silent := fmt.Sprintf("%d echoes through the tunnel to %s did not come back (%s)", RoundTrips, p.TunnelAddr, lastHandshake(before.LastHandshake, start))
	asked := now()
	if err := env.Rehandshake(p.Cluster); err != nil {
		silent += fmt.Sprintf("; no new handshake started: %v", err)
	} else if got, ok := await(ctx, env, p.Cluster, HandshakeWait, func(s PeerStats) bool { return s.LastHandshake.After(before.LastHandshake) }); ok {
		setLast(got.LastHandshake)
		out.UDP = wirespanv1alpha1.UDPAnswered
		out.UDPMessage = fmt.Sprintf("%s; a new handshake completed %s after the probe started it", silent, got.LastHandshake.Sub(asked).Round(time.Millisecond))
		return true
	} else {
		silent += fmt.Sprintf("; a new handshake did not complete within %s", HandshakeWait)
	}
	refused, err := env.UDPRefused(ctx, p.Endpoint, UDPWait)
	switch {
	case err != nil:
		out.UDPMessage = fmt.Sprintf("%s; sending to %s: %v", silent, p.Endpoint, err)
	case refused:
		out.UDP = wirespanv1alpha1.UDPRefused
		out.UDPMessage = fmt.Sprintf("%s; %s answered ICMP port unreachable: nothing listens on UDP port %d there", silent, p.Endpoint.Addr(), p.Endpoint.Port())
	default:
		out.UDP = wirespanv1alpha1.UDPNoAnswer
		out.UDPMessage = fmt.Sprintf("%s; a datagram to %s drew no answer within %s: UDP is dropped on the way (either way), the host is down, or the peer does not take this cluster's key", silent, p.Endpoint, UDPWait)
	}
	return false
}

// smallEcho is the size of the round-trip echo: any working path carries
// it.
const smallEcho = 84

func lastHandshake(last, now time.Time) string {
	if last.IsZero() {
		return "no handshake yet"
	}
	return fmt.Sprintf("last handshake %s ago", now.Sub(last).Round(time.Second))
}

// await polls the device until the peer's figures satisfy cond, for at
// most wait.
func await(ctx context.Context, env peerEnv, cluster string, wait time.Duration, cond func(PeerStats) bool) (PeerStats, bool) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return PeerStats{}, false
		case <-deadline.C:
			return PeerStats{}, false
		case <-tick.C:
		}
		stats, err := env.Peers()
		if err != nil {
			continue
		}
		if s := stats[cluster]; cond(s) {
			return s, true
		}
	}
}

// overhead is what WireGuard adds to an inner packet on the way to ep.
func overhead(ep netip.AddrPort) int {
	if ep.Addr().Unmap().Is4() {
		return 60 // 20 IPv4 + 8 UDP + 32 WireGuard
	}
	return 80 // 40 IPv6 + 8 UDP + 32 WireGuard
}

// probeMTU finds the largest echo that crosses the tunnel with
// don't-fragment set, and the underlay's path MTU to the endpoint for a
// full tunnel packet.
func probeMTU(ctx context.Context, p Peer, env peerEnv, answered bool, out *wirespanv1alpha1.PeerProbe) {
	var notes []string
	if p.Endpoint.IsValid() {
		out.Overhead = int32(overhead(p.Endpoint))
		notes = append(notes, underlayMTU(ctx, p, env, out)...)
	}
	switch {
	case !answered:
		notes = append(notes, "no echo through the tunnel: it does not carry traffic both ways")
	case !p.TunnelAddr.IsValid():
		notes = append(notes, "no tunnel address to send echoes to")
	default:
		largest, err := Largest(MinMTU, env.mtu, func(size int) (bool, error) {
			return env.Echo(ctx, p.TunnelAddr, size, EchoWait)
		})
		out.PathMTU = int32(largest)
		switch {
		case err != nil:
			notes = append(notes, fmt.Sprintf("echo to %s: %v", p.TunnelAddr, err))
		case largest == 0:
			notes = append(notes, fmt.Sprintf("no echo of %d bytes or more to %s came back through the tunnel", MinMTU, p.TunnelAddr))
		case largest < env.mtu:
			notes = append(notes, fmt.Sprintf("echoes to %s through the tunnel came back up to %d bytes, not at the tunnel's MTU of %d", p.TunnelAddr, largest, env.mtu))
		default:
			notes = append(notes, fmt.Sprintf("echoes of the tunnel's MTU (%d bytes) to %s come back", env.mtu, p.TunnelAddr))
		}
	}
	out.MTUMessage = joinNotes(notes)
}

func joinNotes(notes []string) string { return strings.Join(notes, "; ") }

// underlayMTU fills the underlay's path MTU towards the endpoint: the
// largest don't-fragment echo its address answers, when it answers
// echoes over IPv4 (that also finds a path that drops large packets
// without saying so); else the path MTU the kernel knows after a
// don't-fragment datagram of a full tunnel packet's size, which a router
// on the way answers with its MTU. It returns the notes for the message.
func underlayMTU(ctx context.Context, p Peer, env peerEnv, out *wirespanv1alpha1.PeerProbe) []string {
	need := env.mtu + overhead(p.Endpoint)
	addr := p.Endpoint.Addr().Unmap()
	how := "by echoes to its address"
	got := 0
	var err error
	if ok, _ := env.UnderlayEcho(ctx, addr, smallEcho, RoundTripWait); ok && addr.Is4() {
		got, err = Largest(MinMTU, need, func(size int) (bool, error) { return env.UnderlayEcho(ctx, addr, size, EchoWait) })
	} else {
		how = "by the kernel, after a datagram of that size"
		got, err = env.UnderlayMTU(ctx, p.Endpoint, need)
	}
	if err != nil {
		return []string{fmt.Sprintf("underlay path MTU to %s: %v", addr, err)}
	}
	out.UnderlayMTU = int32(got)
	if got < need {
		return []string{fmt.Sprintf("the underlay carries %d bytes to %s (%s), and a full tunnel packet takes %d (%d + %d)", got, addr, how, need, env.mtu, overhead(p.Endpoint))}
	}
	return []string{fmt.Sprintf("the underlay carries full tunnel packets of %d bytes to %s (%s)", need, addr, how)}
}

// Largest returns the largest size in [lo, hi] for which pass is true,
// assuming a size passes when a larger one does (a path MTU); 0 when
// none does. It tries hi first, so a healthy path costs one probe, and
// twice: the first packet of a size a path has not carried yet may be
// lost while a sender on the way learns the path's MTU, after which it
// fragments such packets (path MTU discovery working, which the underlay
// check reports on the side that sends). Then it searches. An error
// stops the search.
func Largest(lo, hi int, pass func(int) (bool, error)) (int, error) {
	if hi < lo {
		return 0, nil
	}
	for range 2 {
		ok, err := pass(hi)
		if err != nil {
			return 0, err
		}
		if ok {
			return hi, nil
		}
	}
	best := 0
	for lo < hi {
		mid := lo + (hi-lo)/2
		ok, err := pass(mid)
		if err != nil {
			return best, err
		}
		if ok {
			best, lo = mid, mid+1
		} else {
			hi = mid
		}
	}
	return best, nil
}

func gossipMembers(heard []gossip.PeerHeard) []wirespanv1alpha1.GossipMemberProbe {
	out := make([]wirespanv1alpha1.GossipMemberProbe, 0, len(heard))
	for _, h := range heard {
		m := wirespanv1alpha1.GossipMemberProbe{Cluster: h.Cluster, Node: h.Node, Present: h.Present}
		if !h.Heard.IsZero() {
			t := metav1.NewTime(h.Heard)
			m.LastAuthenticatedTime = &t
		}
		out = append(out, m)
	}
	return out
}

func lookup(ctx context.Context, in Inputs, env Env, name string) wirespanv1alpha1.DNSProbe {
	out := wirespanv1alpha1.DNSProbe{Name: name}
	if !in.DNSServer.IsValid() {
		out.Message = "the cluster DNS Service: " + in.DNSError
		return out
	}
	out.Server = in.DNSServer.String()
	rcode, addrs, err := env.Lookup(ctx, in.DNSServer, name)
	out.RCode = rcode
	for _, a := range addrs {
		out.Addresses = append(out.Addresses, a.String())
	}
	if err != nil {
		out.Message = err.Error()
	}
	return out
}

// reversePaths asks the kernel about each path; a question it could not
// ask is left out of the answer and named in the errors, never reported
// as a refusal.
func reversePaths(paths []Path, env Env) ([]wirespanv1alpha1.ReversePathProbe, []string) {
	out := make([]wirespanv1alpha1.ReversePathProbe, 0, len(paths))
	var errs []string
	for _, p := range paths {
		rp, accepted, msg, err := env.ReversePath(p)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s from %s: %v", p.Link, p.Range, err))
			continue
		}
		out = append(out, wirespanv1alpha1.ReversePathProbe{
			Link: p.Link, Source: p.Range.String(), Destination: p.Destination.String(),
			RPFilter: int32(rp), Accepted: accepted, Message: msg,
		})
	}
	return out, errs
}

// maxPaths bounds the reverse-path questions of one request.
const maxPaths = 64

// Paths are the reverse-path questions for the node's kernel state st:
// packets from each remote IPv4 range Wirespan routes, arriving on the
// link the route leaves by (the tunnel on the gateway, VXLAN on a node
// agent), for an address of this cluster's pods (pods); and on a gateway
// that node agents reach over VXLAN, packets from the other nodes' pods
// (agentPods: their Node.spec.podCIDRs) arriving on that link for a
// remote address. IPv6 has no rp_filter to ask about.
func Paths(st dataplane.State, pods, agentPods []netip.Prefix) []Path {
	var local netip.Addr
	if i := slices.IndexFunc(pods, func(p netip.Prefix) bool { return p.Addr().Is4() }); i >= 0 {
		local = hostIn(pods[i])
	}
	var out []Path
	var remote netip.Addr
	for _, r := range st.Routes {
		if !r.Dst.Addr().Is4() || r.Dev == "" {
			continue
		}
		if !remote.IsValid() {
			remote = hostIn(r.Dst)
		}
		if local.IsValid() {
			out = append(out, Path{Link: r.Dev, Range: r.Dst, Source: hostIn(r.Dst), Destination: local})
		}
	}
	if st.WireGuard != nil && st.VXLAN != nil && remote.IsValid() {
		for _, p := range agentPods {
			if p.Addr().Is4() {
				out = append(out, Path{Link: st.VXLAN.Name, Range: p, Source: hostIn(p), Destination: remote})
			}
		}
	}
	if len(out) > maxPaths {
		out = out[:maxPaths]
	}
	return out
}

// hostIn is an address inside p other than its network address, when p
// has one.
func hostIn(p netip.Prefix) netip.Addr {
	p = p.Masked()
	if p.Bits() < p.Addr().BitLen() {
		return p.Addr().Next()
	}
	return p.Addr()
}
