// Package lab runs several real Kubernetes clusters on one Linux machine
// without Docker: per cluster a kube-apiserver and kube-controller-manager
// over a shared etcd, nodes and pods as network namespaces, real kube-proxy
// and CoreDNS, and Wirespan's own binaries. docs/lab.md describes it.
package lab

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/wirespan/wirespan/test/internal/lab/network"
	"github.com/wirespan/wirespan/test/internal/lab/plan"
	"github.com/wirespan/wirespan/test/internal/lab/proc"
)

// Bins are the programs the lab runs.
type Bins struct {
	Etcd, APIServer, ControllerManager, Kubectl, KubeProxy, CoreDNS string
	Operator, Gateway                                               string
	// Lab is this program; it is copied into the state folder because the
	// echo servers run it, and `go run` deletes its binary on exit.
	Lab string
	// Helm renders Chart, Wirespan's Helm chart, for every cluster: the
	// lab applies its CRDs, ServiceAccounts, RBAC and Services, and runs
	// the operator and gateways with its flags and permissions (chart.go).
	Helm, Chart string
}

// programs are the names of the executables the lab starts: `down` stops
// only these among processes naming the state folder, never, say, a shell
// that ran `tail -f` on a log or the script that called `down`.
func (b Bins) programs() []string {
	return []string{filepath.Base(b.Etcd), filepath.Base(b.APIServer), filepath.Base(b.ControllerManager),
		filepath.Base(b.KubeProxy), filepath.Base(b.CoreDNS), filepath.Base(b.Operator), filepath.Base(b.Gateway), "wirespan-lab"}
}

// DefaultBins are where `make bins` and `make build` put things in a
// checkout at root.
func DefaultBins(root string) Bins {
	assets := filepath.Join(root, ".cache", "bins", "assets")
	self, _ := os.Executable()
	return Bins{
		Etcd:              filepath.Join(assets, "etcd"),
		APIServer:         filepath.Join(assets, "kube-apiserver"),
		ControllerManager: filepath.Join(assets, "kube-controller-manager"),
		Kubectl:           filepath.Join(assets, "kubectl"),
		KubeProxy:         filepath.Join(assets, "kube-proxy"),
		CoreDNS:           filepath.Join(assets, "coredns"),
		Operator:          filepath.Join(root, "bin", "wirespan-operator"),
		Gateway:           filepath.Join(root, "bin", "wirespan-gateway"),
		Lab:               self,
		Helm:              filepath.Join(assets, "helm"),
		Chart:             filepath.Join(root, "charts", "wirespan"),
	}
}

// Lab is one lab instance, kept in Dir.
type Lab struct {
	// Dir is the state folder (absolute): logs, certificates, kubeconfigs,
	// etcd data, the ClusterPeer folder and state.json.
	Dir  string
	Bins Bins
	// Out receives progress.
	Out io.Writer
}

// Paths inside the state folder.
func (l *Lab) clusterDir(c string) string { return filepath.Join(l.Dir, c) }
func (l *Lab) kubeconfig(c string) string { return filepath.Join(l.Dir, c, "admin.kubeconfig") }
func (l *Lab) saKubeconfig(c, serviceAccount string) string {
	return filepath.Join(l.Dir, c, serviceAccount+".kubeconfig")
}
func (l *Lab) logFile(name string) string { return filepath.Join(l.Dir, "logs", name+".log") }
func (l *Lab) labCopy() string            { return filepath.Join(l.Dir, "bin", "wirespan-lab") }
func (l *Lab) gitopsDir() string          { return filepath.Join(l.Dir, "gitops") }
func (l *Lab) clusterPeersDir() string    { return filepath.Join(l.gitopsDir(), "clusterpeers") }
func (l *Lab) corefile(c string) string   { return filepath.Join(l.Dir, c, "Corefile") }
func (l *Lab) logsDir() string            { return filepath.Join(l.Dir, "logs") }
func (l *Lab) etcdDir() string            { return filepath.Join(l.Dir, "etcd") }
func (l *Lab) statePath() string          { return filepath.Join(l.Dir, stateFile) }
func (l *Lab) printf(f string, a ...any)  { fmt.Fprintf(l.Out, f, a...) }
func (l *Lab) apiURL(c plan.Cluster) string {
	return fmt.Sprintf("https://%s:%d", c.APIServerIP, c.APIServerPort)
}

