package lab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/wirespan/wirespan/test/internal/lab/network"
	"github.com/wirespan/wirespan/test/internal/lab/objects"
	"github.com/wirespan/wirespan/test/internal/lab/pki"
	"github.com/wirespan/wirespan/test/internal/lab/plan"
	"github.com/wirespan/wirespan/test/internal/lab/proc"
)

// run carries one `up` through its phases.
type run struct {
	lab   *Lab
	plan  *plan.Plan
	state *state

	privateKeys   map[string]string
	charts        map[string]*chartRender
	clients       map[string]*kubernetes.Clientset
	apiservers    map[string]*proc.Process
	operatorProcs map[string]*proc.Process
}

// start runs a lab process and records it in state.json.
func (r *run) start(name, netns string, args ...string) (*proc.Process, error) {
	p, err := proc.Start(name, netns, r.lab.logFile(name), args...)
	if err != nil {
		return nil, err
	}
	return p, r.state.addProcess(p)
}

func (r *run) network(context.Context) (string, error) {
	if err := copyFile(r.lab.Bins.Lab, r.lab.labCopy(), 0o755); err != nil {
		return "", fmt.Errorf("copy the lab binary into the state folder: %w", err)
	}
	if err := network.Setup(r.plan); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d namespaces; router %s", len(r.plan.Netns()), r.plan.RouterIP), nil
}

func (r *run) certificates(context.Context) (string, error) {
	r.privateKeys = map[string]string{}
	for _, c := range r.plan.Clusters {
		_, err := pki.Write(r.lab.clusterDir(c.Name), pki.Request{
			Cluster:   c.Name,
			ServerIPs: []net.IP{c.APIServerIP.AsSlice(), c.KubernetesServiceIP.AsSlice(), c.APIServerIP6.AsSlice(), c.KubernetesServiceIP6.AsSlice()},
			ServerNames: []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc",
				"kubernetes.default.svc." + plan.ClusterDomain},
			Server: r.lab.apiURL(c),
		})
		if err != nil {
			return "", fmt.Errorf("%s: %w", c.Name, err)
		}
		priv, pub, err := newWireGuardKey()
		if err != nil {
			return "", err
		}
		r.privateKeys[c.Name] = priv
		r.state.PublicKeys[c.Name] = pub
		manifest := objects.ClusterPeerManifest(c, pub)
		if err := os.WriteFile(filepath.Join(r.lab.clusterPeersDir(), c.Name+".yaml"), []byte(manifest), 0o644); err != nil {
			return "", err
		}
	}
	return "CA, API server and admin certificates; a WireGuard key and a ClusterPeer manifest per cluster", r.state.save()
}

func (r *run) etcdURL() string {
	return "http://" + net.JoinHostPort(r.plan.EtcdIP.String(), strconv.Itoa(plan.EtcdClientPort))
}

func (r *run) etcd(ctx context.Context) (string, error) {
	peer := "http://" + net.JoinHostPort(r.plan.EtcdIP.String(), strconv.Itoa(plan.EtcdPeerPort))
	p, err := r.start("etcd", "", r.lab.Bins.Etcd,
		"--name", r.plan.Prefix, "--data-dir", r.lab.etcdDir(),
		"--listen-client-urls", r.etcdURL(), "--advertise-client-urls", r.etcdURL(),
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", r.plan.Prefix+"="+peer,
		// A lab's data is thrown away at `down`; fsync only costs time.
		"--unsafe-no-fsync", "--log-level", "warn")
	if err != nil {
		return "", err
	}
	err = waitFor(ctx, 30*time.Second, "etcd health", []*proc.Process{p}, func() error {
		return httpOK(ctx, r.etcdURL()+"/health", `"health":"true"`)
	})
	return "one etcd, a key prefix per cluster, at " + r.etcdURL(), err
}

