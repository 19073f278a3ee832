package cli

import "github.com/spf13/cobra"

func newGraph(*globals) *cobra.Command    { return &cobra.Command{Use: "graph"} }
func newDiagnose(*globals) *cobra.Command { return &cobra.Command{Use: "diagnose"} }
