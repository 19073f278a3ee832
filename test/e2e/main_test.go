// Package e2e holds the end-to-end tests: Wirespan's real binaries in a lab
// of real clusters (test/lab), driven only through the wirespan-lab
// command and real clients (kubectl, dig), as a user would.
//
// One lab (instance 1, three clusters, c3 behind NAT) serves the whole
// package; a test that needs a lab of its own uses another instance. The
// lab runs Wirespan with the Helm chart's RBAC and flags, so the run also
// fails if an operator or gateway log shows a request the API server
// refused. When a test fails, the lab's logs are kept under
// .cache/e2e-logs/ and the path is printed.
package e2e

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wirespan/wirespan/internal/poll"
	"github.com/wirespan/wirespan/internal/testenv"
)

// The shared lab.
const (
	sharedClusters = "3"
	natCluster     = "c3"
)

// sharedInstance is the shared lab's instance: 1, or
// $WIRESPAN_E2E_INSTANCE, so that two runs on one machine (two worktrees
// sharing .cache) do not take down each other's lab.
var sharedInstance = cmp.Or(os.Getenv("WIRESPAN_E2E_INSTANCE"), "1")

var (
	repo string
	// labBin and binDir are built by TestMain into a temporary folder.
	labBin, binDir string
	// builtVersion is the version the binaries are stamped with.
	builtVersion string
	kubectl      string
	shared       *labStatus
	sharedDir    string
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped with -short (it brings up a lab of real clusters)")
		os.Exit(0)
	}
	if os.Geteuid() != 0 {
		// Not a skip: a run that was meant to include the end-to-end suite
		// must not pass without it. -short is how to leave it out.
		fmt.Fprintln(os.Stderr, "e2e: the lab needs root (network namespaces); run as root, or with -short to leave this suite out")
		os.Exit(1)
	}
	os.Exit(runMain(m))
}

func runMain(m *testing.M) (code int) {
	var err error
	if repo, err = testenv.RepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	assets, err := testenv.AssetsDir(repo)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	kubectl = filepath.Join(assets, "kubectl")
	tmp, err := os.MkdirTemp("", "wirespan-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	binDir = tmp
	labBin = filepath.Join(tmp, "wirespan-lab")
	// Stamped as `make build` stamps them, so diagnose's versions check
	// sees the version reach every cluster's operator and gateway.
	builtVersion = labVersion()
	ldflags := "-X github.com/wirespan/wirespan/internal/version.Version=" + builtVersion
	for pkg, out := range map[string]string{"./test/lab": labBin, "./operator": filepath.Join(tmp, "wirespan-operator"),
		"./gateway": filepath.Join(tmp, "wirespan-gateway"), "./kubectl-wirespan": filepath.Join(tmp, "kubectl-wirespan")} {
		build := exec.Command("go", "build", "-ldflags", ldflags, "-o", out, pkg)
		build.Dir, build.Stderr = repo, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: build %s: %v\n", pkg, err)
			return 1
		}
	}

	// A fixed folder, so a run killed with -9 is cleaned up by the next.
	sharedDir = filepath.Join(repo, ".cache", "e2e-lab")
	if sharedInstance != "1" {
		sharedDir += "-" + sharedInstance
	}
	down := func() {
		if out, err := labCmd(sharedDir, sharedInstance, "down").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: lab down: %v\n%s", err, out)
		}
	}
	down()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		down()
		_ = os.RemoveAll(tmp) // os.Exit skips the deferred removal
		os.Exit(1)
	}()

	start := time.Now()
	up := labCmd(sharedDir, sharedInstance, "up", "--clusters", sharedClusters, "--nat", natCluster, "--keep-on-failure")
	up.Stdout, up.Stderr = os.Stdout, os.Stderr
	if err := up.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: lab up: %v\n", err)
		keepLogs(sharedDir)
		down()
		return 1
	}
	fmt.Printf("e2e: lab of %s clusters up in %s\n", sharedClusters, time.Since(start).Round(10*time.Millisecond))
	if shared, err = status(sharedDir, sharedInstance); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		down()
		return 1
	}
	code = m.Run()
	// The lab runs Wirespan with exactly the chart's RBAC. A missing
	// permission does not always fail a test (a controller retries, a
	// cache waits), but it is always logged: fail the run on it.
	if refused := forbiddenInLogs(sharedDir); len(refused) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: the API server refused Wirespan a request (the chart's RBAC lacks a permission):\n%s\n",
			strings.Join(refused, "\n"))
		code = 1
	}
	if code != 0 {
		keepLogs(sharedDir)
	}
	down()
	return code
}

