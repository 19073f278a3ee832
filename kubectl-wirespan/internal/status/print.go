package status

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/yaml"
)

// Formats of -o.
const (
	FormatTable = ""
	FormatWide  = "wide"
	FormatJSON  = "json"
	FormatYAML  = "yaml"
)

// Formats lists -o's values, for help and completion.
var Formats = []string{FormatWide, FormatJSON, FormatYAML}

// Write prints the report in the format -o names.
func Write(w io.Writer, r Report, format string) error {
	switch format {
	case FormatTable, FormatWide:
		return writeTable(w, r, format == FormatWide)
	case FormatJSON:
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return fmt.Errorf("encode JSON: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case FormatYAML:
		b, err := yaml.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode YAML: %w", err)
		}
		_, err = w.Write(b)
		return err
	}
	return fmt.Errorf("unknown output format %q (want one of %s)", format, strings.Join(Formats, ", "))
}

func writeTable(out io.Writer, r Report, wide bool) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for i, c := range r.Clusters {
		if i > 0 {
			fmt.Fprintln(w)
		}
		name := c.Cluster
		if name == "" {
			name = "? (no ClusterPeer has role Self: is the operator running and the self ClusterPeer applied?)"
		}
		fmt.Fprintf(w, "Context %s, cluster %s: %d exports, %d imports, %d conflicts\n", c.Context, name, c.Exports, c.Imports, c.Conflicts)
		if wide && c.Versions != nil {
			fmt.Fprintf(w, "  versions: operator %s, gateway %s %s\n", dash(c.Versions.Operator), dash(c.Versions.GatewayNode), dash(c.Versions.Gateway))
		}
		for _, what := range sortedKeys(c.Errors) {
			fmt.Fprintf(w, "  cannot read %s: %s\n", what, c.Errors[what])
		}
		header := "PEER\tROLE\tREADY\tCONNECTED\tGATEWAY\tENDPOINT\tHANDSHAKE\tRX\tTX\tLATENCY\tREFUSED\tREASON"
		if wide {
			header += "\tROUTED\tMESSAGE"
		}
		fmt.Fprintln(w, header)
		for _, p := range c.Peers {
			fmt.Fprintln(w, peerRow(p, wide))
		}
		if wide {
			for _, p := range c.Peers {
				for _, rf := range p.Refused {
					fmt.Fprintf(w, "  %s refuses %s of %s: %s (%s)\n", name, rf.Range, p.Name, rf.Reason, rf.Detail)
				}
			}
		}
	}
	return w.Flush()
}

func peerRow(p Peer, wide bool) string {
	cells := []string{p.Name, p.Role, p.Ready, dash(p.Connected), dash(p.ActiveGateway), dash(p.Endpoint),
		"-", byteCount(p.RxBytes), byteCount(p.TxBytes), "-", "-", dash(p.Reason)}
	if p.HandshakeAge != nil {
		cells[6] = duration.HumanDuration(p.HandshakeAge.Duration)
	}
	if p.Latency != nil {
		cells[9] = p.Latency.Duration.String()
	}
	if len(p.Refused) > 0 {
		ranges := make([]string, 0, len(p.Refused))
		for _, rf := range p.Refused {
			ranges = append(ranges, rf.Range+"("+rf.Reason+")")
		}
		cells[10] = strings.Join(ranges, ",")
	}
	if wide {
		cells = append(cells, join(p.Routed), dash(oneLine(p.Message)))
	}
	return strings.Join(cells, "\t")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a condition message on its row.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// byteCount prints a byte count in binary units, as `wg show` does.
func byteCount(n int64) string {
	if n == 0 {
		return "-"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