func (r *run) apiServers(ctx context.Context) (string, error) {
	r.apiservers, r.clients = map[string]*proc.Process{}, map[string]*kubernetes.Clientset{}
	var urls []string
	for _, c := range r.plan.Clusters {
		dir := r.lab.clusterDir(c.Name)
		p, err := r.start(c.Name+"-kube-apiserver", "", r.lab.Bins.APIServer,
			"--etcd-servers", r.etcdURL(), "--etcd-prefix", "/"+c.Name,
			"--bind-address", c.APIServerIP.String(), "--advertise-address", advertised(c).String(),
			"--secure-port", strconv.Itoa(c.APIServerPort),
			"--service-cluster-ip-range", joinPrefixes(c.ServiceCIDRs()),
			"--client-ca-file", filepath.Join(dir, "ca.crt"),
			"--tls-cert-file", filepath.Join(dir, "apiserver.crt"), "--tls-private-key-file", filepath.Join(dir, "apiserver.key"),
			"--service-account-issuer", "https://kubernetes.default.svc."+plan.ClusterDomain,
			"--service-account-key-file", filepath.Join(dir, "sa.pub"),
			"--service-account-signing-key-file", filepath.Join(dir, "sa.key"),
			"--authorization-mode", "RBAC",
			// There are no kubelets to mount tokens, and pods are made
			// before kube-controller-manager has made their ServiceAccount.
			"--disable-admission-plugins", "ServiceAccount",
			"--enable-priority-and-fairness=false", "--profiling=false")
		if err != nil {
			return "", err
		}
		r.apiservers[c.Name] = p
		cs, err := clientFor(r.lab.kubeconfig(c.Name))
		if err != nil {
			return "", err
		}
		r.clients[c.Name] = cs
		urls = append(urls, c.Name+" "+r.lab.apiURL(c))
	}
	err := parallel(r.plan, func(c plan.Cluster) error {
		return waitFor(ctx, 60*time.Second, "kube-apiserver /readyz", []*proc.Process{r.apiservers[c.Name]}, func() error {
			_, err := r.clients[c.Name].Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
			return err
		})
	})
	return strings.Join(urls, ", "), err
}

// controllerManagerControllers are the controllers a lab needs: real
// EndpointSlices, namespace deletion and garbage collection. Those that act
// for kubelets or clouds (node lifecycle would mark the kubelet-less nodes
// NotReady and evict their pods) stay off.
var controllerManagerControllers = []string{
	"endpointslice-controller", "endpointslice-mirroring-controller", "endpoints-controller",
	"namespace-controller", "garbage-collector-controller", "serviceaccount-controller",
	"root-ca-certificate-publisher-controller", "service-cidr-controller",
}

func (r *run) controllerManagers(context.Context) (string, error) {
	for _, c := range r.plan.Clusters {
		dir := r.lab.clusterDir(c.Name)
		if _, err := r.start(c.Name+"-kube-controller-manager", "", r.lab.Bins.ControllerManager,
			"--kubeconfig", r.lab.kubeconfig(c.Name),
			"--controllers", strings.Join(controllerManagerControllers, ","),
			"--service-account-private-key-file", filepath.Join(dir, "sa.key"),
			"--root-ca-file", filepath.Join(dir, "ca.crt"),
			"--cluster-name", c.Name, "--service-cluster-ip-range", joinPrefixes(c.ServiceCIDRs()),
			"--leader-elect=false", "--secure-port=0"); err != nil {
			return "", err
		}
	}
	return strings.Join(controllerManagerControllers, ", "), nil
}

func (r *run) objects(ctx context.Context) (string, error) {
	r.charts = map[string]*chartRender{}
	for _, c := range r.plan.Clusters {
		chart, err := r.lab.renderChart(ctx, c)
		if err != nil {
			return "", fmt.Errorf("%s: %w", c.Name, err)
		}
		r.charts[c.Name] = chart
	}
	err := parallel(r.plan, func(c plan.Cluster) error {
		cs := r.clients[c.Name]
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ReleaseNamespace}}, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create namespace %s: %w", ReleaseNamespace, err)
		}
		if err := r.installChart(ctx, c); err != nil {
			return err
		}
		if _, err := cs.CoreV1().Secrets(objects.KeySecretNamespace).Create(ctx,
			objects.KeySecret(r.privateKeys[c.Name], r.state.PublicKeys[c.Name]), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create the cluster key Secret: %w", err)
		}
		for _, n := range c.Nodes {
			want := objects.Node(c, n)
			got, err := cs.CoreV1().Nodes().Create(ctx, want, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("create Node %s: %w", n.Name, err)
			}
			got.Status = want.Status
			if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("set status of Node %s: %w", n.Name, err)
			}
		}
		for _, svc := range objects.Services(c) {
			if _, err := cs.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("create Service %s/%s: %w", svc.Namespace, svc.Name, err)
			}
		}
		if _, err := cs.CoreV1().ConfigMaps(plan.SystemNamespace).Create(ctx, objects.CorefileConfigMap(r.corefile(c)), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create ConfigMap %s/%s: %w", plan.SystemNamespace, objects.CorefileConfigMapName, err)
		}
		now := time.Now()
		for _, pod := range c.Pods {
			want := objects.Pod(c, pod, now)
			got, err := cs.CoreV1().Pods(pod.Namespace).Create(ctx, want, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("create Pod %s/%s: %w", pod.Namespace, pod.Name, err)
			}
			got.Status = want.Status
			if _, err := cs.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("set status of Pod %s/%s: %w", pod.Namespace, pod.Name, err)
			}
		}
		return nil
	})
	c := r.plan.Clusters[0]
	return fmt.Sprintf("the chart's CRDs, ServiceAccounts, RBAC and Services; per cluster %d Nodes, %d Pods, Services %s and %s/%s, ConfigMap %s/%s", len(c.Nodes), len(c.Pods),
		plan.EchoServiceName, plan.SystemNamespace, plan.DNSServiceName, plan.SystemNamespace, objects.CorefileConfigMapName), err
}

