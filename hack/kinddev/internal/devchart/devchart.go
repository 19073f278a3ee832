// Package devchart deploys the chart the way the Tilt loop needs it in the
// clusters Tilt does not drive: rendered with `helm template` (as Tilt's
// helm() renders it for the first cluster), with the containers' root
// filesystems made writable, and applied with kubectl.
//
// Why writable: the chart gives its containers read-only root filesystems,
// right for a release, but live update copies a new binary into the running
// container. The Tiltfile makes the same change to the first cluster's
// objects.
package devchart

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// FieldManager is the name kubectl applies the objects under.
const FieldManager = "kinddev"

// workloadKinds are the kinds whose pod template Writable changes.
var workloadKinds = map[string]bool{"Deployment": true, "DaemonSet": true, "StatefulSet": true}

// Writable returns the YAML stream with readOnlyRootFilesystem false on
// every container of every workload, and every other object unchanged.
func Writable(stream []byte) ([]byte, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(stream), 4096)
	var out bytes.Buffer
	for {
		var obj map[string]any
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			return out.Bytes(), nil
		}
		if err != nil {
			return nil, fmt.Errorf("rendered chart: %w", err)
		}
		if obj == nil {
			continue
		}
		if kind, _ := obj["kind"].(string); workloadKinds[kind] {
			if err := writable(obj); err != nil {
				return nil, fmt.Errorf("%s %v: %w", kind, dig(obj, "metadata", "name"), err)
			}
		}
		body, err := yaml.Marshal(obj)
		if err != nil {
			return nil, err
		}
		out.WriteString("---\n")
		out.Write(body)
	}
}

func writable(obj map[string]any) error {
	containers, ok := dig(obj, "spec", "template", "spec", "containers").([]any)
	if !ok {
		return errors.New("no containers in its pod template")
	}
	for _, c := range containers {
		c, ok := c.(map[string]any)
		if !ok {
			return errors.New("a container is not an object")
		}
		sc, _ := c["securityContext"].(map[string]any)
		if sc == nil {
			sc = map[string]any{}
			c["securityContext"] = sc
		}
		sc["readOnlyRootFilesystem"] = false
	}
	return nil
}

func dig(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

// Deploy runs render (a `helm template ...` command line), makes its output
// writable and applies it to kubeContext with server-side apply, so a
// second deploy updates what the first made.
func Deploy(ctx context.Context, kubeContext string, render []string, out io.Writer) error {
	if len(render) == 0 {
		return errors.New("no render command")
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, render[0], render[1:]...)
	cmd.Stderr = &stderr
	rendered, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(render, " "), err, strings.TrimSpace(stderr.String()))
	}
	objects, err := Writable(rendered)
	if err != nil {
		return err
	}
	apply := exec.CommandContext(ctx, "kubectl", "--context", kubeContext, "apply", "--server-side",
		"--force-conflicts", "--field-manager", FieldManager, "-f", "-")
	apply.Stdin = bytes.NewReader(objects)
	apply.Stdout, apply.Stderr = out, out
	if err := apply.Run(); err != nil {
		return fmt.Errorf("kubectl --context %s apply: %w", kubeContext, err)
	}
	return nil
}
