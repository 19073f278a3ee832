package e2e

import (
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A cluster whose admin turns hostile with its exports: c2, first with
// only its own API server (its gateway stays honest software), then with
// its own key and a gossip speaker of its own (hostile_speaker_test.go).
// c1 and c3 refuse every move, each counted in the metric docs/security.md
// names, and nothing of theirs changes: the honest export of c3 (its
// ServiceImports and VIPs in c1 and c3, the DNS answers, the traffic to
// it), their routes, their pods' traffic, and c1's view of the clusters.
func TestHostileExportsAreRefused(t *testing.T) {
	waitConnected(t, 60*time.Second)
	c1 := shared.Clusters[0].Name
	// Names of their own in every run: a gateway counts a refused record
	// once per name for as long as it runs.
	run = strconv.FormatInt(time.Now().Unix()%100000, 10)
	honestExport(t)
	exporters := importClusters(t, c1, "default", "echo")
	// As Git would give it, in c1 only: c2 may export from default alone.
	kubectlIn(t, c1, "patch", "clusterpeer", "c2", "--type", "merge", "-p", `{"spec":{"exportNamespaces":["default"]}}`)
	t.Cleanup(func() {
		kubectlIn(t, c1, "patch", "clusterpeer", "c2", "--type", "json", "-p", `[{"op":"remove","path":"/spec/exportNamespaces"}]`)
	})
	before := honestView(t)
	honestTraffic(t)

	t.Run("own API server", hostileKubectlMoves)
	t.Run("own key", hostileSpeakerMoves)

	// The speaker's cleanup restarted c2's gateway: c2 is back with its
	// real exports (none of the moves above), and nothing of c1 or c3
	// differs from before.
	waitConnected(t, 90*time.Second)
	eventually(t, 60*time.Second, "c2's hostile records gone from "+c1, func() error {
		if got := importClusters(t, c1, "default", "echo"); got != exporters {
			return fmt.Errorf("echo imported from %q, want %s as before", got, exporters)
		}
		return nil
	})
	if after := honestView(t); after != before {
		t.Errorf("the honest clusters changed:\nbefore %s\n after %s", before, after)
	}
	honestTraffic(t)
}

// run tells one run's hostile names from another's.
var run string

// hostile names a hostile object of this run.
func hostile(base string) string { return base + "-" + run }

// honestExport exports c3's echo and waits until c1 and c3 import it and
// their DNS answers (c2 may export it too, as another test of the
// shared lab leaves it); the cleanup unexports it and waits until it is gone
// everywhere, as the tests after this one expect.
func honestExport(t *testing.T) {
	c3 := shared.Clusters[2].Name
	exportIn(t, c3, "default", "echo")
	t.Cleanup(func() {
		kubectlIn(t, c3, "delete", "serviceexport", "-n", "default", "echo", "--ignore-not-found")
		for _, c := range shared.Clusters {
			eventually(t, 30*time.Second, "echo unexported in "+c.Name, func() error {
				if ips := importIPs(t, c.Name, "default", "echo"); ips != "" {
					return fmt.Errorf("ServiceImport still there with %s", ips)
				}
				return nil
			})
		}
	})
	for _, c := range []string{shared.Clusters[0].Name, c3} {
		eventually(t, 30*time.Second, c+" imports and resolves c3's echo", func() error {
			vip := importIPs(t, c, "default", "echo")
			if rcode, answers := digIn(t, c, "echo-0", clustersetName, "A"); vip == "" || rcode != "NOERROR" || !slices.Equal(answers, []string{vip}) {
				return fmt.Errorf("VIP %q, dig %s %v", vip, rcode, answers)
			}
			return nil
		})
	}
}

// honestView is, as text, what the hostile cluster must not change: in c1
// and c3, the import of c3's echo (VIP, type, ports, session affinity),
// the DNS answer for it, and the routes Wirespan installed on every node;
// and c1's gossip view of c2 and c3.
func honestView(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, i := range []int{0, 2} {
		c := shared.Clusters[i]
		si := kubectlIn(t, c.Name, "get", "serviceimports.multicluster.x-k8s.io", "-n", "default", "echo", "-o",
			"jsonpath={.spec.ips} {.spec.type} {.spec.ports} {.spec.sessionAffinity}")
		_, answers := digIn(t, c.Name, "echo-0", clustersetName, "A")
		fmt.Fprintf(&b, "%s: import %s dns %v\n", c.Name, si, answers)
		for _, n := range c.Nodes {
			fmt.Fprintf(&b, "%s routes:\n%s\n", n.Name, gatewayRoutes(t, c.Name, n.Name))
		}
	}
	b.WriteString(honestGossipView(t))
	return b.String()
}

// honestTraffic checks the pods' traffic between the honest clusters, and
// from c1 to c3's echo through its clusterset VIP.
func honestTraffic(t *testing.T) {
	t.Helper()
	c1, c3 := shared.Clusters[0], shared.Clusters[2]
	for _, p := range [][3]string{{c1.Name, "echo-0", c3.Pods[1].IP}, {c3.Name, "echo-0", c1.Pods[1].IP}} {
		if out, err := probe(p[0], p[1], "tcp", p[2]+":8080"); err != nil {
			t.Errorf("%s %s -> %s: %v %s", p[0], p[1], p[2], err, out)
		}
	}
	vip := importIPs(t, c1.Name, "default", "echo")
	eventually(t, 10*time.Second, "c1 reaches c3's echo through "+vip, func() error {
		if seen := answeringClusters(t, c1.Name, "echo-0", vip+":8080", 6); seen[c3.Name] == 0 || seen["error"] > 0 {
			return fmt.Errorf("answers by cluster %v", seen)
		}
		return nil
	})
}

// importClusters returns the exporting clusters of an import, as the
// ServiceImport's status lists them.
func importClusters(t *testing.T, cluster, ns, name string) string {
	return strings.TrimSpace(kubectlIn(t, cluster, "get", "serviceimports.multicluster.x-k8s.io", "-n", ns, name,
		"--ignore-not-found", "-o", "jsonpath={.status.clusters[*].cluster}"))
}

// The moves c2's admin makes with kubectl alone, its gateway exporting
// what the API server holds:
//   - an EndpointSlice at the cloud metadata address: refused by c2's own
//     API server (link-local), so never exported;
//   - a selectorless Service whose hand-written EndpointSlice names c1's
//     and c3's pods and c2's own node, beside one c2 pod: exported as
//     written (the exporter cannot know what belongs to whom); c1 and c3
//     import the c2 pod alone and count the others in
//     wirespan_mcs_refused_endpoints_total{cluster="c2"};
//   - an export from kube-system, with c1's ClusterPeer for c2 (as from
//     Git) allowing only default: imported by c3 (no list), refused by
//     c1, counted in wirespan_mcs_unusable_records_total{reason="namespace"};
//   - a Service with 101 ports: refused by c2's exporter (its
//     ServiceExport is not Ready), so nothing is gossiped.
func hostileKubectlMoves(t *testing.T) {
	c1, c2, c3 := shared.Clusters[0], shared.Clusters[1], shared.Clusters[2]
	gw1, gw3 := c1.Nodes[0].Name, c3.Nodes[0].Name

	// c2's own API server refuses the metadata address.
	out, err := kubectlStdin(c2.Name, endpointSlice("default", "meta", "169.254.169.254"), "apply", "-f", "-")
	if err == nil || !strings.Contains(out, "link-local") {
		t.Errorf("c2's API server took an EndpointSlice at the metadata address: %v\n%s", err, out)
	}

	refused1 := scrape(t, c1.Name, gw1, "wirespan_mcs_refused_endpoints_total")
	refused3 := scrape(t, c3.Name, gw3, "wirespan_mcs_refused_endpoints_total")
	unusable1 := scrape(t, c1.Name, gw1, "wirespan_mcs_unusable_records_total")

	own := c2.Pods[1].IP // echo-1, on c2's other node
	foreign := []string{c1.Pods[0].IP, c3.Pods[0].IP, c2.Nodes[1].UnderlayIP}
	ports101 := make([]string, 101)
	for i := range ports101 {
		ports101[i] = fmt.Sprintf("{name: p%d, port: %d}", i, 9000+i)
	}
	manifest := strings.Join([]string{
		service("default", hostile("hostile-ips"), "[{name: tcp, port: 8080}]"),
		endpointSlice("default", hostile("hostile-ips"), append([]string{own}, foreign...)...),
		serviceExport("default", hostile("hostile-ips")),
		service("kube-system", hostile("hostile-ns"), "[{name: tcp, port: 8080}]"),
		serviceExport("kube-system", hostile("hostile-ns")),
		service("default", hostile("hostile-ports"), "["+strings.Join(ports101, ", ")+"]"),
		serviceExport("default", hostile("hostile-ports")),
	}, "---\n")
	applyIn(t, c2.Name, manifest)
	deleteAll := func() {
		_, _ = kubectlStdin(c2.Name, manifest, "delete", "--ignore-not-found", "-f", "-")
	}
	t.Cleanup(deleteAll)

	for _, c := range []string{c1.Name, c3.Name} {
		eventually(t, 30*time.Second, c+" imports hostile-ips with c2's own pod alone", func() error {
			if got := importedAddresses(t, c, "default", hostile("hostile-ips"), c2.Name); got != own {
				return fmt.Errorf("imported endpoints %q, want %s", got, own)
			}
			return nil
		})
	}
	eventually(t, 30*time.Second, "c3 imports kube-system/hostile-ns (it has no namespace list for c2)", func() error {
		if importClusters(t, c3.Name, "kube-system", hostile("hostile-ns")) != c2.Name {
			return fmt.Errorf("not imported yet")
		}
		return nil
	})
	eventually(t, 20*time.Second, "c1 and c3 count the refusals", func() error {
		if d := delta(scrape(t, c1.Name, gw1, "wirespan_mcs_refused_endpoints_total"), refused1, "cluster", c2.Name); d < float64(len(foreign)) {
			return fmt.Errorf("c1 counted %v endpoints of c2 refused, want at least %d", d, len(foreign))
		}
		if d := delta(scrape(t, c3.Name, gw3, "wirespan_mcs_refused_endpoints_total"), refused3, "cluster", c2.Name); d < float64(len(foreign)) {
			return fmt.Errorf("c3 counted %v endpoints of c2 refused, want at least %d", d, len(foreign))
		}
		if d := delta(scrape(t, c1.Name, gw1, "wirespan_mcs_unusable_records_total"), unusable1, "reason", "namespace"); d != 1 {
			return fmt.Errorf("c1 counted %v records refused for their namespace, want 1", d)
		}
		return nil
	})
	if got := importClusters(t, c1.Name, "kube-system", hostile("hostile-ns")); got != "" {
		t.Errorf("c1 imported kube-system/hostile-ns from %s, outside c2's exportNamespaces", got)
	}
	if got := exportConditionsIn(t, c2.Name, "default", hostile("hostile-ports"))["Ready"]; !strings.HasPrefix(got, "False/") {
		t.Errorf("c2's exporter took a Service of 101 ports: Ready %s", got)
	}
	for _, c := range []string{c1.Name, c3.Name} {
		if got := importClusters(t, c, "default", hostile("hostile-ports")); got != "" {
			t.Errorf("%s imported a Service of 101 ports from %s", c, got)
		}
	}
	deleteAll()
}

// importedAddresses returns the addresses of the EndpointSlices that
// cluster imported for ns/name from exporter, sorted and comma-separated.
func importedAddresses(t *testing.T, cluster, ns, name, exporter string) string {
	out := kubectlIn(t, cluster, "get", "endpointslices", "-n", ns, "-l",
		"multicluster.kubernetes.io/service-name="+name+",multicluster.kubernetes.io/source-cluster="+exporter,
		"-o", "jsonpath={.items[*].endpoints[*].addresses[*]}")
	addrs := strings.Fields(out)
	slices.Sort(addrs)
	return strings.Join(addrs, ",")
}

func service(ns, name, ports string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: %s}\nspec:\n  ports: %s\n", name, ns, ports)
}

