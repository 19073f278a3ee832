package lab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/wirespan/wirespan/test/internal/lab/objects"
	"github.com/wirespan/wirespan/test/internal/lab/plan"
)

// The lab installs Wirespan from its Helm chart, minus the Pods: it applies
// what the chart renders (CRDs, ServiceAccounts, RBAC, Services) to each
// cluster, and runs the operator and the gateways as processes with the
// arguments of the chart's Deployment and DaemonSet, authenticated as the
// chart's ServiceAccounts. So every lab, and the e2e suite, runs Wirespan
// with exactly the chart's permissions and flags.
const (
	// ReleaseName and ReleaseNamespace are the release the lab renders:
	// the names docs/helm.md installs with, whose key Secret is the
	// binaries' default --key-secret.
	ReleaseName      = "wirespan"
	ReleaseNamespace = objects.KeySecretNamespace
)

// chartRender is what the lab takes from the chart for one cluster.
type chartRender struct {
	// apply is the YAML stream of the objects the lab applies as they are.
	apply []byte
	// operator and gateway are the workloads the lab runs as processes.
	operator, gateway workload
}

// workload is a container the lab runs as a process instead of a Pod.
type workload struct {
	serviceAccount string
	args           []string
}

// workloadKinds are the kinds the lab replaces with processes; a
// PodDisruptionBudget and the rest are applied (they are inert without
// Pods).
var workloadKinds = map[string]bool{"Deployment": true, "DaemonSet": true}

// chartValues are the values the lab installs cluster c with: the lab
// brings its own key (clusterKey.existingSecret, as a GitOps user does) and
// pins the DNS Service's address, which its CoreDNS forwards to.
func chartValues(c plan.Cluster) []string {
	return []string{
		"clusterID=" + c.Name,
		"clusterKey.existingSecret=" + objects.KeySecretName,
		"dnsService.clusterIP=" + c.ClustersetDNS().String(),
	}
}

// renderChart runs `helm template` for cluster c and sorts what it renders.
func (l *Lab) renderChart(ctx context.Context, c plan.Cluster) (*chartRender, error) {
	args := []string{"template", ReleaseName, l.Bins.Chart, "--namespace", ReleaseNamespace}
	for _, v := range chartValues(c) {
		args = append(args, "--set", v)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, l.Bins.Helm, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return sortRendered(out)
}

// sortRendered splits a rendered chart into the objects to apply and the
// two workloads.
func sortRendered(rendered []byte) (*chartRender, error) {
	r := &chartRender{}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(rendered)))
	var apply bytes.Buffer
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read rendered chart: %w", err)
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, fmt.Errorf("rendered chart: %w", err)
		}
		switch {
		case meta.Kind == "":
			continue // a document of comments only
		case !workloadKinds[meta.Kind]:
			apply.WriteString("---\n")
			apply.Write(doc)
			continue
		}
		spec, err := podSpec(meta.Kind, doc)
		if err != nil {
			return nil, err
		}
		if len(spec.Containers) != 1 {
			return nil, fmt.Errorf("rendered %s has %d containers; the lab runs one process per workload", meta.Kind, len(spec.Containers))
		}
		w := workload{serviceAccount: spec.ServiceAccountName, args: spec.Containers[0].Args}
		if meta.Kind == "Deployment" {
			r.operator = w
		} else {
			r.gateway = w
		}
	}
	if r.operator.serviceAccount == "" || r.gateway.serviceAccount == "" {
		return nil, errors.New("the rendered chart lacks the operator Deployment or the gateway DaemonSet, or their serviceAccountName")
	}
	r.apply = apply.Bytes()
	return r, nil
}

func podSpec(kind string, doc []byte) (*corev1.PodSpec, error) {
	switch kind {
	case "Deployment":
		var d appsv1.Deployment
		if err := yaml.UnmarshalStrict(doc, &d); err != nil {
			return nil, fmt.Errorf("rendered Deployment: %w", err)
		}
		return &d.Spec.Template.Spec, nil
	default:
		var d appsv1.DaemonSet
		if err := yaml.UnmarshalStrict(doc, &d); err != nil {
			return nil, fmt.Errorf("rendered DaemonSet: %w", err)
		}
		return &d.Spec.Template.Spec, nil
	}
}
