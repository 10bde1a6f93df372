package cli

import (
	"flag"
	"fmt"
	"net/http"
	"net/url"
)

func (e *env) batchCancel(fs *flag.FlagSet) func(pos []string) error {
	return func(pos []string) error {
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
}
