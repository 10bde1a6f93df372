package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// itemOrder is the order in which states are listed in progress and counts.
var itemOrder = []string{"submitted", "probing", "importing", "confirming", "closing_access", "verifying",
	"ready", "ready_with_warnings", "failed", "skipped", "cancelled", "rolled_back"}

var terminal = map[string]bool{"ready": true, "ready_with_warnings": true, "failed": true, "skipped": true, "cancelled": true, "rolled_back": true}

func countsText(counts map[string]int, total int) string {
	var parts []string
	seen := map[string]bool{}
	for _, st := range itemOrder {
		if counts[st] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", st, counts[st]))
		}
		seen[st] = true
	}
	for st, n := range counts { // states this CLI does not know yet
		if !seen[st] && n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", st, n))
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("(%d items)", total)
	}
	return strings.Join(parts, " ")
}

func doneCount(counts map[string]int) int {
	n := 0
	for st, c := range counts {
		if terminal[st] {
			n += c
		}
	}
	return n
}

// corrText describes model corrections like the demo does.
func corrText(cs []correction) string {
	var corr, chosen []string
	for _, c := range cs {
		switch {
		case c.Method == "default":
			chosen = append(chosen, c.Resolved)
		case c.Note != "":
			corr = append(corr, fmt.Sprintf("%q→%s (%s: %s)", c.Requested, c.Resolved, c.Method, c.Note))
		case c.Requested != c.Resolved || c.Method != "exact":
			corr = append(corr, fmt.Sprintf("%q→%s (%s)", c.Requested, c.Resolved, c.Method))
		}
	}
	if len(chosen) > 0 {
		corr = append(corr, "chosen: "+strings.Join(chosen, ", "))
	}
	return strings.Join(corr, ", ")
}

func itemProvider(it itemView) string {
	if it.Provider != "" && it.Suggested != "" {
		return it.Provider + " (key looks like " + it.Suggested + ")"
	}
	if it.Provider != "" {
		return it.Provider
	}
	if it.ProviderHint != "" {
		return it.ProviderHint + "?"
	}
	return "-"
}

