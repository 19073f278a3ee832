package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/gateway/internal/agent"
	"github.com/wirespan/wirespan/gateway/internal/dataplane"
	"github.com/wirespan/wirespan/internal/claims"
	"github.com/wirespan/wirespan/internal/clusterkey"
)

// world is one consistent read of everything the gateway depends on.
type world struct {
	in     agent.Inputs
	self   *wirespanv1alpha1.ClusterPeer
	remote map[string]*wirespanv1alpha1.ClusterPeer
	// keyErr says why the cluster key could not be read; only the active
	// gateway needs it.
	keyErr error
	// gateway: this node is labeled a gateway (active or standby).
	gateway bool
}

// read gathers the inputs from the caches and the node's own interfaces.
// learned returns what gossip knows of a cluster, if anything.
func (s *syncer) read(ctx context.Context, learned func(string) *agent.Learned) (*world, error) {
	o := s.opts
	w := &world{remote: map[string]*wirespanv1alpha1.ClusterPeer{}}
	w.in = agent.Inputs{Config: o.Agent, Cluster: o.ClusterID}

	var node corev1.Node
	if err := s.cache.Get(ctx, client.ObjectKey{Name: o.NodeName}, &node); err != nil {
		return nil, fmt.Errorf("read own Node %s: %w", o.NodeName, err)
	}
	ip, ok := internalIP(&node)
	if !ok {
		return nil, fmt.Errorf("own Node %s has no InternalIP address in status.addresses", o.NodeName)
	}
	underlay, mtu, networks, err := s.interfaceWith(ip)
	if err != nil {
		return nil, err
	}
	w.in.Node = agent.Node{Name: o.NodeName, IP: ip, Underlay: underlay, UnderlayMTU: mtu, Networks: networks}

	var nodes corev1.NodeList
	if err := s.cache.List(ctx, &nodes, client.MatchingLabels{wirespanv1alpha1.LabelGateway: "true"}); err != nil {
		return nil, fmt.Errorf("list gateway Nodes: %w", err)
	}
	for i := range nodes.Items {
		if gip, ok := internalIP(&nodes.Items[i]); ok {
			w.in.Gateways = append(w.in.Gateways, agent.Gateway{Node: nodes.Items[i].Name, IP: gip})
		}
	}

	var peers wirespanv1alpha1.ClusterPeerList
	if err := s.cache.List(ctx, &peers); err != nil {
		return nil, fmt.Errorf("list ClusterPeers: %w", err)
	}
	// The tunnels as they are, to choose which of a peer's endpoints to
	// dial (none on a node agent).
	dev, _ := s.kernel.Device(o.Agent.WireGuardName)
	now := time.Now()
	for i := range peers.Items {
		p := &peers.Items[i]
		if p.Name == o.ClusterID {
			w.self = p
			w.in.SelfRanges = append(parseLoose(p.Status.PodCIDRs), parseLoose(p.Status.ServiceCIDRs)...)
			w.in.SelfHasEndpoint = len(p.Spec.Endpoints) > 0
			continue
		}
		w.remote[p.Name] = p
		claimed, excess := announced(p, learned(p.Name))
		endpoints, healthy := s.endpoints.order(p.Name, s.resolver.resolve(ctx, p.Spec.Endpoints), recordedEndpoint(p), devicePeer(dev, p.Spec.PublicKey), now)
		w.in.Peers = append(w.in.Peers, agent.Peer{
			Cluster:      p.Name,
			PublicKey:    p.Spec.PublicKey,
			Endpoints:    endpoints,
			Healthy:      healthy,
			AllowedCIDRs: parseLoose(p.Spec.AllowedCIDRs),
			Claims:       claimed,
			Excess:       excess,
		})
	}

	// Every gateway node reads the key: only a node that has it may stand
	// for the active role. So does the holder that lost its label: it
	// carries traffic until its successor holds the Lease.
	w.gateway = isGateway(&node)
	if w.gateway || s.elector.Active() == o.NodeName {
		key, err := s.clusterKey(ctx)
		w.in.PrivateKey, w.keyErr = key, err
	}
	var successors []string
	for _, g := range w.in.Gateways {
		if g.Node != o.NodeName {
			successors = append(successors, g.Node)
		}
	}
	slices.Sort(successors)
	s.elector.SetSuccessors(successors)
	s.elector.SetCandidate(isGateway(&node) && w.in.PrivateKey != nil)
	w.in.Active = s.elector.Active()
	if w.in.Active != "" && agent.ActiveGateway(w.in.Gateways, w.in.Active) == nil {
		// The holder lost its label and carries traffic until its
		// successor holds the Lease (election's handover): it is still
		// the gateway to route to.
		var holder corev1.Node
		if err := s.cache.Get(ctx, client.ObjectKey{Name: w.in.Active}, &holder); err == nil {
			if gip, ok := internalIP(&holder); ok {
				w.in.Gateways = append(w.in.Gateways, agent.Gateway{Node: holder.Name, IP: gip})
			}
		}
	}
	return w, nil
}

func isGateway(n *corev1.Node) bool {
	return n.Labels[wirespanv1alpha1.LabelGateway] == "true"
}