// Kubeconfig returns the admin kubeconfig of a cluster.
func (l *Lab) Kubeconfig(cluster string) (string, error) {
	p, _, err := l.load()
	if err != nil {
		return "", err
	}
	if _, err := p.Cluster(cluster); err != nil {
		return "", err
	}
	return l.kubeconfig(cluster), nil
}

func (l *Lab) load() (*plan.Plan, *state, error) {
	st, err := loadState(l.Dir)
	if err != nil {
		return nil, nil, err
	}
	p, err := plan.New(st.Config)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", l.statePath(), err)
	}
	return p, st, nil
}

// preflight refuses to start over an existing lab, or without root, tools
// or binaries, saying what to do about it.
func (l *Lab) preflight(p *plan.Plan) error {
	if os.Geteuid() != 0 {
		return errors.New("the lab creates network namespaces and links: run it as root")
	}
	if _, err := os.Stat(l.statePath()); err == nil {
		return fmt.Errorf("a lab is already up in %s: use it, or remove it first with `wirespan-lab down`", l.Dir)
	}
	for _, ns := range p.Netns() {
		if _, err := os.Stat(filepath.Join("/var/run/netns", ns)); err == nil {
			return fmt.Errorf("network namespace %s exists but %s does not: a lab of instance %d was left behind; remove it with `wirespan-lab down` (with the same --state-dir and --instance)", ns, l.statePath(), p.Instance)
		}
	}
	// dig: up's ready check resolves a name from a pod, as users will.
	for _, tool := range []string{"ip", "nft", "sysctl", "dig"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: run `make deps` (it installs iproute2, nftables, procps, dnsutils)", tool)
		}
	}
	for what, path := range map[string]string{
		"etcd": l.Bins.Etcd, "kube-apiserver": l.Bins.APIServer, "kube-controller-manager": l.Bins.ControllerManager,
		"kubectl": l.Bins.Kubectl, "kube-proxy": l.Bins.KubeProxy, "coredns": l.Bins.CoreDNS, "helm": l.Bins.Helm,
	} {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("%s not found at %s: run `make bins` (it builds the pinned control-plane binaries)", what, path)
		}
	}
	for what, path := range map[string]string{"wirespan-operator": l.Bins.Operator, "wirespan-gateway": l.Bins.Gateway} {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("%s not found at %s: run `make build`", what, path)
		}
	}
	if _, err := os.Stat(filepath.Join(l.Bins.Chart, "Chart.yaml")); err != nil {
		return fmt.Errorf("the Helm chart of Wirespan is not in %s: %w", l.Bins.Chart, err)
	}
	return nil
}

