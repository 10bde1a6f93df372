package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/apiclient"
	"github.com/cn-relay-manager/cn-relay-manager/internal/batch/request"
)

func (e *env) batchSubmit(fs *flag.FlagSet) func(pos []string) error {
	host := fs.String("host", os.Getenv("CRM_HOST"), "host ID or name to import into (env CRM_HOST)")
	mode := fs.String("mode", "self_service", "access mode: self_service, subscription or none")
	dryRun := fs.Bool("dry-run", false, "probe and plan only; create nothing on the host")
	force := fs.Bool("force", false, "accept duplicate keys and items the API would refuse as duplicates")
	window := fs.Duration("window", 0, "confirmation window length, e.g. 5m (the API's window.deadline_s; 0 = server default)")
	schedule := fs.String("window-schedule", "", "confirmation re-check delays, e.g. 2s,5s,10s (the API's window.schedule_s)")
	name := fs.String("name", "", "batch name")
	format := fs.String("format", FormatAuto, "input format: auto, csv, jsonl or lines")
	target := fs.String("target-group", "per_provider", "where the accounts go: per_provider (pooled groups named deepseek, kimi-coding, …), existing:NAME or existing:ID (the operator's group, never changed or deleted), or per_item")
	prefix := fs.String("group-prefix", "", "per_provider: prefix of the group names, e.g. crm- gives crm-deepseek")
	priority := fs.Int("priority", -1, "scheduling priority of the new accounts, lower is preferred (default 1)")
	concurrency := fs.Int("concurrency", -1, "concurrent requests per new account, 0 = unlimited (default 5)")
	weight := fs.Int("weight", 0, "the host's load_factor of the new accounts (default: the host's)")
	wf := addWaitFlags(fs, waitBatchHelp)
	return func(pos []string) error {
		tg, err := parseTargetGroup(*target, *prefix)
		if err != nil {
			return err
		}
		var acct *request.Account
		if *priority >= 0 || *concurrency >= 0 || *weight > 0 {
			acct = &request.Account{}
			if *priority >= 0 {
				acct.Priority = priority
			}
			if *concurrency >= 0 {
				acct.Concurrency = concurrency
			}
			if *weight > 0 {
				acct.Weight = weight
			}
		}
		if err := e.finish(); err != nil {
			return err
		}
		switch *mode {
		case "self_service", "subscription", "none":
		default:
			return usagef("--mode must be self_service, subscription or none, not %q", *mode)
		}
		switch *format {
		case FormatAuto, FormatCSV, FormatJSONL, FormatLines:
		default:
			return usagef("--format must be auto, csv, jsonl or lines, not %q", *format)
		}
		if *host == "" {
			return usagef("--host is required (a host ID or name; see crmctl hosts list)")
		}
		if *window < 0 || *window > 24*time.Hour || (*window > 0 && *window < time.Second) {
			return usagef("--window must be between 1s and 24h")
		}
		var win *request.Window
		if *window > 0 {
			win = &request.Window{DeadlineS: window.Seconds()}
		}
		if *schedule != "" {
			if win == nil {
				win = &request.Window{}
			}
			for _, p := range strings.Split(*schedule, ",") {
				d, err := time.ParseDuration(strings.TrimSpace(p))
				if err != nil || d < time.Second || d > time.Hour {
					return usagef("--window-schedule: each delay must be a duration between 1s and 1h (got %q)", strings.TrimSpace(p))
				}
				win.ScheduleS = append(win.ScheduleS, d.Seconds())
			}
		}
		if len(pos) > 1 {
			return usagef("batch submit reads one FILE (or - for stdin); got %d arguments", len(pos))
		}
		src, in := "stdin", e.stdin
		if len(pos) == 1 && pos[0] != "-" {
			f, err := os.Open(pos[0])
			if err != nil {
				return err
			}
			defer f.Close()
			src, in = pos[0], f
		} else if len(pos) == 0 {
			if f, ok := e.stdin.(*os.File); ok && isTerminal(f) {
				return usagef("give the items as a FILE argument or pipe them on stdin (use - to read a terminal)")
			}
		}
		items, used, err := ParseItems(in, *format)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		hostID, err := e.client.ResolveHost(e.ctx, *host)
		if err != nil {
			return err
		}
		req := request.Batch{HostID: hostID, Name: *name, Mode: *mode, DryRun: *dryRun, Force: *force, Window: win,
			TargetGroup: tg, Account: acct, Items: toBatchItems(items)}
		var resp struct {
			Batch    batchView       `json:"batch"`
			Enqueued int             `json:"enqueued"`
			Items    []submittedItem `json:"items"`
		}
		raw, err := e.client.SubmitBatch(e.ctx, req, &resp)
		if err != nil {
			return withInputLine(err, src, items)
		}
		b := resp.Batch
		note := ""
		if b.DryRun {
			note = ", dry run"
		}
		msg := fmt.Sprintf("submitted batch %s: %d items from %s (%s%s), mode %s, %d enqueued", b.ID, b.ItemCount, src, used, note, b.Mode, resp.Enqueued)
		if !*wf.wait {
			if e.json() {
				return e.printJSON(raw)
			}
			fmt.Fprintln(e.stdout, msg)
			if err := basesTable(e.stdout, resp.Items); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "follow it with: crmctl batch show %s   (or submit with --wait)\n", b.ID)
			return nil
		}
		fmt.Fprintln(e.stderr, msg)
		if err := basesTable(e.stderr, resp.Items); err != nil {
			return err
		}
		return e.waitAndReport(b.ID, wf)
	}
}

