package diagnose

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// Write prints results as a table, each non-PASS row followed by its
// evidence and hint (every row's with verbose), then a count by status.
func Write(out io.Writer, results []Result, verbose bool) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "RESULT\tCHECK\tCLUSTER\tSUMMARY")
	count := map[Status]int{}
	for _, r := range results {
		count[r.Status]++
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.Status, r.Check, r.Cluster, r.Summary)
		if r.Status == Pass && !verbose {
			continue
		}
		for _, e := range r.Evidence {
			fmt.Fprintf(w, "\t\t\t  %s\n", e)
		}
		if r.Hint != "" {
			fmt.Fprintf(w, "\t\t\t  hint: %s\n", r.Hint)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(out, "\n%d FAIL, %d WARN, %d SKIP, %d PASS\n", count[Fail], count[Warn], count[Skip], count[Pass])
	return err
}

// WriteJSON prints results as a JSON array.
func WriteJSON(out io.Writer, results []Result) error {
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	_, err = fmt.Fprintf(out, "%s\n", b)
	return err
}