func serviceExport(ns, name string) string {
	return fmt.Sprintf("apiVersion: multicluster.x-k8s.io/v1beta1\nkind: ServiceExport\nmetadata: {name: %s, namespace: %s}\n", name, ns)
}

// endpointSlice is a hand-written EndpointSlice of a selectorless Service,
// one ready endpoint per address, on port tcp 8080.
func endpointSlice(ns, service string, addrs ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: %s-manual\n  namespace: %s\n", service, ns)
	fmt.Fprintf(&b, "  labels: {kubernetes.io/service-name: %s, endpointslice.kubernetes.io/managed-by: e2e}\n", service)
	b.WriteString("addressType: IPv4\nports: [{name: tcp, port: 8080, protocol: TCP}]\nendpoints:\n")
	for _, a := range addrs {
		fmt.Fprintf(&b, "- addresses: [%q]\n  conditions: {ready: true}\n", a)
	}
	return b.String()
}

// kubectlStdin runs kubectl in a cluster with stdin, and returns its
// combined output and error without failing the test.
func kubectlStdin(cluster, stdin string, args ...string) (string, error) {
	kc := ""
	for _, c := range shared.Clusters {
		if c.Name == cluster {
			kc = c.Kubeconfig
		}
	}
	cmd := exec.Command(kubectl, append([]string{"--kubeconfig", kc}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