// forbiddenInLogs returns the lines of the operators' and gateways' logs
// in which the API server refused a request (client-go and
// controller-runtime log the server's "... is forbidden: User ... cannot
// ..." message), prefixed with the log's name.
func forbiddenInLogs(stateDir string) []string {
	logs, err := filepath.Glob(filepath.Join(stateDir, "logs", "*-wirespan-*.log"))
	if err != nil || len(logs) == 0 {
		return []string{fmt.Sprintf("no operator or gateway logs in %s: %v", stateDir, err)}
	}
	var refused []string
	for _, log := range logs {
		raw, err := os.ReadFile(log)
		if err != nil {
			refused = append(refused, err.Error())
			continue
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.Contains(strings.ToLower(line), "forbidden") {
				refused = append(refused, filepath.Base(log)+": "+line)
			}
		}
	}
	return refused
}

// keepLogs copies a lab's logs to .cache/e2e-logs/<time>/ and says where.
func keepLogs(stateDir string) {
	dst := filepath.Join(repo, ".cache", "e2e-logs", time.Now().Format("20060102-150405"))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: keep logs:", err)
		return
	}
	if out, err := exec.Command("cp", "-a", filepath.Join(stateDir, "logs"), dst).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: keep logs: %v %s\n", err, out)
		return
	}
	fmt.Fprintf(os.Stderr, "e2e: FAILED; the lab's logs (apiservers, controller managers, operators, kube-proxy, CoreDNS, echo) are kept in %s\n", dst)
}

// labCmd is the wirespan-lab command for a lab.
func labCmd(stateDir, instance string, args ...string) *exec.Cmd {
	full := append([]string{args[0], "--state-dir", stateDir, "--instance", instance, "--repo", repo, "--bin-dir", binDir}, args[1:]...)
	cmd := exec.Command(labBin, full...)
	cmd.Dir = repo
	return cmd
}

// labStatus is the part of `status --json` the tests read; decoding into
// our own struct, not the lab's, checks the documented interface.
type labStatus struct {
	Version         int             `json:"version"`
	StateDir        string          `json:"stateDir"`
	Up              bool            `json:"up"`
	Router          string          `json:"router"`
	ClusterPeersDir string          `json:"clusterPeersDir"`
	Clusters        []clusterStatus `json:"clusters"`
	Processes       []struct {
		Name    string `json:"name"`
		PID     int    `json:"pid"`
		Running bool   `json:"running"`
		Log     string `json:"log"`
	} `json:"processes"`
}

// clusterStatus is one cluster of labStatus.
type clusterStatus struct {
	Name         string   `json:"name"`
	Kubeconfig   string   `json:"kubeconfig"`
	APIServer    string   `json:"apiServer"`
	PodCIDRs     []string `json:"podCIDRs"`
	ServiceCIDRs []string `json:"serviceCIDRs"`
	ClusterDNS   string   `json:"clusterDNS"`
	NAT          bool     `json:"nat"`
	PublicKey    string   `json:"publicKey"`
	Bridge       string   `json:"bridge"`
	Nodes        []struct {
		Name       string `json:"name"`
		Netns      string `json:"netns"`
		UnderlayIP string `json:"underlayIP"`
		PodCIDR    string `json:"podCIDR"`
		Gateway    bool   `json:"gateway"`
		WireGuard  string `json:"wireGuard"`
	} `json:"nodes"`
	Pods []struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
		Node      string `json:"node"`
		IP        string `json:"ip"`
		Netns     string `json:"netns"`
	} `json:"pods"`
}

func status(stateDir, instance string) (*labStatus, error) {
	out, err := labCmd(stateDir, instance, "status", "--json").Output()
	if err != nil {
		return nil, fmt.Errorf("status --json: %w", err)
	}
	var s labStatus
	if err := json.Unmarshal(out, &s); err != nil {
		return nil, fmt.Errorf("status --json is not the documented JSON: %w", err)
	}
	return &s, nil
}

// inPod runs a command in a pod of the shared lab through `wirespan-lab
// exec` and returns its combined output.
func inPod(cluster, pod string, argv ...string) (string, error) {
	out, err := labCmd(sharedDir, sharedInstance, append([]string{"exec", cluster, pod, "--"}, argv...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// probe asks an echo server who it is, from a pod, with the lab's client.
func probe(cluster, pod, network, addr string) (string, error) {
	return inPod(cluster, pod, filepath.Join(sharedDir, "bin", "wirespan-lab"), "probe", "--timeout", "1s", network, addr)
}

func kubectlIn(t *testing.T, cluster string, args ...string) string {
	t.Helper()
	kc := ""
	for _, c := range shared.Clusters {
		if c.Name == cluster {
			kc = c.Kubeconfig
		}
	}
	out, err := exec.Command(kubectl, append([]string{"--kubeconfig", kc}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s in %s: %v\n%s", strings.Join(args, " "), cluster, err, out)
	}
	return string(out)
}

var eventually = poll.Until

// labVersion is the Makefile's VERSION: the commit as `git describe`
// gives it, with a suffix of its own so that it cannot be taken for what
// an unstamped build reports.
func labVersion() string {
	cmd := exec.Command("git", "describe", "--tags", "--always", "--dirty")
	cmd.Dir = repo
	out, err := cmd.Output()
	if err != nil {
		return "e2e"
	}
	return strings.TrimSpace(string(out)) + "-e2e"
}
