package cli

import (
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

func (e *env) batchList(fs *flag.FlagSet) func(pos []string) error {
	host := fs.String("host", "", "only batches of this host (ID or name)")
	status := fs.String("status", "", "only batches in this state (queued, running, succeeded, partially_succeeded, failed, cancelled, rolled_back)")
	page := fs.Int("page", 1, "page number")
	size := fs.Int("page-size", 50, "batches per page (1-1000)")
	return func(pos []string) error {
		if len(pos) > 0 {
			return usagef("batch list takes no arguments")
		}
		if err := e.finish(); err != nil {
			return err
		}
		hosts, _, err := listHosts(e.ctx, e.client)
		if err != nil {
			return err
		}
		names := map[string]string{}
		for _, h := range hosts {
			names[h.ID] = h.Name
		}
		q := url.Values{"page": {strconv.Itoa(*page)}, "page_size": {strconv.Itoa(*size)}}
		if *host != "" {
			id, err := e.client.ResolveHost(e.ctx, *host)
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
}
