// Command kinddev runs the kind side of Wirespan's Tilt loop
// (docs/development.md, "Tilt: two kind clusters"):
//
//	kinddev settings          the effective settings as JSON (the Tiltfile reads them)
//	kinddev kind-config NAME  the kind config of one cluster
//	kinddev up                create the kind clusters that are missing (make kind-up)
//	kinddev down              delete them and the loop's state (make kind-down)
//	kinddev prepare           namespace and key Secret in every cluster; write the ClusterPeer folder
//	kinddev deploy -context C -- helm template ...
//	                          render the chart, make its root filesystems writable, apply it to C
//	kinddev sync -context C -image REPO=PATH...
//	                          live-update the containers of cluster C that run REPO with PATH
//
// Every command reads tilt-settings.yaml from the working directory (the
// repository root) or -settings.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wirespan/wirespan/hack/kinddev/internal/devchart"
	"github.com/wirespan/wirespan/hack/kinddev/internal/kindconfig"
	"github.com/wirespan/wirespan/hack/kinddev/internal/livesync"
	"github.com/wirespan/wirespan/hack/kinddev/internal/peers"
	"github.com/wirespan/wirespan/hack/kinddev/internal/settings"
)

const usage = `usage: kinddev [-settings FILE] COMMAND
commands:
  settings              print the effective settings as JSON
  kind-config CLUSTER   print the kind config of CLUSTER
  up                    create the kind clusters that do not exist yet
  down                  delete the kind clusters and the loop's state (.cache/tilt)
  prepare               create the namespace and key Secret in every cluster, write the ClusterPeer folder
  deploy -context CONTEXT -- RENDER...
                        run RENDER (helm template ...), make the workloads' root filesystems writable
                        for live update, and apply the result to CONTEXT
  sync -context CONTEXT -image REPO=PATH [-image ...]
                        copy PATH into every running container of REPO in CONTEXT and restart it`

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kinddev:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("kinddev", flag.ContinueOnError)
	settingsPath := fs.String("settings", "tilt-settings.yaml", "settings file; missing means all defaults (tilt-settings.example.yaml lists them)")
	fs.Usage = func() { fmt.Fprintln(fs.Output(), usage) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("no command")
	}
	s, err := settings.Load(*settingsPath, runtime.GOARCH)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "settings":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	case "kind-config":
		if len(rest) != 1 {
			return errors.New("kind-config takes one cluster name")
		}
		c, err := cluster(s, rest[0])
		if err != nil {
			return err
		}
		body, err := kindconfig.YAML(s, c)
		if err != nil {
			return err
		}
		_, err = stdout.Write(body)
		return err
	case "up":
		return up(ctx, s, stdout)
	case "down":
		return down(ctx, s, stdout)
	case "prepare":
		return prepare(ctx, s, stdout)
	case "deploy":
		return deploy(ctx, rest, stdout)
	case "sync":
		return sync(ctx, s, rest, stdout)
	default:
		fs.Usage()
		return fmt.Errorf("unknown command %q", cmd)
	}
}

func cluster(s *settings.Settings, name string) (settings.Cluster, error) {
	for _, c := range s.Clusters {
		if c.Name == name {
			return c, nil
		}
	}
	return settings.Cluster{}, fmt.Errorf("no cluster %q in the settings (they name %s)", name, names(s))
}

func names(s *settings.Settings) string {
	var n []string
	for _, c := range s.Clusters {
		n = append(n, c.Name)
	}
	return strings.Join(n, ", ")
}

// up creates the clusters kind does not have yet. An existing cluster is
// left alone, even if the settings changed since: `make kind-down` first
// to get new node counts.
func up(ctx context.Context, s *settings.Settings, out io.Writer) error {
	existing, err := kindClusters(ctx)
	if err != nil {
		return err
	}
	for _, c := range s.Clusters {
		if slices.Contains(existing, c.Name) {
			fmt.Fprintf(out, "kind cluster %s exists: kept as it is (make kind-down first to apply changed settings)\n", c.Name)
			continue
		}
		body, err := kindconfig.YAML(s, c)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(c.KindConfig), 0o755); err != nil {
			return fmt.Errorf("kind config folder: %w", err)
		}
		if err := os.WriteFile(c.KindConfig, body, 0o644); err != nil {
			return fmt.Errorf("write kind config: %w", err)
		}
		if err := stream(ctx, out, "kind", "create", "cluster", "--name", c.Name, "--config", c.KindConfig); err != nil {
			return fmt.Errorf("create kind cluster %s: %w", c.Name, err)
		}
	}
	// kind switches to each cluster it makes; Tilt deploys to the current
	// context, which must be the first cluster's.
	first := s.Clusters[0].Context
	if err := stream(ctx, out, "kubectl", "config", "use-context", first); err != nil {
		return err
	}
	fmt.Fprintf(out, "kind clusters ready: %s; kube context %s. Next: tilt up\n", names(s), first)
	return nil
}

