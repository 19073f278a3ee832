// Package objects builds the Kubernetes objects a lab cluster holds in place
// of what kubelets and a CNI would report: Nodes with their pod ranges,
// Pods with the status a kubelet would write, the cluster DNS and echo
// Services, the cluster key Secret, and the ClusterPeer manifests for Git.
// It is pure; the lab writes what it returns.
package objects

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/test/internal/lab/plan"
)

// WireGuardPort is where the lab's ClusterPeers say gateways listen.
const WireGuardPort = 51820

// KeySecret names the Secret the operator reads the cluster key from (its
// --key-secret default).
const (
	KeySecretNamespace = "wirespan-system"
	KeySecretName      = "wirespan-cluster-key"
)

// Node is a lab node as the API shows it: labels, pod ranges, and the
// status a kubelet would keep (Ready, its underlay addresses), in its
// cluster's family.
func Node(c plan.Cluster, n plan.Node) *corev1.Node {
	labels := map[string]string{corev1.LabelHostname: n.Name, corev1.LabelOSStable: "linux"}
	if n.Gateway {
		labels[wirespanv1alpha1.LabelGateway] = "true"
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: labels},
		Spec:       corev1.NodeSpec{PodCIDR: n.PodCIDRs(&c)[0].String(), PodCIDRs: plan.Strings(n.PodCIDRs(&c))},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{
				Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "LabNode",
				Message: "a network namespace of the Wirespan lab", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
			}},
			Addresses: nodeAddresses(&c, &n),
		},
	}
}

// Pod is a lab pod, bound to its node (there is no scheduler), with the
// status a kubelet would report for a running, ready pod.
func Pod(c plan.Cluster, p plan.Pod, started time.Time) *corev1.Pod {
	node, _ := c.Node(p.Node)
	var ports []corev1.ContainerPort
	image := "registry.invalid/wirespan-lab/echo"
	switch p.Role {
	case plan.RoleDNS:
		image = "registry.invalid/wirespan-lab/coredns"
		ports = []corev1.ContainerPort{
			{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
			{Name: "dns-tcp", ContainerPort: 53, Protocol: corev1.ProtocolTCP},
		}
	default:
		ports = []corev1.ContainerPort{
			{Name: "tcp", ContainerPort: plan.EchoPort, Protocol: corev1.ProtocolTCP},
			{Name: "udp", ContainerPort: plan.EchoPort, Protocol: corev1.ProtocolUDP},
		}
	}
	now := metav1.NewTime(started)
	ready := func(t corev1.PodConditionType) corev1.PodCondition {
		return corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels,
			Annotations: map[string]string{"lab.wirespan.io/netns": p.Netns}},
		Spec: corev1.PodSpec{
			NodeName:   p.Node,
			Containers: []corev1.Container{{Name: p.Role, Image: image, Ports: ports}},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{
				ready(corev1.PodScheduled), ready(corev1.PodInitialized),
				ready(corev1.ContainersReady), ready(corev1.PodReady),
			},
			HostIP:    node.InternalIPs(&c)[0].String(),
			HostIPs:   hostIPs(node.InternalIPs(&c)),
			PodIP:     p.IPs(&c)[0].String(),
			PodIPs:    podIPs(p.IPs(&c)),
			StartTime: &now,
			ContainerStatuses: []corev1.ContainerStatus{{
				Name: p.Role, Image: image, Ready: true, Started: ptr(true),
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
			}},
		},
	}
}

// Services are the cluster DNS Service (at the address pods' resolv.conf
// names) and the echo Service in front of the echo pods, both with a
// ClusterIP of each family of the cluster.
func Services(c plan.Cluster) []*corev1.Service {
	port := func(name string, proto corev1.Protocol, n int32) corev1.ServicePort {
		return corev1.ServicePort{Name: name, Protocol: proto, Port: n, TargetPort: intstr.FromInt32(n)}
	}
	// PreferDualStack gives a single-stack cluster's Service its one
	// family, and a dual-stack cluster's both.
	policy := ptr(corev1.IPFamilyPolicyPreferDualStack)
	return []*corev1.Service{
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: plan.SystemNamespace, Name: plan.DNSServiceName,
				Labels: map[string]string{"k8s-app": plan.DNSServiceName}},
			Spec: corev1.ServiceSpec{
				ClusterIP:      c.DNSServiceIPs()[0].String(),
				ClusterIPs:     plan.Strings(c.DNSServiceIPs()),
				IPFamilyPolicy: policy,
				Selector:       map[string]string{"k8s-app": plan.DNSServiceName},
				Ports:          []corev1.ServicePort{port("dns", corev1.ProtocolUDP, 53), port("dns-tcp", corev1.ProtocolTCP, 53)},
			},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: plan.DefaultNamespace, Name: plan.EchoServiceName},
			Spec: corev1.ServiceSpec{
				Selector:       map[string]string{"app": plan.EchoServiceName},
				IPFamilyPolicy: policy,
				Ports:          []corev1.ServicePort{port("tcp", corev1.ProtocolTCP, plan.EchoPort), port("udp", corev1.ProtocolUDP, plan.EchoPort)},
			},
		},
	}
}

