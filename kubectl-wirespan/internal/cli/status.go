package cli

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/wirespan/wirespan/kubectl-wirespan/internal/status"
)

func newStatus(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Every peer, its tunnel and ranges, as each cluster sees it",
		Long: `status prints, for each context, every ClusterPeer with its role, readiness,
active gateway, endpoint, last handshake, bytes each way, latency, the ranges
refused with their reason, and the counts of ServiceExports, ServiceImports
and export conflicts.

The refused ranges are decided by the same function the operator uses, from
what the API shows; a range only a gateway refuses (its node network, say)
appears in the REASON and MESSAGE of the Connected condition.`,
		Example: `  # the current context
  kubectl wirespan status
  # three clusters, with routed ranges and condition messages
  kubectl wirespan status --contexts east,west,north -o wide
  # for scripts
  kubectl wirespan status --all-contexts -o json | jq '.clusters[].peers[] | select(.ready != "True")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			set, err := g.read(cmd.Context())
			if err != nil {
				return err
			}
			return status.Write(cmd.OutOrStdout(), status.Build(set), output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: "+strings.Join(status.Formats, ", ")+" (default: a table)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(status.Formats, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}
