package kindconfig

import (
	"strings"
	"testing"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/hack/kinddev/internal/settings"
)

func TestConfig(t *testing.T) {
	two, three := 2, 3
	s, err := settings.File{Clusters: []string{"east", "west"}, GatewayNodes: &two, WorkerNodes: &three, KindNodeImage: "kindest/node:v1.36.0"}.Resolve("amd64")
	if err != nil {
		t.Fatal(err)
	}
	c := Config(s, s.Clusters[1])
	if c.Name != "west" || c.Kind != "Cluster" || c.APIVersion != "kind.x-k8s.io/v1alpha4" {
		t.Errorf("header %+v %s", c.TypeMeta, c.Name)
	}
	if c.Networking.PodSubnet != "10.202.0.0/16" || c.Networking.ServiceSubnet != "10.212.0.0/16" {
		t.Errorf("networking %+v", c.Networking)
	}
	var roles []string
	for _, n := range c.Nodes {
		role := string(n.Role)
		if n.Labels[wirespanv1alpha1.LabelGateway] == "true" {
			role += "+gateway"
		}
		roles = append(roles, role)
		if n.Image != "kindest/node:v1.36.0" {
			t.Errorf("node image %q", n.Image)
		}
	}
	if got := strings.Join(roles, " "); got != "control-plane worker+gateway worker+gateway worker worker worker" {
		t.Errorf("nodes: %s", got)
	}
	// kind's default CNI (kindnet) and kube-proxy stay: Wirespan works
	// beside any CNI.
	if c.Networking.DisableDefaultCNI || c.Networking.KubeProxyMode != "" {
		t.Errorf("networking %+v", c.Networking)
	}
	body, err := YAML(s, s.Clusters[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(body), "# kind cluster 1 ") || !strings.Contains(string(body), "name: east\n") {
		t.Errorf("YAML:\n%s", body)
	}
}
