package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// batchAction POSTs /batches/{id}/{action} and prints the answer; with --wait it follows
// the queued operation to its end (rollback: the batch's last_action; reconcile: the run).
func (e *env) batchAction(fs *flag.FlagSet, action string) func(pos []string) error {
	wf := addWaitFlags(fs, "follow the queued "+action+" until it finishes, then print its outcome")
	return func(pos []string) error {
		id, err := e.oneID("batch "+action, pos)
		if err != nil {
			return err
		}
		var before *time.Time
		if *wf.wait && action == "rollback" {
			b, _, err := getBatch(e.ctx, e.client, id)
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
}

func (e *env) oneID(name string, pos []string) (string, error) {
	if len(pos) != 1 || strings.TrimSpace(pos[0]) == "" {
		return "", usagef("%s takes one batch ID", name)
	}
	return pos[0], e.finish()
}