// submittedItem is the submit answer's view of one item: the provider and both bases.
type submittedItem struct {
	Index         int      `json:"index"`
	Name          string   `json:"name"`
	Provider      string   `json:"provider"`
	DetectedBy    string   `json:"detected_by"`
	Suggested     string   `json:"suggested_provider"`
	NormalizedURL string   `json:"normalized_url"`
	AnthropicBase string   `json:"anthropic_base_url"`
	Notes         []string `json:"notes"`
}

// maxBasesRows bounds the per-item table printed after a submit; batch show has them all.
const maxBasesRows = 50

// basesTable prints, per submitted item, the provider, the OpenAI-compatible base the host
// gets and the Anthropic-compatible base kept beside it, so a wrong guess shows at once.
func basesTable(w io.Writer, items []submittedItem) error {
	if len(items) == 0 {
		return nil
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "#\tITEM\tPROVIDER\tOPENAI BASE\tANTHROPIC BASE\tNOTES")
	for i, it := range items {
		if i == maxBasesRows {
			fmt.Fprintf(tw, "…\t%d more items\t\t\t\t\n", len(items)-maxBasesRows)
			break
		}
		prov := it.Provider
		if it.Suggested != "" {
			prov += " (key looks like " + it.Suggested + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", it.Index+1, oneLine(it.Name), oneLine(prov), oneLine(it.NormalizedURL),
			dash(oneLine(it.AnthropicBase)), oneLine(strings.Join(it.Notes, "; ")))
	}
	return tw.Flush()
}

var itemField = regexp.MustCompile(`^items\[(\d+)\]`)

// withInputLine adds the input line to an API error naming items[i].
func withInputLine(err error, src string, items []Item) error {
	var ae *apiclient.Error
	if !errors.As(err, &ae) {
		return err
	}
	m := itemField.FindStringSubmatch(ae.Field)
	if m == nil {
		return err
	}
	i, _ := strconv.Atoi(m[1])
	if i < 0 || i >= len(items) {
		return err
	}
	return fmt.Errorf("%s: line %d: API error: %s", src, items[i].Line, apiErrorText(ae))
}

// parseTargetGroup reads --target-group (per_provider, per_item, existing:NAME|ID) and
// --group-prefix into the API's target_group.
func parseTargetGroup(spec, prefix string) (*request.TargetGroup, error) {
	mode, arg, hasArg := strings.Cut(strings.TrimSpace(spec), ":")
	switch {
	case mode == "per_provider" && !hasArg:
		return &request.TargetGroup{Mode: mode, Prefix: prefix}, nil
	case mode == "per_item" && !hasArg:
		if prefix != "" {
			return nil, usagef("--group-prefix applies to --target-group per_provider only")
		}
		return &request.TargetGroup{Mode: mode}, nil
	case mode == "existing" && strings.TrimSpace(arg) != "":
		if prefix != "" {
			return nil, usagef("--group-prefix applies to --target-group per_provider only")
		}
		arg = strings.TrimSpace(arg)
		if id, err := strconv.ParseInt(arg, 10, 64); err == nil && id > 0 {
			return &request.TargetGroup{Mode: mode, ID: id}, nil
		}
		return &request.TargetGroup{Mode: mode, Name: arg}, nil
	}
	return nil, usagef("--target-group must be per_provider, per_item, or existing:NAME / existing:ID (got %q)", spec)
}

// toBatchItems drops the input line numbers.
func toBatchItems(items []Item) []request.Item {
	out := make([]request.Item, len(items))
	for i, it := range items {
		out[i] = request.Item{Name: it.Name, BaseURL: it.BaseURL, APIKey: it.APIKey, Provider: it.Provider, Models: it.Models}
	}
	return out
}