// installChart applies what the chart renders for c, except its workloads,
// and gives the operator and the gateways kubeconfigs with tokens of the
// chart's ServiceAccounts: they run with the chart's permissions only.
func (r *run) installChart(ctx context.Context, c plan.Cluster) error {
	chart := r.charts[c.Name]
	apply := exec.CommandContext(ctx, r.lab.Bins.Kubectl, "--kubeconfig", r.lab.kubeconfig(c.Name), "apply", "-f", "-")
	apply.Stdin = bytes.NewReader(chart.apply)
	if out, err := apply.CombinedOutput(); err != nil {
		return fmt.Errorf("apply the chart's objects: %w: %s", err, out)
	}
	for _, sa := range []string{chart.operator.serviceAccount, chart.gateway.serviceAccount} {
		// A year: a lab may be left running, and tokens are not refreshed.
		req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(365 * 24 * 3600))}}
		tok, err := r.clients[c.Name].CoreV1().ServiceAccounts(ReleaseNamespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("token for ServiceAccount %s/%s: %w", ReleaseNamespace, sa, err)
		}
		if err := pki.TokenKubeconfig(r.lab.kubeconfig(c.Name), r.lab.saKubeconfig(c.Name, sa), "system:serviceaccount:"+ReleaseNamespace+":"+sa, tok.Status.Token); err != nil {
			return err
		}
	}
	return nil
}

// corefile is the cluster DNS configuration: the kubernetes plugin against
// the cluster's own API server, and clusterset.local forwarded to the
// chart's DNS Service, which the active gateway points at itself. There is
// no upstream: the lab has no way out, so other names fail fast instead of
// timing out.
func (r *run) corefile(c plan.Cluster) string {
	return fmt.Sprintf(`%[3]s:53 {
    errors
    forward . %[4]s
}
.:53 {
    errors
    ready :8181
    kubernetes %[1]s in-addr.arpa ip6.arpa {
        kubeconfig %[2]s
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    loadbalance
}
`, plan.ClusterDomain, r.lab.kubeconfig(c.Name), plan.ClustersetDomain, c.ClustersetDNS())
}

func (r *run) workloads(context.Context) (string, error) {
	n := 0
	for _, c := range r.plan.Clusters {
		if err := os.WriteFile(r.lab.corefile(c.Name), []byte(r.corefile(c)), 0o644); err != nil {
			return "", err
		}
		for _, pod := range c.Pods {
			name := fmt.Sprintf("%s-%s-%s", c.Name, pod.Namespace, pod.Name)
			var args []string
			switch pod.Role {
			case plan.RoleDNS:
				args = []string{r.lab.Bins.CoreDNS, "-conf", r.lab.corefile(c.Name)}
			default:
				args = []string{r.lab.labCopy(), "echo", "--cluster", c.Name,
					"--pod", pod.Namespace + "/" + pod.Name, "--ip", pod.IPs(&c)[0].String(), "--port", strconv.Itoa(plan.EchoPort)}
			}
			if _, err := r.start(name, pod.Netns, args...); err != nil {
				return "", err
			}
			n++
		}
	}
	return fmt.Sprintf("%d pods: echo servers (tcp and udp %d) and CoreDNS", n, plan.EchoPort), nil
}

