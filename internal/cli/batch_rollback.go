package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"time"
)

// batchRollback deletes what the batch created on the host (the API queues it).
func (e *env) batchRollback(fs *flag.FlagSet) func(pos []string) error {
	return e.batchAction(fs, "rollback")
}

func (e *env) waitRollback(id string, before *time.Time, wf waitFlags) error {
	var b batchView
	var raw json.RawMessage
	err := e.poll(wf, "the rollback of batch "+id, func() (bool, error) {
		var err error
		b, raw, err = getBatch(e.ctx, e.client, id)
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
