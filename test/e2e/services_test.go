package e2e

// Multi-Cluster Services on the shared lab, after the peering tests
// (files run in name order): ServiceExports in one cluster, clusterset.local
// names and VIPs in another, through the real cluster DNS (CoreDNS forwards
// the zone to the active gateway) and the real kube-proxy.

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wirespan/wirespan/test/internal/lab/echo"
)

const clustersetName = "echo.default.svc.clusterset.local"

// digIn resolves a name from a pod through the cluster DNS and returns the
// status line's rcode and the answers (+short form).
func digIn(t *testing.T, cluster, pod, name, qtype string) (rcode string, answers []string) {
	t.Helper()
	out, err := inPod(cluster, pod, "dig", "+time=1", "+tries=2", "+noall", "+comments", "+answer", name, qtype)
	if err != nil {
		return "error: " + err.Error(), nil
	}
	for _, line := range strings.Split(out, "\n") {
		if i := strings.Index(line, "status: "); i >= 0 {
			rcode = strings.TrimSuffix(strings.Fields(line[i+len("status: "):])[0], ",")
		}
		if f := strings.Fields(line); len(f) >= 5 && !strings.HasPrefix(line, ";") {
			answers = append(answers, f[len(f)-1])
		}
	}
	return rcode, answers
}

func exportIn(t *testing.T, cluster, ns, name string) {
	t.Helper()
	applyIn(t, cluster, fmt.Sprintf("apiVersion: multicluster.x-k8s.io/v1beta1\nkind: ServiceExport\nmetadata:\n  name: %s\n  namespace: %s\n", name, ns))
}

func applyIn(t *testing.T, cluster, manifest string) {
	t.Helper()
	kc := ""
	for _, c := range shared.Clusters {
		if c.Name == cluster {
			kc = c.Kubeconfig
		}
	}
	cmd := exec.Command(kubectl, "--kubeconfig", kc, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply in %s: %v\n%s\n%s", cluster, err, out, manifest)
	}
}

type exportConditions map[string]string // type -> "Status/Reason"