func (r *run) kubeProxies(context.Context) (string, error) {
	n := 0
	for _, c := range r.plan.Clusters {
		for _, node := range c.Nodes {
			args := []string{r.lab.Bins.KubeProxy,
				"--kubeconfig", r.lab.kubeconfig(c.Name), "--hostname-override", node.Name,
				"--proxy-mode", "nftables", "--cluster-cidr", joinPrefixes(c.PodCIDRs()), "--detect-local-mode", "ClusterCIDR",
				// Conntrack limits are global, not per network namespace:
				// a lab must leave the host's alone.
				"--conntrack-max-per-core", "0", "--conntrack-tcp-timeout-established", "0",
				"--conntrack-tcp-timeout-close-wait", "0",
				"--metrics-bind-address", "127.0.0.1:10249", "--healthz-bind-address", "127.0.0.1:10256"}
			if d := r.plan.KubeProxyMinSync; d > 0 {
				// kube-proxy has no mode-neutral flag for it; the
				// nftables proxier takes the iptables one (it logs
				// "NFTables sync params" with the value at -v 2).
				args = append(args, "--iptables-min-sync-period", d.String())
			}
			if _, err := r.start(node.Name+"-kube-proxy", node.Netns, args...); err != nil {
				return "", err
			}
			n++
		}
	}
	msg := fmt.Sprintf("%d, nftables mode, one per node", n)
	if d := r.plan.KubeProxyMinSync; d > 0 {
		msg += fmt.Sprintf(", min sync period %s", d)
	}
	return msg, nil
}

func (r *run) operators(ctx context.Context) (string, error) {
	r.operatorProcs = map[string]*proc.Process{}
	for _, c := range r.plan.Clusters {
		// The chart's flags, then what differs for a process on the lab's
		// host: the last of a repeated flag wins.
		op := r.charts[c.Name].operator
		args := append([]string{r.lab.Bins.Operator}, op.args...)
		args = append(args, "--kubeconfig", r.lab.saKubeconfig(c.Name, op.serviceAccount),
			"--metrics-bind-address", net.JoinHostPort(c.APIServerIP.String(), strconv.Itoa(c.OperatorMetricsPort)),
			"--health-probe-bind-address", net.JoinHostPort(c.APIServerIP.String(), strconv.Itoa(c.OperatorProbePort)))
		p, err := r.start(c.Name+"-wirespan-operator", "", args...)
		if err != nil {
			return "", err
		}
		r.operatorProcs[c.Name] = p
	}
	err := parallel(r.plan, func(c plan.Cluster) error {
		url := fmt.Sprintf("http://%s/healthz", net.JoinHostPort(c.APIServerIP.String(), strconv.Itoa(c.OperatorProbePort)))
		return waitFor(ctx, 30*time.Second, "wirespan-operator /healthz", []*proc.Process{r.operatorProcs[c.Name]}, func() error {
			return httpOK(ctx, url, "")
		})
	})
	return "one per cluster, in the host namespace", err
}

// readyChecks prove each cluster works as a cluster: the EndpointSlice
// controller has published the echo pods, and a pod resolves the
// kubernetes Service through CoreDNS, reached at its Service VIP through
// kube-proxy, across the node network.
func (r *run) readyChecks(ctx context.Context) (string, error) {
	err := parallel(r.plan, func(c plan.Cluster) error {
		// One slice per family: each echo pod is an endpoint of each.
		echoPods := 0
		for _, p := range c.Pods {
			if p.Role == plan.RoleEcho {
				echoPods += len(p.IPs(&c))
			}
		}
		err := waitFor(ctx, 30*time.Second, "EndpointSlices of the echo Service", nil, func() error {
			slices, err := r.clients[c.Name].DiscoveryV1().EndpointSlices(plan.DefaultNamespace).List(ctx,
				metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + plan.EchoServiceName})
			if err != nil {
				return err
			}
			ready := 0
			for _, s := range slices.Items {
				for _, e := range s.Endpoints {
					if e.Conditions.Ready != nil && *e.Conditions.Ready {
						ready += len(e.Addresses)
					}
				}
			}
			if ready != echoPods {
				return fmt.Errorf("%d ready endpoints, want %d", ready, echoPods)
			}
			return nil
		})
		if err != nil {
			return err
		}
		pod := c.Pods[0]
		name := "kubernetes.default.svc." + plan.ClusterDomain
		// The kubernetes Service is single-stack, of the primary family.
		want, qtype := c.KubernetesServiceIP, "A"
		if c.Family == plan.IPv6 {
			want, qtype = c.KubernetesServiceIP6, "AAAA"
		}
		return waitFor(ctx, 30*time.Second, "DNS from "+pod.Name, nil, func() error {
			out, err := exec.CommandContext(ctx, "ip", "netns", "exec", pod.Netns,
				"dig", "+short", "+time=1", "+tries=1", name, qtype).CombinedOutput()
			if err != nil {
				return fmt.Errorf("dig %s: %w: %s", name, err, out)
			}
			if got := strings.TrimSpace(string(out)); got != want.String() {
				return fmt.Errorf("dig %s %s answered %q, want %s", name, qtype, got, want)
			}
			return nil
		})
	})
	return "EndpointSlices published; pods resolve kubernetes.default via CoreDNS", err
}

