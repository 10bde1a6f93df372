package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/apiclient"
)

func (e *env) batchShow(fs *flag.FlagSet) func(pos []string) error {
	item := fs.String("item", "", "show one item (its ID, its # in the table, or its name) with its attempts timeline")
	evidence := fs.Bool("evidence", false, "with --item: show the HTTP evidence previews of each attempt")
	return func(pos []string) error {
		id, err := e.oneID("batch show", pos)
		if err != nil {
			return err
		}
		if *item != "" {
			return e.showItem(id, *item, *evidence)
		}
		b, rawBatch, err := getBatch(e.ctx, e.client, id)
		if err != nil {
			return err
		}
		items, rawItems, err := listItemsRaw(e.ctx, e.client, id)
		if err != nil {
			return err
		}
		if e.json() {
			return e.printValue(map[string]any{"batch": rawBatch, "items": rawItems})
		}
		tw := newTable(e.stdout)
		kv := func(k, v string) {
			if v != "" {
				fmt.Fprintf(tw, "%s:\t%s\n", k, v)
			}
		}
		kv("batch", b.ID)
		kv("name", b.Name)
		kv("host", e.hostName(b.HostID))
		mode := b.Mode
		if b.DryRun {
			mode += " (dry run)"
		}
		if b.Force {
			mode += " (force)"
		}
		kv("mode", mode)
		kv("status", b.Status)
		kv("items", fmt.Sprintf("%d/%d done  %s", doneCount(b.Counts), b.ItemCount, countsText(b.Counts, b.ItemCount)))
		if b.Options.WindowDeadlineS > 0 {
			kv("window", (time.Duration(b.Options.WindowDeadlineS * float64(time.Second))).String())
		}
		if len(b.Groups) > 0 {
			kv("groups", groupsText(b.Groups))
		}
		kv("created", fmtTime(&b.CreatedAt))
		kv("finished", fmtTime(b.FinishedAt))
		tw.Flush()
		e.printAction(b.LastAction)
		fmt.Fprintln(e.stdout)
		if err := itemsTable(e.stdout, items, true); err != nil {
			return err
		}
		for _, it := range items {
			if it.FailureMessage != "" {
				fmt.Fprintf(e.stdout, "#%d %s: %s\n", it.Index+1, oneLine(it.Name), failureText(it.FailureClass, it.FailureMessage))
			}
		}
		return nil
	}
}

func (e *env) showItem(batchID, ref string, evidence bool) error {
	path := func(itemID string) string {
		return "/api/v1/batches/" + url.PathEscape(batchID) + "/items/" + url.PathEscape(itemID)
	}
	var detail struct {
		Item     itemView      `json:"item"`
		Attempts []attemptView `json:"attempts"`
	}
	raw, err := e.client.Do(e.ctx, http.MethodGet, path(ref), nil, nil, &detail)
	var ae *apiclient.Error
	if err != nil && errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		items, _, lerr := listItemsRaw(e.ctx, e.client, batchID)
		if lerr != nil {
			return lerr
		}
		match := ""
		n, nerr := strconv.Atoi(strings.TrimPrefix(ref, "#"))
		for _, it := range items {
			if (nerr == nil && it.Index+1 == n) || it.Name == ref {
				match = it.ID
				break
			}
		}
		if match == "" {
			return fmt.Errorf("batch %s has no item with the ID, number or name %q", batchID, ref)
		}
		raw, err = e.client.Do(e.ctx, http.MethodGet, path(match), nil, nil, &detail)
	}
	if err != nil {
		return err
	}
	if e.json() {
		return e.printJSON(raw)
	}
	it := detail.Item
	tw := newTable(e.stdout)
	kv := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, oneLine(v))
		}
	}
	kv("item", fmt.Sprintf("#%d %s", it.Index+1, oneLine(it.Name)))
	kv("id", it.ID)
	kv("provider", itemProvider(it))
	if it.DetectedBy != "" {
		kv("detected by", it.DetectedBy)
	}
	kv("base url", it.BaseURL)
	kv("openai base", it.NormalizedURL)
	if it.NormalizedURL != "" {
		kv("anthropic base", dash(it.AnthropicBase))
	}
	kv("key", it.KeyMasked)
	kv("state", it.Status)
	if it.FailureClass != "" {
		kv("failure", failureText(it.FailureClass, it.FailureMessage))
	}
	kv("requested models", strings.Join(it.RequestedModels, ", "))
	kv("models", strings.Join(it.Models, ", "))
	kv("corrections", corrText(it.Corrections))
	kv("smoke model", it.SmokeModel)
	kv("capability", capabilityText(it.Capability))
	kv("account", it.AccountStatus)
	kv("access", it.AccessStatus)
	kv("smoke preview", it.SmokePreview)
	kv("duplicate of", it.DuplicateOf)
	if !terminal[it.Status] {
		kv("step", it.Step)
		kv("next run", fmtTime(it.NextRunAt))
		kv("window deadline", fmtTime(it.WindowDeadline))
	}
	for i, w := range it.Warnings {
		k := ""
		if i == 0 {
			k = "warnings:"
		}
		fmt.Fprintf(tw, "%s\t%s\n", k, oneLine(w))
	}
	tw.Flush()
	fmt.Fprintf(e.stdout, "\nattempts (%d):\n", len(detail.Attempts))
	tw = newTable(e.stdout)
	fmt.Fprintln(tw, "TIME\tSTEP\tSEQ\t#\tOUTCOME\tCLASS\tTOOK\tMESSAGE")
	for _, a := range detail.Attempts {
		took := ""
		if !a.FinishedAt.IsZero() && !a.StartedAt.IsZero() {
			took = a.FinishedAt.Sub(a.StartedAt).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", a.StartedAt.Local().Format("15:04:05.000"), a.Step, a.Seq, a.Number, a.Outcome,
			dash(a.FailureClass), took, oneLine(a.Message))
		for _, x := range a.Evidence {
			res := strconv.Itoa(x.Status)
			if x.Error != "" {
				res = "error: " + oneLine(x.Error)
			}
			fmt.Fprintf(tw, "\t\t\t\t↳ %s\t\t%dms\t%s %s → %s\n", x.Target, x.LatencyMS, x.Method, x.Path, res)
			if evidence && x.Preview != "" {
				fmt.Fprintf(tw, "\t\t\t\t\t\t\t  %s\n", oneLine(x.Preview))
			}
		}
	}
	return tw.Flush()
}

func capabilityText(c map[string]any) string {
	if len(c) == 0 {
		return ""
	}
	b, _ := json.Marshal(c)
	return string(b)
}
