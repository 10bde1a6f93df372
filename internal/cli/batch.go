package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// windowRequest is the API's window object.
type windowRequest struct {
	DeadlineS float64   `json:"deadline_s,omitempty"`
	ScheduleS []float64 `json:"schedule_s,omitempty"`
}

// targetGroupRequest is the API's target_group object.
type targetGroupRequest struct {
	Mode   string `json:"mode"`
	Name   string `json:"name,omitempty"`
	ID     int64  `json:"id,omitempty"`
	Prefix string `json:"prefix,omitempty"`
}

// accountRequest is the API's account object.
type accountRequest struct {
	Priority    *int `json:"priority,omitempty"`
	Concurrency *int `json:"concurrency,omitempty"`
	Weight      *int `json:"weight,omitempty"`
}

type submitRequest struct {
	HostID      string              `json:"host_id"`
	Name        string              `json:"name,omitempty"`
	Mode        string              `json:"mode"`
	DryRun      bool                `json:"dry_run,omitempty"`
	Force       bool                `json:"force,omitempty"`
	Window      *windowRequest      `json:"window,omitempty"`
	TargetGroup *targetGroupRequest `json:"target_group,omitempty"`
	Account     *accountRequest     `json:"account,omitempty"`
	Items       []Item              `json:"items"`
}

// waitFlags are the flags of the commands that can follow a batch to its end.
type waitFlags struct {
	wait     *bool
	interval *time.Duration
	timeout  *time.Duration
}

func addWaitFlags(fs interface {
	Bool(string, bool, string) *bool
	Duration(string, time.Duration, string) *time.Duration
}, help string) waitFlags {
	return waitFlags{
		wait:     fs.Bool("wait", false, help),
		interval: fs.Duration("interval", time.Second, "with --wait: how often to poll the API"),
		timeout:  fs.Duration("timeout", 0, "with --wait: stop waiting after this long (0 = no limit; the work keeps running)"),
	}
}

const waitBatchHelp = "follow the batch until every item is final, then print the table"