// waitFor polls check until it passes, ctx ends, timeout passes, or one of
// procs exits (then the error shows the end of its log).
func waitFor(ctx context.Context, timeout time.Duration, what string, procs []*proc.Process, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		for _, p := range procs {
			if !p.Alive() {
				return fmt.Errorf("%s: %s exited; the end of %s:\n%s", what, p.Name, p.Log, tail(p.Log, 15))
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not ready after %s: %w", what, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

func httpOK(ctx context.Context, url, contains string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body.String(), contains) {
		return fmt.Errorf("GET %s: %s %q", url, resp.Status, body.String())
	}
	return nil
}

func clientFor(kubeconfig string) (*kubernetes.Clientset, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 100, 200
	return kubernetes.NewForConfig(cfg)
}

// gateways starts wirespan-gateway in every node's namespace: the gateway
// role on the active gateway node, the node agent on the others. They wait
// for ClusterPeers from Git before any tunnel comes up.
func (r *run) gateways(ctx context.Context) (string, error) {
	var procs []*proc.Process
	type probe struct{ netns, url string }
	var probes []probe
	for _, c := range r.plan.Clusters {
		for _, node := range c.Nodes {
			// The chart's flags, then what a process in a node namespace of
			// the lab needs instead (the last of a repeated flag wins): the
			// node's name (the DaemonSet's NODE_NAME), a unique interface
			// name, the userspace device, the real /proc/sys, loopback
			// endpoints, a kept-state file of its own in the lab's folder,
			// timestamps to the nanosecond.
			gw := r.charts[c.Name].gateway
			args := append([]string{r.lab.Bins.Gateway}, gw.args...)
			args = append(args, "--kubeconfig", r.lab.saKubeconfig(c.Name, gw.serviceAccount), "--node-name", node.Name,
				"--interface", node.WireGuard, "--wireguard", "userspace", "--sysctl-dir", "/proc/sys",
				"--dns-bind-address", net.JoinHostPort(node.InternalIPs(&c)[0].String(), strconv.Itoa(plan.GatewayDNSPort)),
				"--export-ttl", plan.ExportTTL.String(),
				"--metrics-bind-address", net.JoinHostPort("127.0.0.1", strconv.Itoa(plan.GatewayMetricsPort)),
				"--health-probe-bind-address", net.JoinHostPort("127.0.0.1", strconv.Itoa(plan.GatewayProbePort)),
				"--pprof-bind-address", net.JoinHostPort("127.0.0.1", strconv.Itoa(plan.GatewayPprofPort)),
				"--state-file", filepath.Join(r.lab.Dir, "nodes", node.Name, "gateway-state.json"),
				// Failovers take milliseconds: the logs say when.
				"--zap-time-encoding", "rfc3339nano")
			p, err := r.start(node.Name+"-wirespan-gateway", node.Netns, args...)
			if err != nil {
				return "", err
			}
			procs = append(procs, p)
			probes = append(probes, probe{node.Netns, fmt.Sprintf("http://127.0.0.1:%d/readyz", plan.GatewayProbePort)})
		}
	}
	for i, pr := range probes {
		err := waitFor(ctx, 30*time.Second, "wirespan-gateway /readyz in "+pr.netns, procs[i:i+1], func() error {
			return httpOKInNetns(ctx, pr.netns, pr.url)
		})
		if err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%d, one per node (userspace WireGuard on gateways)", len(procs)), nil
}

// httpOKInNetns is httpOK from inside a network namespace: the connection's
// socket is made on a thread switched into the namespace, and keeps
// working from any thread afterwards.
func httpOKInNetns(ctx context.Context, name, url string) error {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := proc.InNamespace(name, func() error {
			var err error
			conn, err = (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}
	client := &http.Client{Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}, Timeout: 3 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s in %s: %s %q", url, name, resp.Status, body.String())
	}
	return nil
}

// joinPrefixes is a comma-separated list of ranges, as Kubernetes' range
// flags take them (the primary family first).
func joinPrefixes(ps []netip.Prefix) string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.String())
	}
	return strings.Join(out, ",")
}

// advertised is the address a cluster's kube-apiserver advertises, of its
// primary Service family, as kube-apiserver requires.
func advertised(c plan.Cluster) netip.Addr {
	if c.Family == plan.IPv6 {
		return c.APIServerIP6
	}
	return c.APIServerIP
}