// announced are the ranges a remote cluster announced: over gossip if it
// has been heard from since this process started, otherwise as the last
// gateway wrote them in its ClusterPeer status. That keeps a restarted
// gateway, and node agents, routing what was routed before. Each list is
// cut to what a status holds (claims.Limit); excess is the rest, refused.
func announced(p *wirespanv1alpha1.ClusterPeer, l *agent.Learned) (claimed, excess []netip.Prefix) {
	var pods, services []netip.Prefix
	switch {
	case l != nil:
		pods, services = l.PodCIDRs, l.ServiceCIDRs
	case p.Status.Role == wirespanv1alpha1.RoleRemote:
		pods, services = parseLoose(p.Status.PodCIDRs), parseLoose(p.Status.ServiceCIDRs)
	}
	podsKept, podsExcess := claims.Limit(pods)
	servicesKept, servicesExcess := claims.Limit(services)
	return append(podsKept, servicesKept...), append(podsExcess, servicesExcess...)
}

func (s *syncer) clusterKey(ctx context.Context) (*wgtypes.Key, error) {
	return readClusterKey(ctx, s.cache, s.opts.KeySecret)
}

// readClusterKey reads the cluster key Secret and parses its private key
// the way the operator does (clusterkey.PrivateKey), so a Secret the
// operator accepts, such as one whose key ends in a newline, never stops
// the active gateway.
func readClusterKey(ctx context.Context, r client.Reader, name types.NamespacedName) (*wgtypes.Key, error) {
	var secret corev1.Secret
	if err := r.Get(ctx, name, &secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("cluster key Secret %s not found (the operator creates it)", name)
		}
		return nil, fmt.Errorf("read cluster key Secret %s: %w", name, err)
	}
	key, err := clusterkey.PrivateKey(&secret)
	if err != nil {
		return nil, fmt.Errorf("cluster key Secret %s: %w", name, err)
	}
	return &key, nil
}

// internalIP is a Node's InternalIP: its IPv4 one if it has one (what
// node agents' VXLAN and direct routes have always used), else its IPv6
// one, on a node network of IPv6 only.
func internalIP(n *corev1.Node) (netip.Addr, bool) {
	var v6 netip.Addr
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		ip, err := netip.ParseAddr(a.Address)
		switch {
		case err != nil:
		case ip.Is4():
			return ip, true
		case !v6.IsValid() && !ip.IsLinkLocalUnicast():
			v6 = ip
		}
	}
	return v6, v6.IsValid()
}

// interfaceWith finds the interface that holds ip: the node network's. It
// returns the interface's name, MTU and the prefixes of all its addresses
// (the node networks, which no claim may cover).
func interfaceWith(ip netip.Addr) (string, int, []netip.Prefix, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return "", 0, nil, fmt.Errorf("list interfaces: %w", err)
	}
	for _, iface := range ifaces {
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		var networks []netip.Prefix
		found := false
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if p, ok := dataplane.Prefix(*n); ok {
				networks = append(networks, p.Masked())
				found = found || p.Addr() == ip
			}
		}
		if found {
			return iface.Name, iface.MTU, networks, nil
		}
	}
	return "", 0, nil, fmt.Errorf("no interface holds the Node's InternalIP %s: is the gateway running in the host network namespace?", ip)
}

func parseLoose(values []string) []netip.Prefix {
	var out []netip.Prefix
	for _, v := range values {
		if p, err := netip.ParsePrefix(v); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// resolver turns spec.endpoints into addresses, caching DNS answers for a
// minute and keeping the last good answer when a lookup fails.
type resolver struct {
	mu    sync.Mutex
	cache map[string]resolved
}

type resolved struct {
	addr netip.AddrPort
	at   time.Time
}

const resolveTTL = time.Minute

func (r *resolver) resolve(ctx context.Context, endpoints []string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, ep := range endpoints {
		if ap, err := r.one(ctx, ep); err == nil {
			out = append(out, ap)
		}
	}
	return out
}

func (r *resolver) one(ctx context.Context, endpoint string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(endpoint); err == nil {
		return ap, nil
	}
	host, portText, err := net.SplitHostPort(endpoint)
	if err != nil {
		return netip.AddrPort{}, err
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	r.mu.Lock()
	c, ok := r.cache[endpoint]
	r.mu.Unlock()
	if ok && time.Since(c.at) < resolveTTL {
		return c.addr, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		if ok {
			return c.addr, nil
		}
		return netip.AddrPort{}, errors.Join(fmt.Errorf("resolve %s", host), err)
	}
	ap := netip.AddrPortFrom(ips[0].Unmap(), uint16(port))
	r.mu.Lock()
	if r.cache == nil {
		r.cache = map[string]resolved{}
	}
	r.cache[endpoint] = resolved{addr: ap, at: time.Now()}
	r.mu.Unlock()
	return ap, nil
}

// recordedEndpoint is where the tunnel to p last worked, as this cluster's
// active gateway recorded it in p's status.
func recordedEndpoint(p *wirespanv1alpha1.ClusterPeer) netip.AddrPort {
	if p.Status.Tunnel == nil {
		return netip.AddrPort{}
	}
	ep, _ := netip.ParseAddrPort(p.Status.Tunnel.Endpoint)
	return ep
}

// devicePeer is the peer with publicKey on dev, nil if there is none.
func devicePeer(dev *wgtypes.Device, publicKey string) *wgtypes.Peer {
	key, err := wgtypes.ParseKey(publicKey)
	if dev == nil || err != nil {
		return nil
	}
	for i := range dev.Peers {
		if dev.Peers[i].PublicKey == key {
			return &dev.Peers[i]
		}
	}
	return nil
}