func down(ctx context.Context, s *settings.Settings, out io.Writer) error {
	for _, c := range s.Clusters {
		if err := stream(ctx, out, "kind", "delete", "cluster", "--name", c.Name); err != nil {
			return fmt.Errorf("delete kind cluster %s: %w", c.Name, err)
		}
	}
	// The keys the ClusterPeer folder names died with the clusters.
	if err := os.RemoveAll(s.StateDir); err != nil {
		return fmt.Errorf("remove %s: %w", s.StateDir, err)
	}
	fmt.Fprintf(out, "deleted kind clusters %s and %s\n", names(s), s.StateDir)
	return nil
}

func kindClusters(ctx context.Context) ([]string, error) {
	out, err := exec.CommandContext(ctx, "kind", "get", "clusters").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("kind get clusters: %w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return nil, fmt.Errorf("kind get clusters (is kind installed? see docs/development.md): %w", err)
	}
	return strings.Fields(string(out)), nil
}

func stream(ctx context.Context, out io.Writer, name string, args ...string) error {
	fmt.Fprintf(out, "+ %s %s\n", name, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	return cmd.Run()
}

func clientFor(kubeContext string) (kubernetes.Interface, error) {
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		clientcmd.NewDefaultClientConfigLoadingRules(),
		&clientcmd.ConfigOverrides{CurrentContext: kubeContext},
	).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kube context %s (make kind-up creates it): %w", kubeContext, err)
	}
	cfg.Timeout = 30 * time.Second
	return kubernetes.NewForConfig(cfg)
}

func prepare(ctx context.Context, s *settings.Settings, out io.Writer) error {
	var all []peers.Peer
	for _, c := range s.Clusters {
		cs, err := clientFor(c.Context)
		if err != nil {
			return err
		}
		p, err := peers.Prepare(ctx, peers.Cluster{
			Name: c.Name, Client: cs, Namespace: s.Namespace, Secret: s.KeySecret,
			AllowedCIDRs: []netip.Prefix{c.PodSubnet, c.ServiceSubnet},
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s: key Secret %s/%s (public key %s), gateways %v\n", c.Name, s.Namespace, s.KeySecret, p.PublicKey, p.Endpoints)
		all = append(all, p)
	}
	if err := peers.WriteFolder(s.ClusterPeersDir, all); err != nil {
		return err
	}
	fmt.Fprintf(out, "ClusterPeer folder: %s\n", s.ClusterPeersDir)
	return nil
}

func deploy(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("deploy", flag.ContinueOnError)
	kubeContext := fs.String("context", "", "kube context of the cluster to deploy to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *kubeContext == "" || fs.NArg() == 0 {
		return errors.New("deploy needs -context and, after --, the command that renders the chart")
	}
	return devchart.Deploy(ctx, *kubeContext, fs.Args(), out)
}

func sync(ctx context.Context, s *settings.Settings, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("sync", flag.ContinueOnError)
	kubeContext := fs.String("context", "", "kube context of the cluster to update")
	var bins []livesync.Binary
	fs.Func("image", "REPO=PATH: containers running image repository REPO get binary PATH (repeat for each binary)", func(v string) error {
		repo, p, ok := strings.Cut(v, "=")
		if !ok || repo == "" || p == "" {
			return fmt.Errorf("%q: want REPO=PATH", v)
		}
		bins = append(bins, livesync.Binary{Image: repo, Path: p})
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *kubeContext == "" || len(bins) == 0 {
		return errors.New("sync needs -context and at least one -image")
	}
	for _, b := range bins {
		if _, err := os.Stat(b.Path); err != nil {
			return fmt.Errorf("binary for %s: %w", b.Image, err)
		}
	}
	cs, err := clientFor(*kubeContext)
	if err != nil {
		return err
	}
	targets, err := livesync.Targets(ctx, cs, s.Namespace, bins)
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		fmt.Fprintf(out, "%s: no running container runs %v yet; new pods start from the image\n", *kubeContext, bins)
		return nil
	}
	return livesync.Sync(ctx, *kubeContext, s.Namespace, targets, func(line string) { fmt.Fprintln(out, line) })
}
