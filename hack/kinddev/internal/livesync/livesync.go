// Package livesync live-updates Wirespan's containers in the kind clusters
// that Tilt does not deploy to itself (Tilt drives one kube context). It
// does what Tilt's live_update does for the first cluster: copy the freshly
// built binary into every running container that runs it, then run
// /tilt/restart.sh there, which restarts the process in place (see
// build/tilt). Containers are found by the image they run, so it needs no
// knowledge of the chart's object names or labels.
package livesync

import (
	"context"
	"fmt"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Dir is where the dev image keeps the binary and its restart scripts
// (build/tilt/Dockerfile).
const Dir = "/tilt"

// Binary is a locally built binary and the image repository whose
// containers run it.
type Binary struct {
	// Image is the repository, without tag or digest.
	Image string
	// Path is the local file.
	Path string
}

// Target is one container to update.
type Target struct {
	Pod, Container string
	Binary         Binary
}

// Targets lists the running containers in namespace whose image is one of
// bins', in pod and container name order. Pods being deleted or not
// running are left out: a new pod starts from the image, which the loop
// keeps current.
func Targets(ctx context.Context, cs kubernetes.Interface, namespace string, bins []Binary) ([]Target, error) {
	pods, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list pods in %s: %w", namespace, err)
	}
	var out []Target
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
			continue
		}
		for _, c := range p.Spec.Containers {
			i := slices.IndexFunc(bins, func(b Binary) bool { return b.Image == Repository(c.Image) })
			if i < 0 || !running(p, c.Name) {
				continue
			}
			out = append(out, Target{Pod: p.Name, Container: c.Name, Binary: bins[i]})
		}
	}
	slices.SortFunc(out, func(a, b Target) int {
		return strings.Compare(a.Pod+"/"+a.Container, b.Pod+"/"+b.Container)
	})
	return out, nil
}

func running(p corev1.Pod, container string) bool {
	for _, s := range p.Status.ContainerStatuses {
		if s.Name == container {
			return s.State.Running != nil
		}
	}
	return false
}

// Repository is an image reference without its tag and digest:
// "ghcr.io/x/y:v1@sha256:..." is "ghcr.io/x/y". A registry port
// ("localhost:5000/x") is kept.
func Repository(image string) string {
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndexByte(image, ':'); i > strings.LastIndexByte(image, '/') {
		image = image[:i]
	}
	return image
}

// Commands are the kubectl invocations that update t: copy the binary
// over the one in the container (kubectl cp extracts with the image's tar,
// which replaces the file rather than writing into the running program),
// then restart the process.
func Commands(kubeContext, namespace string, t Target) [][]string {
	base := []string{"kubectl", "--context", kubeContext, "--namespace", namespace}
	dest := path.Join(Dir, filepath.Base(t.Binary.Path))
	return [][]string{
		append(slices.Clone(base), "cp", "--container", t.Container, t.Binary.Path, t.Pod+":"+dest),
		append(slices.Clone(base), "exec", t.Pod, "--container", t.Container, "--", path.Join(Dir, "restart.sh")),
	}
}

// Sync runs Commands for every target, stopping at the first failure.
func Sync(ctx context.Context, kubeContext, namespace string, targets []Target, log func(string)) error {
	for _, t := range targets {
		for _, argv := range Commands(kubeContext, namespace, t) {
			out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%s/%s: %s: %w: %s", t.Pod, t.Container, strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
			}
		}
		log(fmt.Sprintf("%s: %s/%s restarted with %s", kubeContext, t.Pod, t.Container, t.Binary.Path))
	}
	return nil
}
