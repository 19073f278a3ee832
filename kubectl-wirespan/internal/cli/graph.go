package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"

	"github.com/spf13/cobra"

	"github.com/wirespan/wirespan/kubectl-wirespan/internal/graph"
)

func newGraph(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "graph",
		Short: "The clusterset as a Graphviz graph (DOT, or SVG with dot installed)",
		Long: `graph draws the clusterset: a box per cluster with its ranges and gateways,
an edge per pair of clusters between their active gateways with the tunnel's
state, latency and last handshake as each side reports it, and every refused
claim as a red note in the cluster that made it.

An edge is green when every side read says Connected, orange when only some
do, red and dashed when none does. Read several contexts to see both sides of
each tunnel.`,
		Example: `  kubectl wirespan graph --all-contexts > clusterset.dot
  kubectl wirespan graph --contexts east,west -o svg > clusterset.svg
  kubectl wirespan graph | dot -Tpng > clusterset.png`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "dot" && output != "svg" {
				return fmt.Errorf("unknown output format %q (want dot or svg)", output)
			}
			set, err := g.read(cmd.Context())
			if err != nil {
				return err
			}
			text := graph.DOT(set)
			if output == "dot" {
				_, err := fmt.Fprint(cmd.OutOrStdout(), text)
				return err
			}
			return svg(cmd, text)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "dot", "output format: dot, or svg (runs Graphviz's dot, which must be on PATH)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"dot", "svg"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func svg(cmd *cobra.Command, text string) error {
	bin, err := exec.LookPath("dot")
	if errors.Is(err, exec.ErrNotFound) {
		return errors.New("-o svg needs Graphviz's dot on PATH (Debian: apt-get install graphviz); -o dot prints the graph without it")
	}
	if err != nil {
		return fmt.Errorf("find dot: %w", err)
	}
	var stderr bytes.Buffer
	run := exec.CommandContext(cmd.Context(), bin, "-Tsvg")
	run.Stdin, run.Stdout, run.Stderr = bytes.NewBufferString(text), cmd.OutOrStdout(), &stderr
	if err := run.Run(); err != nil {
		return fmt.Errorf("dot -Tsvg: %w: %s", err, stderr.String())
	}
	return nil
}
