package cli

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wirespan/wirespan/kubectl-wirespan/internal/diagnose"
	"github.com/wirespan/wirespan/kubectl-wirespan/internal/kube"
)

func newDiagnose(g *globals) *cobra.Command {
	var (
		output  string
		checks  []string
		verbose bool
		zone    string
		probe   bool
		timeout time.Duration
	)
	var list strings.Builder
	for _, c := range diagnose.Checks {
		fmt.Fprintf(&list, "  %-17s %s\n", c.Name, c.Doc)
	}
	cmd := &cobra.Command{
		Use:   "diagnose",
		Short: "Run named checks; exit 1 if any fails",
		Long: `diagnose runs named checks on every cluster read and prints, for each, PASS,
WARN, FAIL or SKIP with the evidence and what to do. It exits with status 1
when a check fails (2 when it cannot run), so CI and runbooks can use it.

Read every cluster of the clusterset (--contexts, --all-contexts): some checks
compare clusters (git-drift, versions, exports-imported, key-matches for a
peer's key). A check whose cause is another check's subject (no handshake
because a key in Git is wrong) warns and names that check instead of failing.

Some checks need a node's point of view (UDP to each peer's endpoint, path
MTU, reverse-path filter, gossip members, DNS answers): diagnose creates a
ProbeRequest in --namespace of each cluster, waits for the active gateway's
answer (--probe-timeout) and deletes it. That needs create, get and delete on
proberequests.wirespan.io there; --probe=false only reads, and those checks
then skip.

Checks:
` + list.String(),
		Example: `  kubectl wirespan diagnose --all-contexts
  kubectl wirespan diagnose --contexts east,west --check key-matches,handshake -v
  kubectl wirespan diagnose --probe=false    # read only: the node's checks skip
  kubectl wirespan diagnose -o json | jq '.[] | select(.status == "FAIL")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, c := range checks {
				if !slices.Contains(diagnose.Names(), c) {
					return fmt.Errorf("--check: unknown check %q (known: %s)", c, strings.Join(diagnose.Names(), ", "))
				}
			}
			if output != "" && output != "json" {
				return fmt.Errorf("unknown output format %q (want json, or nothing for a table)", output)
			}
			set, err := g.read(cmd.Context())
			if err != nil {
				return err
			}
			if probe && diagnose.NeedsProbe(checks) {
				if err := g.probe(cmd, &set, kube.ProbeOptions{Zone: zone, Timeout: timeout}); err != nil {
					return err
				}
			}
			results := diagnose.Run(set, diagnose.Options{Zone: zone}, checks)
			if output == "json" {
				err = diagnose.WriteJSON(cmd.OutOrStdout(), results)
			} else {
				err = diagnose.Write(cmd.OutOrStdout(), results, verbose)
			}
			if err != nil {
				return err
			}
			if diagnose.Worst(results) == diagnose.Fail {
				return errFailed
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&output, "output", "o", "", "output format: json (default: a table)")
	f.StringSliceVar(&checks, "check", nil, "run only these checks, comma-separated (default: all)")
	f.BoolVarP(&verbose, "verbose", "v", false, "show the evidence of passing checks too")
	f.StringVar(&zone, "zone", "clusterset.local", "the clusterset DNS zone (the gateways' --dns-zone)")
	f.BoolVar(&probe, "probe", true, "ask each cluster's active gateway to probe from its node (creates and deletes a ProbeRequest in --namespace); --probe=false only reads")
	f.DurationVar(&timeout, "probe-timeout", kube.DefaultProbeTimeout, "how long to wait for each cluster's gateway to answer the ProbeRequest")
	_ = cmd.RegisterFlagCompletionFunc("check", cobra.FixedCompletions(diagnose.Names(), cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}
