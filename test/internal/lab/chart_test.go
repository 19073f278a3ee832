package lab

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/wirespan/wirespan/internal/testenv"
	"github.com/wirespan/wirespan/test/internal/lab/plan"
)

// The lab applies the chart minus its Pods and runs the Pods' containers
// with their arguments: check what it takes from a real render.
func TestRenderChartSplitsObjectsFromWorkloads(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	l := &Lab{Bins: DefaultBins(root), Out: os.Stdout}
	if _, err := os.Stat(l.Bins.Helm); err != nil {
		if testing.Short() {
			t.Skip("helm is missing (`make bins` builds it)")
		}
		t.Fatalf("helm is missing: run `make bins` (%v)", err)
	}
	p, err := plan.New(plan.Config{Clusters: 1, Nodes: 1, Gateways: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := p.Clusters[0]
	r, err := l.renderChart(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	apply := string(r.apply)
	for _, kind := range []string{"Deployment", "DaemonSet"} {
		if strings.Contains(apply, "\nkind: "+kind+"\n") {
			t.Errorf("the objects to apply hold a %s, which the lab runs as a process", kind)
		}
	}
	for _, want := range []string{
		"kind: CustomResourceDefinition", "name: clusterpeers.wirespan.io", "name: serviceexports.multicluster.x-k8s.io",
		"kind: ServiceAccount", "kind: ClusterRole\n", "kind: RoleBinding", "name: wirespan-dns",
		"clusterIP: " + c.ClustersetDNSIP.String(),
	} {
		if !strings.Contains(apply, want) {
			t.Errorf("the objects to apply lack %q", want)
		}
	}
	if r.operator.serviceAccount != "wirespan-operator" || r.gateway.serviceAccount != "wirespan-gateway" {
		t.Errorf("ServiceAccounts: operator %q, gateway %q", r.operator.serviceAccount, r.gateway.serviceAccount)
	}
	for _, want := range []string{"--cluster-id=" + c.Name, "--key-secret=wirespan-system/wirespan-cluster-key", "--leader-elect=true"} {
		if !slices.Contains(r.operator.args, want) {
			t.Errorf("operator args %q lack %q", r.operator.args, want)
		}
	}
	for _, want := range []string{"--cluster-id=" + c.Name, "--dns-service=wirespan-system/wirespan-dns", "--sysctl-dir=/host/proc/sys"} {
		if !slices.Contains(r.gateway.args, want) {
			t.Errorf("gateway args %q lack %q", r.gateway.args, want)
		}
	}
}
