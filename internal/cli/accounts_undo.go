package cli

import (
	"flag"
	"fmt"
)

func (e *env) accountsUndo(fs *flag.FlagSet) func(pos []string) error {
	wf := addWaitFlags(fs, "follow the undo until the worker made it, then print its outcome")
	return func(pos []string) error {
		if len(pos) != 1 {
			return usagef("accounts undo takes one check ID (see crmctl accounts history)")
		}
		if err := e.finish(); err != nil {
			return err
		}
		var item struct {
			ItemID string `json:"item_id"`
		}
		raw, err := e.client.UndoCheck(e.ctx, pos[0], &item)
		if err != nil {
			return err
		}
		if !*wf.wait {
			if e.json() {
				return e.printJSON(raw)
			}
			fmt.Fprintf(e.stdout, "undo of check %s queued; follow it with: crmctl accounts history %s\n", pos[0], item.ItemID)
			return nil
		}
		var c checkView
		err = e.poll(wf, "the undo of check "+pos[0], func() (bool, error) {
			var resp struct {
				Items []checkView `json:"items"`
			}
			if _, err := e.client.AccountChecks(e.ctx, item.ItemID, 500, &resp); err != nil {
				return false, err
			}
			for _, x := range resp.Items {
				if x.ID == pos[0] {
					c = x
					return x.UndoState != "queued", nil
				}
			}
			return false, fmt.Errorf("check %s is not in the history of item %s", pos[0], item.ItemID)
		})
		if err != nil {
			return err
		}
		if e.json() {
			return e.printValue(c)
		}
		fmt.Fprintf(e.stdout, "undo of check %s: %s\n", c.ID, c.UndoState)
		if c.UndoState != "done" {
			return fmt.Errorf("the undo of check %s %s", c.ID, c.UndoState)
		}
		return nil
	}
}