// itemsTable prints the items; withID adds the item number and ID (for batch show).
func itemsTable(w io.Writer, items []itemView, withID bool) error {
	tw := newTable(w)
	if withID {
		fmt.Fprint(tw, "#\tID\t")
	}
	fmt.Fprintln(tw, "ITEM\tPROVIDER\tSTATE\tFAILURE\tATTEMPTS\tMODEL CORRECTIONS")
	for _, it := range items {
		if withID {
			fmt.Fprintf(tw, "%d\t%s\t", it.Index+1, it.ID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", oneLine(it.Name), itemProvider(it), dash(it.Status), dash(it.FailureClass), it.Attempts, corrText(it.Corrections))
	}
	return tw.Flush()
}

// oneLine keeps table cells on one line and tab-free.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// printGeneric prints an answer whose exact shape the CLI does not know: a "batch" object
// as a summary line, scalars as "key: value", arrays of objects as tables.
func printGeneric(w io.Writer, raw json.RawMessage) error {
	var top map[string]any
	if err := json.Unmarshal(raw, &top); err != nil {
		var v any
		if json.Unmarshal(raw, &v) == nil {
			fmt.Fprintln(w, scalarText(v))
			return nil
		}
		_, err := fmt.Fprintln(w, strings.TrimSpace(string(raw)))
		return err
	}
	if bm, ok := top["batch"].(map[string]any); ok {
		var b batchView
		bb, _ := json.Marshal(bm)
		if json.Unmarshal(bb, &b) == nil && b.ID != "" {
			fmt.Fprintf(w, "status: %s  %s\n", b.Status, countsText(b.Counts, b.ItemCount))
		}
	}
	keys := sortedKeys(top)
	tw := newTable(w)
	var tables []string
	for _, k := range keys {
		switch v := top[k].(type) {
		case map[string]any:
			if k == "batch" {
				continue
			}
			b, _ := json.Marshal(v)
			fmt.Fprintf(tw, "%s:\t%s\n", k, b)
		case []any:
			if len(v) > 0 {
				if _, obj := v[0].(map[string]any); obj {
					tables = append(tables, k)
					continue
				}
			}
			var parts []string
			for _, x := range v {
				parts = append(parts, scalarText(x))
			}
			fmt.Fprintf(tw, "%s:\t%s\n", k, oneLine(strings.Join(parts, ", ")))
		default:
			fmt.Fprintf(tw, "%s:\t%s\n", k, oneLine(scalarText(v)))
		}
	}
	tw.Flush()
	for _, k := range tables {
		rows := top[k].([]any)
		fmt.Fprintf(w, "\n%s (%d):\n", k, len(rows))
		genericTable(w, rows)
	}
	return nil
}

// preferred column order for generic tables.
var preferredCols = []string{"kind", "resource_type", "type", "name", "state", "status", "host_resource_id", "item_id", "detail", "message", "error"}

func genericTable(w io.Writer, rows []any) {
	present := map[string]bool{}
	for _, r := range rows {
		if m, ok := r.(map[string]any); ok {
			for k, v := range m {
				switch v.(type) {
				case map[string]any, []any:
				default:
					present[k] = true
				}
			}
		}
	}
	var cols []string
	for _, c := range preferredCols {
		if present[c] {
			cols = append(cols, c)
			delete(present, c)
		}
	}
	cols = append(cols, sortedKeys(present)...)
	tw := newTable(w)
	fmt.Fprintln(tw, strings.ToUpper(strings.ReplaceAll(strings.Join(cols, "\t"), "_", " ")))
	for _, r := range rows {
		m, _ := r.(map[string]any)
		cells := make([]string, len(cols))
		for i, c := range cols {
			cells[i] = oneLine(scalarText(m[c]))
			if cells[i] == "" {
				cells[i] = "-"
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
}

func scalarText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// failureText is "class: message" without repeating a class the message already starts with.
func failureText(class, msg string) string {
	msg = oneLine(msg)
	if class == "" || strings.HasPrefix(msg, class) {
		return msg
	}
	if msg == "" {
		return class
	}
	return class + ": " + msg
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// groupsText is "deepseek: create, 3 accounts (3 ready); kimi: reuse, …" for one batch.
func groupsText(gs []groupView) string {
	var parts []string
	for _, g := range gs {
		verb := map[string]string{"create": "created", "reuse": "reused", "existing": "existing group"}[g.Action]
		if g.Planned {
			verb = map[string]string{"create": "would be created", "reuse": "would be reused", "existing": "existing group"}[g.Action]
		}
		if verb == "" {
			verb = g.Action
		}
		parts = append(parts, fmt.Sprintf("%s (%s, %d account(s), %d ready)", g.Name, verb, g.Items, g.Ready))
	}
	return strings.Join(parts, "; ")
}

// table is a tabwriter whose lines lose their trailing padding.
type table struct {
	*tabwriter.Writer
	buf bytes.Buffer
	out io.Writer
}

func newTable(w io.Writer) *table {
	t := &table{out: w}
	t.Writer = tabwriter.NewWriter(&t.buf, 2, 4, 2, ' ', 0)
	return t
}

// Flush writes the aligned lines to the output.
func (t *table) Flush() error {
	if err := t.Writer.Flush(); err != nil {
		return err
	}
	lines := strings.SplitAfter(t.buf.String(), "\n")
	t.buf.Reset()
	var b strings.Builder
	for _, l := range lines {
		nl := strings.HasSuffix(l, "\n")
		b.WriteString(strings.TrimRight(l, " \n"))
		if nl {
			b.WriteByte('\n')
		}
	}
	_, err := io.WriteString(t.out, b.String())
	return err
}