// CorefileConfigMapName is the ConfigMap in kube-system that holds
// CoreDNS's Corefile, where kubeadm and most distributions keep it and
// where `kubectl wirespan diagnose` reads it (--coredns-configmap).
const CorefileConfigMapName = "coredns"

// CorefileConfigMap holds the Corefile the lab's CoreDNS runs with. The
// lab's CoreDNS reads the same text from a file, as a real one reads the
// file the kubelet projects from this ConfigMap; the lab does not sync an
// edit of the ConfigMap back to that file.
func CorefileConfigMap(corefile string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: plan.SystemNamespace, Name: CorefileConfigMapName},
		Data:       map[string]string{"Corefile": corefile},
	}
}

// KeySecret holds the cluster's WireGuard key pair where the operator looks
// for it. The lab brings its own key, as a GitOps user would (the operator
// would otherwise generate one), so the ClusterPeer folder is complete
// before any cluster starts.
func KeySecret(privateKey, publicKey string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: KeySecretNamespace, Name: KeySecretName},
		Type:       corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			wirespanv1alpha1.KeySecretPrivateKey: []byte(privateKey),
			wirespanv1alpha1.KeySecretPublicKey:  []byte(publicKey),
		},
	}
}

// ClusterPeerManifest is the YAML a user keeps in Git for cluster c: the
// same file is applied to every cluster. A cluster behind NAT publishes no
// endpoint (nobody can reach it; it dials out).
func ClusterPeerManifest(c plan.Cluster, publicKey string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Cluster %s of the Wirespan lab. Apply this folder, unchanged, to every cluster.\n", c.Name)
	fmt.Fprintf(&b, "apiVersion: %s\nkind: ClusterPeer\nmetadata:\n  name: %s\nspec:\n", wirespanv1alpha1.GroupVersion, c.Name)
	fmt.Fprintf(&b, "  publicKey: %s\n", publicKey)
	if c.NAT {
		b.WriteString("  # Behind NAT: no endpoint; its gateways dial out to the others.\n  endpoints: []\n")
	} else {
		// A gateway is reachable at each address its Node shows: a
		// dual-stack cluster lists both, and each peer picks the first
		// of its own family.
		b.WriteString("  endpoints:\n")
		for _, gw := range c.Gateways() {
			for _, ip := range gw.InternalIPs(&c) {
				ep := netip.AddrPortFrom(ip, WireGuardPort).String()
				if ip.Is6() {
					ep = strconv.Quote(ep) // YAML reads an unquoted [ as a list
				}
				fmt.Fprintf(&b, "    - %s\n", ep)
			}
		}
	}
	b.WriteString("  allowedCIDRs:\n")
	for _, r := range append(c.PodCIDRs(), c.ServiceCIDRs()...) {
		fmt.Fprintf(&b, "    - %s\n", r)
	}
	return b.String()
}

func nodeAddresses(c *plan.Cluster, n *plan.Node) []corev1.NodeAddress {
	var out []corev1.NodeAddress
	for _, ip := range n.InternalIPs(c) {
		out = append(out, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip.String()})
	}
	return append(out, corev1.NodeAddress{Type: corev1.NodeHostName, Address: n.Name})
}

func hostIPs(ips []netip.Addr) []corev1.HostIP {
	out := make([]corev1.HostIP, 0, len(ips))
	for _, ip := range ips {
		out = append(out, corev1.HostIP{IP: ip.String()})
	}
	return out
}

func podIPs(ips []netip.Addr) []corev1.PodIP {
	out := make([]corev1.PodIP, 0, len(ips))
	for _, ip := range ips {
		out = append(out, corev1.PodIP{IP: ip.String()})
	}
	return out
}

func ptr[T any](v T) *T { return &v }
