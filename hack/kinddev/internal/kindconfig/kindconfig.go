// Package kindconfig writes the kind configuration of one cluster of the
// Tilt loop from the settings: its address ranges, one control-plane node,
// the gateway workers (labeled wirespan.io/gateway=true) and the other
// workers. It uses kind's own v1alpha4 types, so a field kind does not know
// cannot be written.
package kindconfig

import (
	"fmt"

	kindv1alpha4 "sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"

	wirespanv1alpha1 "github.com/wirespan/wirespan/apis/v1alpha1"
	"github.com/wirespan/wirespan/hack/kinddev/internal/settings"
)

// Config is the kind cluster for c.
func Config(s *settings.Settings, c settings.Cluster) *kindv1alpha4.Cluster {
	cfg := &kindv1alpha4.Cluster{
		TypeMeta: kindv1alpha4.TypeMeta{Kind: "Cluster", APIVersion: "kind.x-k8s.io/v1alpha4"},
		Name:     c.Name,
		Networking: kindv1alpha4.Networking{
			PodSubnet:     c.PodSubnet.String(),
			ServiceSubnet: c.ServiceSubnet.String(),
		},
	}
	node := func(role kindv1alpha4.NodeRole, labels map[string]string) kindv1alpha4.Node {
		return kindv1alpha4.Node{Role: role, Image: s.KindNodeImage, Labels: labels}
	}
	cfg.Nodes = append(cfg.Nodes, node(kindv1alpha4.ControlPlaneRole, nil))
	for range s.GatewayNodes {
		cfg.Nodes = append(cfg.Nodes, node(kindv1alpha4.WorkerRole, map[string]string{wirespanv1alpha1.LabelGateway: "true"}))
	}
	for range s.WorkerNodes {
		cfg.Nodes = append(cfg.Nodes, node(kindv1alpha4.WorkerRole, nil))
	}
	return cfg
}

// YAML renders the kind config of c as the file `kind create cluster
// --config` reads, with a header saying where it came from.
func YAML(s *settings.Settings, c settings.Cluster) ([]byte, error) {
	body, err := yaml.Marshal(Config(s, c))
	if err != nil {
		return nil, fmt.Errorf("kind config of %s: %w", c.Name, err)
	}
	header := fmt.Sprintf("# kind cluster %d of the Tilt loop (docs/development.md), written by\n"+
		"# `go run ./hack/kinddev kind-config %s` from the settings (tilt-settings.yaml, or\n"+
		"# the defaults): change the settings, not this file.\n",
		c.Index, c.Name)
	return append([]byte(header), body...), nil
}
