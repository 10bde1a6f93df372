package cli

import (
	"flag"
	"fmt"
	"net/http"
	"net/url"
)

func (e *env) batchRetry(fs *flag.FlagSet) func(pos []string) error {
	wf := addWaitFlags(fs, waitBatchHelp)
	return func(pos []string) error {
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
}