func (e *env) batchSubmit(args []string) error {
	fs := e.newFlagSet("batch submit", "batch submit --host ID|NAME [flags] [FILE|-]")
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
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	tg, err := parseTargetGroup(*target, *prefix)
	if err != nil {
		return err
	}
	var acct *accountRequest
	if *priority >= 0 || *concurrency >= 0 || *weight > 0 {
		acct = &accountRequest{}
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
	var win *windowRequest
	if *window > 0 {
		win = &windowRequest{DeadlineS: window.Seconds()}
	}
	if *schedule != "" {
		if win == nil {
			win = &windowRequest{}
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
	hostID, err := e.client.resolveHost(e.ctx, *host)
	if err != nil {
		return err
	}
	req := submitRequest{HostID: hostID, Name: *name, Mode: *mode, DryRun: *dryRun, Force: *force, Window: win,
		TargetGroup: tg, Account: acct, Items: items}
	var resp struct {
		Batch    batchView       `json:"batch"`
		Enqueued int             `json:"enqueued"`
		Items    []submittedItem `json:"items"`
	}
	raw, err := e.client.Do(e.ctx, http.MethodPost, "/api/v1/batches", nil, req, &resp)
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
	var ae *APIError
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
	return fmt.Errorf("%s: line %d: API error: %w", src, items[i].Line, err)
}

// waitAndReport follows batch id to its end with a progress bar on stderr, prints the
// final table (or JSON) and returns errItemsFailed when items failed.
func (e *env) waitAndReport(id string, wf waitFlags) error {
	b, err := e.wait(id, *wf.interval, *wf.timeout)
	if err != nil {
		return err
	}
	return e.report(b)
}

func (e *env) wait(id string, interval, timeout time.Duration) (batchView, error) {
	if interval <= 0 {
		interval = time.Second
	}
	p := &progress{w: e.stderr, tty: e.tty(), start: time.Now()}
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	for {
		b, _, err := e.client.getBatch(e.ctx, id)
		if err != nil {
			p.end()
			return b, err
		}
		p.update(b)
		if !running(b.Status) {
			p.end()
			return b, nil
		}
		select {
		case <-e.ctx.Done():
			p.end()
			return b, fmt.Errorf("stopped waiting (%w); batch %s keeps running: crmctl batch show %s", e.ctx.Err(), id, id)
		case <-deadline:
			p.end()
			return b, fmt.Errorf("batch %s is still %s after %s; it keeps running: crmctl batch show %s", id, b.Status, timeout, id)
		case <-time.After(interval):
		}
	}
}

func running(status string) bool { return status == "queued" || status == "running" || status == "" }

// report prints the batch's final table (or JSON) and signals failed items.
func (e *env) report(b batchView) error {
	items, rawItems, err := e.client.listItemsRaw(e.ctx, b.ID)
	if err != nil {
		return err
	}
	if e.json() {
		if err := e.printValue(map[string]any{"batch": b, "items": rawItems}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "batch %s: %s  %s\n", b.ID, b.Status, countsText(b.Counts, b.ItemCount))
		if len(b.Groups) > 0 {
			fmt.Fprintf(e.stdout, "groups: %s\n", groupsText(b.Groups))
		}
		if err := itemsTable(e.stdout, items, false); err != nil {
			return err
		}
	}
	if n := b.Counts["failed"]; n > 0 {
		fmt.Fprintf(e.stderr, "crmctl: %d of %d items failed (see: crmctl batch show %s; retry with: crmctl batch retry %s)\n", n, b.ItemCount, b.ID, b.ID)
		return errItemsFailed
	}
	return nil
}

// listItemsRaw returns the items decoded and as the API sent them.
func (c *Client) listItemsRaw(ctx context.Context, batchID string) ([]itemView, []json.RawMessage, error) {
	var all []json.RawMessage
	for page := 1; ; page++ {
		var p struct {
			Items []json.RawMessage `json:"items"`
			Total int               `json:"total"`
		}
		q := url.Values{"page": {strconv.Itoa(page)}, "page_size": {"1000"}}
		if _, err := c.Do(ctx, http.MethodGet, "/api/v1/batches/"+url.PathEscape(batchID)+"/items", q, nil, &p); err != nil {
			return nil, nil, err
		}
		all = append(all, p.Items...)
		if len(p.Items) == 0 || len(all) >= p.Total {
			break
		}
	}
	items := make([]itemView, len(all))
	for i, r := range all {
		if err := json.Unmarshal(r, &items[i]); err != nil {
			return nil, nil, fmt.Errorf("unexpected item in the answer: %w", err)
		}
	}
	if all == nil {
		all = []json.RawMessage{}
	}
	return items, all, nil
}

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

// progress draws the batch's progress on stderr: one updating line on a terminal,
// a new plain line whenever something changed otherwise.
type progress struct {
	w     io.Writer
	tty   bool
	start time.Time
	last  string
	drawn bool
}

const barWidth = 30

func progressBar(done, total int) string {
	if total <= 0 {
		total = 1
	}
	fill := min(done*barWidth/total, barWidth)
	return "[" + strings.Repeat("#", fill) + strings.Repeat(".", barWidth-fill) + "]"
}

func progressText(b batchView) string {
	done := doneCount(b.Counts)
	return fmt.Sprintf("%s %d/%d %s  %s", progressBar(done, b.ItemCount), done, b.ItemCount, b.Status, countsText(b.Counts, b.ItemCount))
}

func (p *progress) update(b batchView) {
	line := progressText(b)
	elapsed := time.Since(p.start).Round(time.Second)
	if p.tty {
		fmt.Fprintf(p.w, "\r\x1b[K%s  %s", line, elapsed)
		p.drawn = true
		return
	}
	if line != p.last {
		fmt.Fprintf(p.w, "%s  %s\n", line, elapsed)
		p.last = line
	}
}

func (p *progress) end() {
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
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

func (e *env) batchList(args []string) error {
	fs := e.newFlagSet("batch list", "batch list [--host ID|NAME] [--status S] [--page N] [--page-size N]")
	host := fs.String("host", "", "only batches of this host (ID or name)")
	status := fs.String("status", "", "only batches in this state (queued, running, succeeded, partially_succeeded, failed, cancelled, rolled_back)")
	page := fs.Int("page", 1, "page number")
	size := fs.Int("page-size", 50, "batches per page (1-1000)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("batch list takes no arguments")
	}
	if err := e.finish(); err != nil {
		return err
	}
	hosts, _, err := e.client.listHosts(e.ctx)
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, h := range hosts {
		names[h.ID] = h.Name
	}
	q := url.Values{"page": {strconv.Itoa(*page)}, "page_size": {strconv.Itoa(*size)}}
	if *host != "" {
		id, err := e.client.resolveHost(e.ctx, *host)
		if err != nil {
			return err
		}
		q.Set("host_id", id)
	}
	if *status != "" {
		q.Set("status", *status)
	}
	var resp struct {
		Items []batchView `json:"items"`
		Total int         `json:"total"`
	}
	raw, err := e.client.Do(e.ctx, http.MethodGet, "/api/v1/batches", q, nil, &resp)
	if err != nil {
		return err
	}
	if e.json() {
		return e.printJSON(raw)
	}
	if len(resp.Items) == 0 {
		fmt.Fprintln(e.stdout, "no batches")
		return nil
	}
	tw := newTable(e.stdout)
	fmt.Fprintln(tw, "ID\tNAME\tHOST\tMODE\tSTATUS\tDONE\tCOUNTS\tCREATED")
	for _, b := range resp.Items {
		h := names[b.HostID]
		if h == "" {
			h = b.HostID
		}
		mode := b.Mode
		if b.DryRun {
			mode += " (dry run)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", b.ID, dash(oneLine(b.Name)), h, mode, b.Status, doneCount(b.Counts), b.ItemCount,
			countsText(b.Counts, b.ItemCount), fmtTime(&b.CreatedAt))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if shown := (*page-1)*(*size) + len(resp.Items); shown < resp.Total || *page > 1 {
		fmt.Fprintf(e.stdout, "page %d: batches %d-%d of %d\n", *page, (*page-1)*(*size)+1, shown, resp.Total)
	}
	return nil
}

func (e *env) oneID(name string, pos []string) (string, error) {
	if len(pos) != 1 || strings.TrimSpace(pos[0]) == "" {
		return "", usagef("%s takes one batch ID", name)
	}
	return pos[0], e.finish()
}

func (e *env) batchShow(args []string) error {
	fs := e.newFlagSet("batch show", "batch show ID [--item ITEM] [--evidence]")
	item := fs.String("item", "", "show one item (its ID, its # in the table, or its name) with its attempts timeline")
	evidence := fs.Bool("evidence", false, "with --item: show the HTTP evidence previews of each attempt")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := e.oneID("batch show", pos)
	if err != nil {
		return err
	}
	if *item != "" {
		return e.showItem(id, *item, *evidence)
	}
	b, rawBatch, err := e.client.getBatch(e.ctx, id)
	if err != nil {
		return err
	}
	items, rawItems, err := e.client.listItemsRaw(e.ctx, id)
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
	kv("host", b.HostID)
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

func (e *env) showItem(batchID, ref string, evidence bool) error {
	path := func(itemID string) string {
		return "/api/v1/batches/" + url.PathEscape(batchID) + "/items/" + url.PathEscape(itemID)
	}
	var detail struct {
		Item     itemView      `json:"item"`
		Attempts []attemptView `json:"attempts"`
	}
	raw, err := e.client.Do(e.ctx, http.MethodGet, path(ref), nil, nil, &detail)
	var ae *APIError
	if err != nil && errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		items, _, lerr := e.client.listItemsRaw(e.ctx, batchID)
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
	kv("item", fmt.Sprintf("#%d %s", it.Index+1, it.ID))
	kv("name", it.Name)
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

func (e *env) batchRetry(args []string) error {
	fs := e.newFlagSet("batch retry", "batch retry ID [--wait]")
	wf := addWaitFlags(fs, waitBatchHelp)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := e.oneID("batch retry", pos)
	if err != nil {
		return err
	}
	var resp struct {
		Batch   batchView `json:"batch"`
		Retried int       `json:"retried"`
	}
	raw, err := e.client.Do(e.ctx, http.MethodPost, "/api/v1/batches/"+url.PathEscape(id)+"/retry", nil, struct{}{}, &resp)
	if err != nil {
		return err
	}
	msg := fmt.Sprintf("batch %s: %d failed items started again; status %s", id, resp.Retried, resp.Batch.Status)
	if *wf.wait {
		fmt.Fprintln(e.stderr, msg)
		return e.waitAndReport(id, wf)
	}
	if e.json() {
		return e.printJSON(raw)
	}
	fmt.Fprintln(e.stdout, msg)
	return nil
}

func (e *env) batchCancel(args []string) error {
	fs := e.newFlagSet("batch cancel", "batch cancel ID")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := e.oneID("batch cancel", pos)
	if err != nil {
		return err
	}
	var resp struct {
		Batch     batchView `json:"batch"`
		Cancelled int       `json:"cancelled"`
	}
	raw, err := e.client.Do(e.ctx, http.MethodPost, "/api/v1/batches/"+url.PathEscape(id)+"/cancel", nil, struct{}{}, &resp)
	if err != nil {
		return err
	}
	if e.json() {
		return e.printJSON(raw)
	}
	fmt.Fprintf(e.stdout, "batch %s: %d items cancelled; status %s  %s\n", id, resp.Cancelled, resp.Batch.Status, countsText(resp.Batch.Counts, resp.Batch.ItemCount))
	fmt.Fprintf(e.stdout, "what exists on the host is kept; see the ledger or: crmctl batch rollback %s\n", id)
	return nil
}

func (e *env) batchRollback(args []string) error {
	return e.batchAction(args, "rollback", "rollback ID [--wait]: delete what this batch created on the host")
}

func (e *env) batchReconcile(args []string) error {
	return e.batchAction(args, "reconcile", "reconcile ID [--wait]: compare the batch's ledger with the host")
}

// batchAction POSTs /batches/{id}/{action} and prints the answer; with --wait it follows
// the queued operation to its end (rollback: the batch's last_action; reconcile: the run).
func (e *env) batchAction(args []string, action, usage string) error {
	fs := e.newFlagSet("batch "+action, "batch "+usage)
	wf := addWaitFlags(fs, "follow the queued "+action+" until it finishes, then print its outcome")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := e.oneID("batch "+action, pos)
	if err != nil {
		return err
	}
	var before *time.Time
	if *wf.wait && action == "rollback" {
		b, _, err := e.client.getBatch(e.ctx, id)
		if err != nil {
			return err
		}
		before = b.LastAction.Finished
	}
	raw, err := e.client.Do(e.ctx, http.MethodPost, "/api/v1/batches/"+url.PathEscape(id)+"/"+action, nil, struct{}{}, nil)
	if err != nil {
		return err
	}
	if !*wf.wait {
		if e.json() {
			return e.printJSON(raw)
		}
		fmt.Fprintf(e.stdout, "batch %s: %s requested\n", id, action)
		return printGeneric(e.stdout, raw)
	}
	fmt.Fprintf(e.stderr, "batch %s: %s queued; waiting for it to finish\n", id, action)
	if action == "rollback" {
		return e.waitRollback(id, before, wf)
	}
	var run reconcileRunView
	if err := json.Unmarshal(raw, &run); err != nil || run.ID == "" {
		return fmt.Errorf("the reconcile answer holds no run id; follow it with: crmctl batch show %s", id)
	}
	return e.waitReconcile(run.ID, wf)
}

// poll calls check every interval until it reports done, the timeout passes or ctx ends.
func (e *env) poll(wf waitFlags, what string, check func() (bool, error)) error {
	interval := *wf.interval
	if interval <= 0 {
		interval = time.Second
	}
	var deadline <-chan time.Time
	if *wf.timeout > 0 {
		t := time.NewTimer(*wf.timeout)
		defer t.Stop()
		deadline = t.C
	}
	for {
		done, err := check()
		if err != nil || done {
			return err
		}
		select {
		case <-e.ctx.Done():
			return fmt.Errorf("stopped waiting for %s (%w); it keeps running", what, e.ctx.Err())
		case <-deadline:
			return fmt.Errorf("%s has not finished after %s; it keeps running", what, *wf.timeout)
		case <-time.After(interval):
		}
	}
}

func (e *env) waitRollback(id string, before *time.Time, wf waitFlags) error {
	var b batchView
	var raw json.RawMessage
	err := e.poll(wf, "the rollback of batch "+id, func() (bool, error) {
		var err error
		b, raw, err = e.client.getBatch(e.ctx, id)
		if err != nil {
			return false, err
		}
		f := b.LastAction.Finished
		return b.LastAction.Kind == "rollback" && f != nil && (before == nil || !f.Equal(*before)), nil
	})
	if err != nil {
		return err
	}
	if e.json() {
		if err := e.printJSON(raw); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "batch %s: %s  %s\n", b.ID, b.Status, countsText(b.Counts, b.ItemCount))
		e.printAction(b.LastAction)
	}
	if b.LastAction.Status != "completed" {
		fmt.Fprintf(e.stderr, "crmctl: rollback %s: %s\n", dash(b.LastAction.Status), oneLine(b.LastAction.Message))
		return errItemsFailed
	}
	return nil
}

func (e *env) printAction(a actionView) {
	if a.Kind == "" {
		return
	}
	fmt.Fprintf(e.stdout, "last action: %s %s (%s)  %s\n", a.Kind, dash(a.Status), fmtTime(a.Finished), oneLine(a.Message))
	if len(a.Objects) == 0 {
		return
	}
	tw := newTable(e.stdout)
	fmt.Fprintln(tw, "RESULT\tTYPE\tHOST ID\tNAME\tDETAIL")
	for _, o := range a.Objects {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.Result, o.ResourceType, dash(o.HostResourceID), oneLine(o.Name), oneLine(o.Detail))
	}
	tw.Flush()
}

func (e *env) waitReconcile(runID string, wf waitFlags) error {
	var run reconcileRunView
	var raw json.RawMessage
	shown := ""
	err := e.poll(wf, "reconcile run "+runID, func() (bool, error) {
		var err error
		run = reconcileRunView{}
		raw, err = e.client.Do(e.ctx, http.MethodGet, "/api/v1/reconcile-runs/"+url.PathEscape(runID), nil, nil, &run)
		if err == nil && run.Status == "running" {
			// Progress on stderr, a line per change, so stdout stays the result.
			if p := fmt.Sprintf("reconcile run %s: running, %d of %d objects checked", run.ID, run.ObjectsChecked, run.ObjectsTotal); p != shown {
				fmt.Fprintln(e.stderr, p)
				shown = p
			}
		}
		return err == nil && run.Status != "queued" && run.Status != "running" && run.Status != "", err
	})
	if err != nil {
		return err
	}
	if e.json() {
		if err := e.printJSON(raw); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "reconcile run %s: %s  %s\n", run.ID, run.Status, oneLine(run.Summary))
		if len(run.Findings) > 0 {
			tw := newTable(e.stdout)
			fmt.Fprintln(tw, "KIND\tTYPE\tHOST ID\tNAME\tDETAIL")
			for _, f := range run.Findings {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Kind, f.ResourceType, dash(f.HostResourceID), oneLine(f.Name), oneLine(f.Detail))
			}
			tw.Flush()
		} else {
			fmt.Fprintln(e.stdout, "no differences between the ledger and the host")
		}
	}
	if run.Status != "completed" {
		return fmt.Errorf("reconcile run %s ended %s", run.ID, run.Status)
	}
	return nil
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

// parseTargetGroup reads --target-group (per_provider, per_item, existing:NAME|ID) and
// --group-prefix into the API's target_group.
func parseTargetGroup(spec, prefix string) (*targetGroupRequest, error) {
	mode, arg, hasArg := strings.Cut(strings.TrimSpace(spec), ":")
	switch {
	case mode == "per_provider" && !hasArg:
		return &targetGroupRequest{Mode: mode, Prefix: prefix}, nil
	case mode == "per_item" && !hasArg:
		if prefix != "" {
			return nil, usagef("--group-prefix applies to --target-group per_provider only")
		}
		return &targetGroupRequest{Mode: mode}, nil
	case mode == "existing" && strings.TrimSpace(arg) != "":
		if prefix != "" {
			return nil, usagef("--group-prefix applies to --target-group per_provider only")
		}
		arg = strings.TrimSpace(arg)
		if id, err := strconv.ParseInt(arg, 10, 64); err == nil && id > 0 {
			return &targetGroupRequest{Mode: mode, ID: id}, nil
		}
		return &targetGroupRequest{Mode: mode, Name: arg}, nil
	}
	return nil, usagef("--target-group must be per_provider, per_item, or existing:NAME / existing:ID (got %q)", spec)
}