func exportConditionsIn(t *testing.T, cluster, ns, name string) exportConditions {
	var se struct {
		Status struct {
			Conditions []struct{ Type, Status, Reason string } `json:"conditions"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(kubectlIn(t, cluster, "get", "serviceexport", "-n", ns, name, "-o", "json")), &se); err != nil {
		t.Fatal(err)
	}
	out := exportConditions{}
	for _, c := range se.Status.Conditions {
		out[c.Type] = c.Status + "/" + c.Reason
	}
	return out
}

// importIPs returns the ServiceImport's spec.ips in cluster ("" if none).
func importIPs(t *testing.T, cluster, ns, name string) string {
	out := kubectlIn(t, cluster, "get", "serviceimports.multicluster.x-k8s.io", "-n", ns, "--ignore-not-found", "-o",
		fmt.Sprintf(`jsonpath={range .items[?(@.metadata.name=="%s")]}{.spec.ips[0]}{end}`, name))
	return strings.TrimSpace(out)
}

// callers sends n TCP probes to addr from a c1 pod and counts the answering
// clusters.
func answeringClusters(t *testing.T, from, pod, addr string, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for range n {
		out, err := probe(from, pod, "tcp", addr)
		if err != nil {
			seen["error"]++
			continue
		}
		id, err := echo.ParseReply(out)
		if err != nil {
			t.Fatalf("%s: %q: %v", addr, out, err)
		}
		seen[id.Cluster]++
	}
	return seen
}

func TestServiceExportedFromOneClusterResolvesAndConnects(t *testing.T) {
	waitConnected(t, 60*time.Second)
	c1, c2 := shared.Clusters[0].Name, shared.Clusters[1].Name
	start := time.Now()
	exportIn(t, c2, "default", "echo")
	var vip string
	eventually(t, 20*time.Second, c1+" resolves "+clustersetName, func() error {
		rcode, answers := digIn(t, c1, "echo-0", clustersetName, "A")
		if rcode != "NOERROR" || len(answers) != 1 {
			return fmt.Errorf("dig: %s %v", rcode, answers)
		}
		vip = answers[0]
		return nil
	})
	t.Logf("ServiceExport in %s to a dig answer in %s: %v", c2, c1, time.Since(start).Round(time.Millisecond))
	if got := importIPs(t, c1, "default", "echo"); got != vip {
		t.Errorf("dig answered %s, the ServiceImport in %s says %q", vip, c1, got)
	}
	eventually(t, 10*time.Second, "ServiceExport conditions in "+c2, func() error {
		got := exportConditionsIn(t, c2, "default", "echo")
		want := exportConditions{"Valid": "True/Valid", "Ready": "True/Exported", "Conflict": "False/NoConflicts"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("conditions %v, want %v", got, want)
		}
		return nil
	})
	// kube-proxy programs the new VIP within its sync period (about 1 s),
	// which may be after DNS already answers.
	eventually(t, 10*time.Second, "the clusterset VIP "+vip+" from "+c1, func() error {
		if seen := answeringClusters(t, c1, "echo-1", vip+":8080", 6); seen[c2] != 6 {
			return fmt.Errorf("answers by cluster %v, want all 6 from %s", seen, c2)
		}
		return nil
	})
	// The exporting cluster imports its own export too.
	eventually(t, 10*time.Second, c2+" resolves its own export", func() error {
		if rcode, answers := digIn(t, c2, "echo-0", clustersetName, "A"); rcode != "NOERROR" || len(answers) != 1 {
			return fmt.Errorf("dig: %s %v", rcode, answers)
		}
		return nil
	})
	// SRV of a named port; the version record of the DNS specification.
	if rcode, answers := digIn(t, c1, "echo-0", "_tcp._tcp."+clustersetName, "SRV"); rcode != "NOERROR" || len(answers) != 1 || answers[0] != clustersetName+"." {
		t.Errorf("SRV _tcp._tcp: %s %v", rcode, answers)
	}
	if rcode, answers := digIn(t, c1, "echo-0", "dns-version.clusterset.local", "TXT"); rcode != "NOERROR" || len(answers) != 1 || !strings.Contains(answers[0], "1.0.0") {
		t.Errorf("dns-version TXT: %s %v", rcode, answers)
	}
	if rcode, _ := digIn(t, c1, "echo-0", "nothing.default.svc.clusterset.local", "A"); rcode != "NXDOMAIN" {
		t.Errorf("an unexported name: %s, want NXDOMAIN", rcode)
	}
}

func TestServiceExportedFromTwoClustersBalancesAndSurvivesAGatewayLoss(t *testing.T) {
	waitConnected(t, 60*time.Second)
	c1, c2, c3 := shared.Clusters[0].Name, shared.Clusters[1].Name, shared.Clusters[2].Name
	exportIn(t, c2, "default", "echo")
	exportIn(t, c3, "default", "echo")
	var vip string
	eventually(t, 20*time.Second, c1+" imports echo from "+c2+" and "+c3, func() error {
		vip = importIPs(t, c1, "default", "echo")
		clusters := kubectlIn(t, c1, "get", "serviceimports.multicluster.x-k8s.io", "-n", "default", "echo", "-o", "jsonpath={.status.clusters[*].cluster}")
		if vip == "" || clusters != c2+" "+c3 {
			return fmt.Errorf("ips %q clusters %q", vip, clusters)
		}
		return nil
	})
	eventually(t, 20*time.Second, "traffic to "+vip+" reaches both clusters", func() error {
		seen := answeringClusters(t, c1, "echo-0", vip+":8080", 16)
		if seen[c2] == 0 || seen[c3] == 0 || seen["error"] > 0 {
			return fmt.Errorf("answers by cluster %v", seen)
		}
		return nil
	})

	// c3's gateway hangs (SIGSTOP): gossip declares it dead; after the
	// export TTL its endpoints are withdrawn in c1, and traffic goes to c2.
	resume := hangGateway(t, 2)
	stopped := time.Now()
	waitWithdrawn(t, c1, c3, "echo")
	t.Logf("%s's endpoints withdrawn %v after its gateway stopped (export TTL %v)", c3, time.Since(stopped).Round(100*time.Millisecond), 10*time.Second)
	eventually(t, 10*time.Second, "traffic to "+vip+" goes to "+c2+" only", func() error {
		if seen := answeringClusters(t, c1, "echo-0", vip+":8080", 8); seen[c2] != 8 {
			return fmt.Errorf("answers by cluster %v", seen)
		}
		return nil
	})
	resume()
	eventually(t, 60*time.Second, c3+"'s endpoints come back", func() error {
		seen := answeringClusters(t, c1, "echo-0", vip+":8080", 16)
		if seen[c3] == 0 {
			return fmt.Errorf("answers by cluster %v", seen)
		}
		return nil
	})

	// Unexport everywhere: the name goes away in every cluster.
	kubectlIn(t, c2, "delete", "serviceexport", "-n", "default", "echo")
	kubectlIn(t, c3, "delete", "serviceexport", "-n", "default", "echo")
	for _, c := range shared.Clusters {
		eventually(t, 20*time.Second, clustersetName+" disappears from "+c.Name, func() error {
			if rcode, answers := digIn(t, c.Name, "echo-0", clustersetName, "A"); rcode != "NXDOMAIN" {
				return fmt.Errorf("dig: %s %v", rcode, answers)
			}
			if ips := importIPs(t, c.Name, "default", "echo"); ips != "" {
				return fmt.Errorf("ServiceImport still there with %s", ips)
			}
			return nil
		})
	}
}

// waitWithdrawn waits until cluster importer holds no EndpointSlice of
// default/name imported from cluster exporter.
func waitWithdrawn(t *testing.T, importer, exporter, name string) {
	t.Helper()
	eventually(t, 60*time.Second, exporter+"'s endpoints withdrawn from "+importer, func() error {
		slices := kubectlIn(t, importer, "get", "endpointslices", "-n", "default", "-l",
			"multicluster.kubernetes.io/service-name="+name+",multicluster.kubernetes.io/source-cluster="+exporter, "-o", "name")
		if strings.TrimSpace(slices) != "" {
			return fmt.Errorf("still there: %s", slices)
		}
		return nil
	})
}

// hangGateway stops (SIGSTOP) the gateway of the shared lab's cluster i,
// its only gateway, so that the cluster goes silent in gossip; the
// returned resume continues it, and runs at the latest when the test ends.
func hangGateway(t *testing.T, i int) (resume func()) {
	t.Helper()
	st, err := status(sharedDir, sharedInstance)
	if err != nil {
		t.Fatal(err)
	}
	pid := 0
	for _, p := range st.Processes {
		if p.Name == shared.Clusters[i].Nodes[0].Name+"-wirespan-gateway" {
			pid = p.PID
		}
	}
	if pid == 0 {
		t.Fatalf("no gateway process for %s in %+v", shared.Clusters[i].Name, st.Processes)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	resume = func() { once.Do(func() { _ = syscall.Kill(pid, syscall.SIGCONT) }) }
	t.Cleanup(resume)
	return resume
}

// TestSilentClusterKeepsItsVIP: a cluster whose gateway is gone from
// gossip for longer than the export TTL loses its endpoints elsewhere, but
// its import keeps the clusterset IP and the name keeps answering; when it
// returns, traffic flows again to the same VIP.
func TestSilentClusterKeepsItsVIP(t *testing.T) {
	waitConnected(t, 60*time.Second)
	c1, c3 := shared.Clusters[0].Name, shared.Clusters[2].Name
	exportIn(t, c3, "default", "echo")
	var vip string
	eventually(t, 20*time.Second, c1+" reaches "+c3+"'s echo through its VIP", func() error {
		if vip = importIPs(t, c1, "default", "echo"); vip == "" {
			return fmt.Errorf("no ServiceImport with an IP yet")
		}
		if seen := answeringClusters(t, c1, "echo-0", vip+":8080", 4); seen[c3] != 4 {
			return fmt.Errorf("answers by cluster %v", seen)
		}
		return nil
	})

	resume := hangGateway(t, 2)
	stopped := time.Now()
	waitWithdrawn(t, c1, c3, "echo")
	t.Logf("%s silent: its endpoints withdrawn from %s %v after its gateway stopped", c3, c1, time.Since(stopped).Round(100*time.Millisecond))
	if got := importIPs(t, c1, "default", "echo"); got != vip {
		t.Errorf("the silent cluster's import has IP %q, want %s as before", got, vip)
	}
	if rcode, answers := digIn(t, c1, "echo-0", clustersetName, "A"); rcode != "NOERROR" || len(answers) != 1 || answers[0] != vip {
		t.Errorf("dig while %s is silent: %s %v, want %s", c3, rcode, answers, vip)
	}

	resume()
	eventually(t, 60*time.Second, c3+"'s endpoints come back behind the same VIP", func() error {
		if got := importIPs(t, c1, "default", "echo"); got != vip {
			return fmt.Errorf("VIP %q, want %s", got, vip)
		}
		if seen := answeringClusters(t, c1, "echo-0", vip+":8080", 4); seen[c3] != 4 {
			return fmt.Errorf("answers by cluster %v", seen)
		}
		return nil
	})
	t.Logf("%s back: traffic to %s flows again %v after its gateway stopped", c3, vip, time.Since(stopped).Round(100*time.Millisecond))

	kubectlIn(t, c3, "delete", "serviceexport", "-n", "default", "echo")
	for _, c := range shared.Clusters {
		eventually(t, 20*time.Second, clustersetName+" disappears from "+c.Name, func() error {
			if ips := importIPs(t, c.Name, "default", "echo"); ips != "" {
				return fmt.Errorf("ServiceImport still there with %s", ips)
			}
			return nil
		})
	}
}

// A headless Service: no VIP; the name answers every ready endpoint, and
// each endpoint with a hostname has a name of its own under its cluster.
func TestHeadlessExportAnswersEndpoints(t *testing.T) {
	waitConnected(t, 60*time.Second)
	c1, c2 := shared.Clusters[0], shared.Clusters[1]
	ip := c2.Pods[0].IP
	applyIn(t, c2.Name, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  clusterIP: None
  ports: [{name: tcp, port: 8080, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-manual
  namespace: default
  labels: {kubernetes.io/service-name: db, endpointslice.kubernetes.io/managed-by: e2e}
addressType: IPv4
ports: [{name: tcp, port: 8080, protocol: TCP}]
endpoints:
- addresses: [%q]
  hostname: db-0
  conditions: {ready: true}
---
apiVersion: multicluster.x-k8s.io/v1beta1
kind: ServiceExport
metadata: {name: db, namespace: default}
`, ip))
	defer kubectlIn(t, c2.Name, "delete", "-n", "default", "serviceexport/db", "service/db", "endpointslice/db-manual", "--ignore-not-found")
	name := "db.default.svc.clusterset.local"
	eventually(t, 20*time.Second, c1.Name+" resolves "+name, func() error {
		if rcode, answers := digIn(t, c1.Name, "echo-0", name, "A"); rcode != "NOERROR" || strings.Join(answers, ",") != ip {
			return fmt.Errorf("dig: %s %v, want %s", rcode, answers, ip)
		}
		return nil
	})
	host := "db-0." + c2.Name + "." + name
	if rcode, answers := digIn(t, c1.Name, "echo-0", host, "A"); rcode != "NOERROR" || strings.Join(answers, ",") != ip {
		t.Errorf("dig %s: %s %v, want %s", host, rcode, answers, ip)
	}
	if rcode, answers := digIn(t, c1.Name, "echo-0", "_tcp._tcp."+name, "SRV"); rcode != "NOERROR" || len(answers) != 1 || answers[0] != host+"." {
		t.Errorf("SRV: %s %v, want one for %s", rcode, answers, host)
	}
	if got := importIPs(t, c1.Name, "default", "db"); got != "" {
		t.Errorf("a headless import has IPs: %s", got)
	}
	out, err := probe(c1.Name, "echo-0", "tcp", ip+":8080")
	if id, perr := echo.ParseReply(out); err != nil || perr != nil || id.Cluster != c2.Name {
		t.Errorf("connect to the headless endpoint %s: %q %v %v", ip, out, err, perr)
	}
}
