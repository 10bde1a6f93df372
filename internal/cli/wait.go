package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/apiclient"
)

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
	p := &progress{w: e.stderr, tty: e.tty(), start: time.Now()}
	var b batchView
	_, err := e.client.WaitBatch(e.ctx, id, interval, timeout, func(_ apiclient.BatchState, raw json.RawMessage) {
		b = batchView{}
		if json.Unmarshal(raw, &b) == nil {
			p.update(b)
		}
	})
	p.end()
	switch {
	case errors.Is(err, apiclient.ErrTimeout):
		return b, fmt.Errorf("batch %s is still %s after %s; it keeps running: crmctl batch show %s", id, b.Status, timeout, id)
	case err != nil && e.ctx.Err() != nil:
		return b, fmt.Errorf("stopped waiting (%w); batch %s keeps running: crmctl batch show %s", e.ctx.Err(), id, id)
	}
	return b, err
}

// report prints the batch's final table (or JSON) and signals failed items.
func (e *env) report(b batchView) error {
	items, rawItems, err := listItemsRaw(e.ctx, e.client, b.ID)
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
func listItemsRaw(ctx context.Context, c *apiclient.Client, batchID string) ([]itemView, []json.RawMessage, error) {
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

// poll calls check every --interval until it reports done, --timeout passes or ctx ends
// (apiclient.Poll), and says what keeps running when it stops waiting.
func (e *env) poll(wf waitFlags, what string, check func() (bool, error)) error {
	err := apiclient.Poll(e.ctx, *wf.interval, *wf.timeout, func(context.Context) (bool, error) { return check() })
	switch {
	case errors.Is(err, apiclient.ErrTimeout):
		return fmt.Errorf("%s has not finished after %s; it keeps running", what, *wf.timeout)
	case err != nil && e.ctx.Err() != nil && errors.Is(err, e.ctx.Err()):
		return fmt.Errorf("stopped waiting for %s (%w); it keeps running", what, e.ctx.Err())
	}
	return err
}
