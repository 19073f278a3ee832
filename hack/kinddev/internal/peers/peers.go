// Package peers prepares the kind clusters of the Tilt loop for peering, the
// way a GitOps user would: each cluster gets its key Secret before Wirespan
// is installed (brought-your-own key, so the chart is told
// clusterKey.existingSecret), and the loop writes the ClusterPeer folder,
// one manifest per cluster with its public key, its gateways' addresses and
// its ranges, which it then applies unchanged to every cluster.
package peers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
)

// WireGuardPort is where gateways listen (wirespan-gateway --listen-port
// default), so where the ClusterPeers' endpoints point.
const WireGuardPort = 51820

// Peer is what the ClusterPeer manifest of one cluster says.
type Peer struct {
	Name         string
	PublicKey    string
	Endpoints    []netip.AddrPort
	AllowedCIDRs []netip.Prefix
}

// Cluster is one cluster to prepare.
type Cluster struct {
	// Name is the cluster ID: the name of its ClusterPeer.
	Name   string
	Client kubernetes.Interface
	// Namespace and Secret name the cluster key Secret.
	Namespace, Secret string
	// AllowedCIDRs are the cluster's pod and Service ranges: all it may
	// ever claim.
	AllowedCIDRs []netip.Prefix
}

// Prepare makes sure the cluster has its namespace and key Secret, and
// returns its ClusterPeer. An existing Secret is kept as it is (the
// operator, or the developer, may have made it): only its public key is
// read. The endpoints are the InternalIPs of the nodes labeled
// wirespan.io/gateway=true, in name order; with kind they are the node
// containers' addresses on the Docker network all kind clusters share, so
// every cluster's gateways reach every other's.
func Prepare(ctx context.Context, c Cluster) (Peer, error) {
	if err := ensureNamespace(ctx, c.Client, c.Namespace); err != nil {
		return Peer{}, fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	pub, err := ensureKey(ctx, c.Client, c.Namespace, c.Secret)
	if err != nil {
		return Peer{}, fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	eps, err := gatewayEndpoints(ctx, c.Client)
	if err != nil {
		return Peer{}, fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	return Peer{Name: c.Name, PublicKey: pub, Endpoints: eps, AllowedCIDRs: c.AllowedCIDRs}, nil
}

func ensureNamespace(ctx context.Context, cs kubernetes.Interface, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	_, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// ensureKey returns the public key of the cluster key Secret, creating the
// Secret with a new key pair if there is none.
func ensureKey(ctx context.Context, cs kubernetes.Interface, namespace, name string) (string, error) {
	secrets := cs.CoreV1().Secrets(namespace)
	s, err := secrets.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		priv, genErr := wgtypes.GeneratePrivateKey()
		if genErr != nil {
			return "", fmt.Errorf("generate WireGuard key: %w", genErr)
		}
		s, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
			Type:       corev1.SecretTypeOpaque,
			Data: map[string][]byte{
				wirespanv1alpha1.KeySecretPrivateKey: []byte(priv.String()),
				wirespanv1alpha1.KeySecretPublicKey:  []byte(priv.PublicKey().String()),
			},
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			// Made meanwhile (by the operator): use that one.
			s, err = secrets.Get(ctx, name, metav1.GetOptions{})
		}
	}
	if err != nil {
		return "", fmt.Errorf("key Secret %s/%s: %w", namespace, name, err)
	}
	raw := bytes.TrimSpace(s.Data[wirespanv1alpha1.KeySecretPrivateKey])
	priv, err := wgtypes.ParseKey(string(raw))
	if err != nil {
		// Never replace it: it may be someone's own key. wgtypes' error does
		// not quote the key.
		return "", fmt.Errorf("key Secret %s/%s: %s is not a WireGuard private key (%w); fix or delete the Secret",
			namespace, name, wirespanv1alpha1.KeySecretPrivateKey, err)
	}
	return priv.PublicKey().String(), nil
}

func gatewayEndpoints(ctx context.Context, cs kubernetes.Interface) ([]netip.AddrPort, error) {
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: wirespanv1alpha1.LabelGateway + "=true"})
	if err != nil {
		return nil, fmt.Errorf("list gateway nodes: %w", err)
	}
	if len(nodes.Items) == 0 {
		return nil, fmt.Errorf("no node is labeled %s=true: was the cluster made with `make kind-up`?", wirespanv1alpha1.LabelGateway)
	}
	slices.SortFunc(nodes.Items, func(a, b corev1.Node) int { return strings.Compare(a.Name, b.Name) })
	var eps []netip.AddrPort
	for _, n := range nodes.Items {
		ip, ok := internalIP(n)
		if !ok {
			return nil, fmt.Errorf("gateway node %s has no InternalIP address yet", n.Name)
		}
		eps = append(eps, netip.AddrPortFrom(ip, WireGuardPort))
	}
	return eps, nil
}

func internalIP(n corev1.Node) (netip.Addr, bool) {
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		// kind nodes of an IPv4 cluster have one IPv4 InternalIP; prefer it
		// in dual-stack clusters too, as the Docker network is dual-stack
		// only when configured so.
		if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Is4() {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// Manifest is the ClusterPeer of p as a user keeps it in Git.
func Manifest(p Peer) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Cluster %s of the Tilt loop, written by `kinddev prepare`. The same folder is applied to every cluster.\n", p.Name)
	fmt.Fprintf(&b, "apiVersion: %s\nkind: ClusterPeer\nmetadata:\n  name: %s\nspec:\n", wirespanv1alpha1.GroupVersion, p.Name)
	fmt.Fprintf(&b, "  publicKey: %s\n  endpoints:\n", p.PublicKey)
	for _, ep := range p.Endpoints {
		fmt.Fprintf(&b, "    - %s\n", ep)
	}
	b.WriteString("  allowedCIDRs:\n")
	for _, c := range p.AllowedCIDRs {
		fmt.Fprintf(&b, "    - %s\n", c)
	}
	return b.Bytes()
}

// WriteFolder writes one manifest per peer into dir as <name>.yaml, and
// removes the manifests of clusters no longer in the list (the folder is
// the loop's own). A file whose content is unchanged is not rewritten, so
// Tilt, which watches the folder, does not apply it again for nothing.
func WriteFolder(dir string, peers []Peer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("ClusterPeer folder: %w", err)
	}
	want := map[string]bool{}
	for _, p := range peers {
		name := p.Name + ".yaml"
		want[name] = true
		if err := writeIfChanged(filepath.Join(dir, name), Manifest(p)); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("ClusterPeer folder: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".yaml") && !want[e.Name()] {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("remove stale manifest: %w", err)
			}
		}
	}
	return nil
}

func writeIfChanged(path string, body []byte) error {
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, body) {
		return nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, body, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
