// Package cli is kubectl-wirespan's commands: flags, reading the clusters
// (package kube), and handing what was read to the pure packages.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/spf13/cobra"

	"github.com/wirespan/wirespan/internal/kubeflag"
	"github.com/wirespan/wirespan/internal/version"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/kube"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/model"
)

// errFailed is returned when diagnose found a failing check: the report
// is already printed, so Main only sets the exit status.
var errFailed = errors.New("a check failed")

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1 // diagnose: a check failed
	exitError  = 2 // the command could not run (flags, kubeconfig)
)

// globals are the flags every command takes.
type globals struct {
	sel       kube.Selection
	namespace string
	dnsSvc    string
	lease     string
	coredns   string
	timeout   time.Duration
}

// Main runs the plugin and returns its exit status; Ctrl-C cancels it
// (diagnose still deletes the ProbeRequests it made).
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return Run(ctx, args, stdout, stderr)
}

// Run runs the plugin until ctx is done and returns its exit status.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errFailed):
		return exitFailed
	default:
		fmt.Fprintln(stderr, "kubectl-wirespan:", err)
		return exitError
	}
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "kubectl-wirespan",
		Short: "Show and diagnose a Wirespan clusterset",
		Long: `kubectl wirespan shows a Wirespan clusterset as one or more of its clusters see it:
tunnels, routed and refused ranges, Multi-Cluster Services, DNS.

It reads through the Kubernetes API with your kubeconfig. It writes nothing
but diagnose's ProbeRequests, which it deletes (diagnose --probe=false only
reads). Give several contexts (--contexts or --all-contexts) to see the clusterset
from several sides and compare them.`,
		Example: `  kubectl wirespan status
  kubectl wirespan status --contexts east,west,north -o wide
  kubectl wirespan diagnose --all-contexts
  kubectl wirespan graph --all-contexts -o svg > clusterset.svg`,
		Version:       version.Get(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl wirespan"}

	f := root.PersistentFlags()
	f.StringVar(&g.sel.Kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
	f.StringVar(&g.sel.Context, "context", "", "the kubeconfig context to read (default: the current one)")
	f.StringSliceVar(&g.sel.Contexts, "contexts", nil, "several contexts to read, comma-separated: one per cluster of the clusterset")
	f.BoolVar(&g.sel.AllContexts, "all-contexts", false, "read every context of the kubeconfig")
	f.StringVarP(&g.namespace, "namespace", "n", "wirespan-system", "namespace Wirespan is installed in (the Helm release's)")
	f.StringVar(&g.dnsSvc, "dns-service", "wirespan-dns", "name of Wirespan's DNS Service in --namespace (the chart's <fullname>-dns)")
	f.StringVar(&g.lease, "gateway-lease", "wirespan-gateway", "name of the Lease the gateways hold in turn, in --namespace (the chart's <fullname>-gateway): its holder is the active gateway, which writes its version on it")
	f.StringVar(&g.coredns, "coredns-configmap", "kube-system/coredns", "namespace/name of the CoreDNS ConfigMap")
	f.DurationVar(&g.timeout, "request-timeout", 15*time.Second, "timeout of each request to an API server")
	completeContexts(root, g)

	root.AddCommand(newStatus(g), newGraph(g), newDiagnose(g))
	return root
}

// resolve turns the flags into contexts and where Wirespan's objects are.
func (g *globals) resolve() ([]kube.Target, kube.Where, error) {
	coredns, err := kubeflag.NamespacedName(g.coredns)
	if err != nil {
		return nil, kube.Where{}, fmt.Errorf("--coredns-configmap: %w", err)
	}
	targets, err := g.sel.Targets()
	if err != nil {
		return nil, kube.Where{}, err
	}
	for _, t := range targets {
		t.Config.Timeout = g.timeout
	}
	return targets, kube.Where{Namespace: g.namespace, DNSService: g.dnsSvc, GatewayLease: g.lease, CoreDNS: coredns}, nil
}

// read resolves the flags to contexts and reads each cluster.
func (g *globals) read(ctx context.Context) (model.Clusterset, error) {
	targets, where, err := g.resolve()
	if err != nil {
		return model.Clusterset{}, err
	}
	return kube.ReadAll(ctx, targets, where)
}

// probe asks each cluster read for its active gateway's answer. A
// request it could not delete is said on stderr, with the command to
// delete it; an interrupted command prints no report.
func (g *globals) probe(cmd *cobra.Command, set *model.Clusterset, opts kube.ProbeOptions) error {
	targets, where, err := g.resolve()
	if err != nil {
		return err
	}
	if err := kube.ProbeAll(cmd.Context(), targets, where, set, opts); err != nil {
		return err
	}
	for _, c := range set.Clusters {
		if p := c.Probe; p != nil && p.DeleteError != "" {
			fmt.Fprintf(cmd.ErrOrStderr(), "kubectl-wirespan: could not delete ProbeRequest %s/%s through context %s: %s\n"+
				"  delete it: kubectl --context %s -n %s delete proberequest %s\n",
				where.Namespace, p.Request, c.Context, p.DeleteError, c.Context, where.Namespace, p.Request)
		}
	}
	if err := cmd.Context().Err(); err != nil {
		return fmt.Errorf("interrupted: %w", err)
	}
	return nil
}

func completeContexts(root *cobra.Command, g *globals) {
	names := func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		n, err := g.sel.ContextNames()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		return n, cobra.ShellCompDirectiveNoFileComp
	}
	_ = root.RegisterFlagCompletionFunc("context", names)
	_ = root.RegisterFlagCompletionFunc("contexts", names)
}