// Up brings up the lab. When it fails, it tears down what it made, so a
// failed or interrupted up leaves nothing behind; the error ends with the
// log of the process that failed. keepOnFailure leaves a failed lab as it
// is for diagnosis instead (an interrupted one is torn down regardless).
func (l *Lab) Up(ctx context.Context, cfg plan.Config, keepOnFailure bool) (err error) {
	p, err := plan.New(cfg)
	if err != nil {
		return err
	}
	if err := l.preflight(p); err != nil {
		return err
	}
	defer func() {
		if err == nil {
			return
		}
		if keepOnFailure && ctx.Err() == nil {
			err = fmt.Errorf("%w\nThe lab is left as it is for diagnosis; logs: %s. Remove it with `wirespan-lab down`", err, l.logsDir())
			return
		}
		l.printf("Up failed; tearing down what it made.\n")
		if derr := l.down(p.Instance); derr != nil {
			err = errors.Join(err, derr)
		}
	}()
	start := time.Now()
	l.printf("Bringing up %d clusters (%s) in %s\n", len(p.Clusters), strings.Join(p.ClusterNames(), ", "), l.Dir)
	for _, dir := range []string{l.logsDir(), filepath.Dir(l.labCopy()), l.clusterPeersDir()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	st := &state{Config: cfg, path: l.statePath(), PublicKeys: map[string]string{}, Kubectl: l.Bins.Kubectl}
	if err := st.save(); err != nil {
		return err
	}
	r := &run{lab: l, plan: p, state: st}
	for _, ph := range []struct {
		name string
		do   func(context.Context) (string, error)
	}{
		{"network", r.network},
		{"certificates and keys", r.certificates},
		{"etcd", r.etcd},
		{"API servers", r.apiServers},
		{"controller managers", r.controllerManagers},
		{"nodes, pods, services", r.objects},
		{"pod workloads", r.workloads},
		{"kube-proxy", r.kubeProxies},
		{"wirespan-operator", r.operators},
		{"wirespan-gateway", r.gateways},
		{"ready checks", r.readyChecks},
	} {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted before %s", ph.name)
		}
		t := time.Now()
		l.printf("  %-24s", ph.name)
		detail, err := ph.do(ctx)
		if ctx.Err() != nil {
			l.printf("interrupted\n")
			return fmt.Errorf("interrupted during %s", ph.name)
		}
		if err != nil {
			l.printf("failed after %s\n", since(t))
			return fmt.Errorf("%s: %w", ph.name, err)
		}
		l.printf("%6s  %s\n", since(t), detail)
	}
	st.Up = true
	if err := st.save(); err != nil {
		return err
	}
	l.printf("Lab up in %s.\n", since(start))
	l.printNextSteps(p)
	return nil
}

func since(t time.Time) string { return time.Since(t).Round(10 * time.Millisecond).String() }

func (l *Lab) printNextSteps(p *plan.Plan) {
	c := p.Clusters[0]
	l.printf("\nTry:\n")
	l.printf("  wirespan-lab status\n")
	l.printf("  kubectl --kubeconfig $(wirespan-lab kubeconfig %s) get nodes,pods -A -o wide\n", c.Name)
	l.printf("  wirespan-lab apply %s      # the ClusterPeers, as from Git, to every cluster\n", l.clusterPeersDir())
	l.printf("  wirespan-lab exec %s echo-0 -- dig +short kubernetes.default.svc.cluster.local\n", c.Name)
	l.printf("  wirespan-lab exec %s echo-0 -- bash -c 'cat </dev/tcp/%s/%d'   # the echo pod on the last node\n", c.Name, c.Pods[len(c.Nodes)-1].IP, plan.EchoPort)
	l.printf("  wirespan-lab down\n")
}

// copyFile copies src to dst with mode.
func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// newWireGuardKey returns a WireGuard key pair, base64 as `wg genkey` and
// `wg pubkey` print them (X25519). Unlike `wg genkey`, crypto/ecdh does
// not clamp the private key; that is kept, so the lab runs gateways with
// keys WireGuard stores in another form than given.
func newWireGuardKey() (private, public string, err error) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return "", "", err
	}
	enc := base64.StdEncoding
	return enc.EncodeToString(k.Bytes()), enc.EncodeToString(k.PublicKey().Bytes()), nil
}

