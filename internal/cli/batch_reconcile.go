package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
)

// batchReconcile compares the batch's ledger with the host (the API queues a run).
func (e *env) batchReconcile(fs *flag.FlagSet) func(pos []string) error {
	return e.batchAction(fs, "reconcile")
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