// parallel runs f for every cluster at once and joins the errors, each
// prefixed with the cluster's name.
func parallel(p *plan.Plan, f func(c plan.Cluster) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(p.Clusters))
	for i, c := range p.Clusters {
		wg.Go(func() {
			if err := f(c); err != nil {
				errs[i] = fmt.Errorf("%s: %w", c.Name, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Down stops every process of the lab and removes every namespace, link and
// file it made, also when its record is damaged or missing (it then finds
// them by name prefix, by network namespace, and by the lab's programs
// naming the state folder in their command lines). It says
// what it removed.
func (l *Lab) Down() error {
	return l.down(-1)
}

// DownInstance is Down for a lab whose state.json is gone: instance says
// which name prefix to remove.
func (l *Lab) DownInstance(instance int) error { return l.down(instance) }

// reapWait bounds how long down waits for init to reap what it stopped:
// an init that never reaps must not hang it.
const reapWait = 10 * time.Second

func (l *Lab) down(instance int) error {
	prefix := ""
	var recorded []*proc.Process
	st, err := loadState(l.Dir)
	hadState := err == nil
	switch {
	case hadState:
		prefix = plan.Prefix(st.Config.Instance)
		recorded = st.Processes
	case instance >= 0:
		prefix = plan.Prefix(instance)
	default:
		return err
	}
	var stopped []*proc.Process
	var stopErrs []error
	var mu sync.Mutex
	// In waves: Wirespan's processes and the workloads first, then the API
	// servers, then etcd, so nothing spends its last seconds logging about
	// a vanished API server.
	wave := func(p *proc.Process) int {
		switch {
		case p.Name == "etcd":
			return 2
		case strings.HasSuffix(p.Name, "-kube-apiserver"):
			return 1
		}
		return 0
	}
	for w := range 3 {
		var wg sync.WaitGroup
		for _, p := range recorded {
			if wave(p) == w && p.Alive() {
				wg.Go(func() {
					// Stop returns when every thread is gone, so the
					// next wave, and the command, start only then.
					err := p.Stop(5 * time.Second)
					mu.Lock()
					stopped = append(stopped, p)
					stopErrs = append(stopErrs, err)
					mu.Unlock()
				})
			}
		}
		wg.Wait()
	}
	// Anything the record missed: processes naming the state folder, and
	// processes inside the lab's namespaces.
	leftovers := proc.Referring(l.Dir, l.Bins.programs())
	entries, _ := os.ReadDir("/var/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix+"-") {
			leftovers = append(leftovers, proc.InNetns(e.Name())...)
		}
	}
	for _, pid := range leftovers {
		if p := proc.ByPID(pid); p != nil {
			stopErrs = append(stopErrs, p.Stop(2*time.Second))
			stopped = append(stopped, p)
		}
	}
	// Return only when ps lists none of them, not even as a zombie.
	if left := proc.WaitReaped(stopped, reapWait); len(left) > 0 {
		l.printf("%d stopped processes are not reaped by their parent after %s (PID %d first); they no longer run.\n",
			len(left), reapWait, left[0].PID)
	}
	removed, err := network.Teardown(prefix)
	err = errors.Join(append(stopErrs, err)...)
	if rmErr := l.removeStateDir(); rmErr != nil {
		err = errors.Join(err, rmErr)
	}
	if len(stopped) == 0 && len(removed) == 0 && !hadState {
		l.printf("No lab in %s (instance prefix %s): nothing to remove.\n", l.Dir, prefix)
		return err
	}
	counts := map[string]int{}
	for _, r := range removed {
		kind, _, _ := strings.Cut(r, " ")
		if strings.HasPrefix(r, network.EtcNetns) {
			kind = network.EtcNetns + " folders"
		}
		counts[kind]++
	}
	l.printf("Stopped %d processes; removed %d network namespaces, %d links, %d %s; removed %s.\n",
		len(stopped), counts["netns"], counts["link"], counts[network.EtcNetns+" folders"], network.EtcNetns+" folders", l.Dir)
	return err
}

// removeStateDir deletes the state folder, but only if everything in it is
// something the lab makes: a mistyped --state-dir must never cost a user
// their files.
func (l *Lab) removeStateDir() error {
	entries, err := os.ReadDir(l.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		known := name == stateFile || name == stateFile+".tmp" || name == "logs" || name == "bin" ||
			name == "etcd" || name == "gitops" || name == "nodes" || (e.IsDir() && plan.IsClusterName(name))
		if !known {
			return fmt.Errorf("not removing %s: it holds %s, which the lab did not make", l.Dir, name)
		}
	}
	return os.RemoveAll(l.Dir)
}
