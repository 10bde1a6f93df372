package cli

import (
	"flag"
	"fmt"
	"strings"
	"time"
)

// checkView is what crmctl shows of one check of an account.
type checkView struct {
	ID              string     `json:"id"`
	RunID           string     `json:"run_id"`
	Status          string     `json:"status"`
	Class           string     `json:"class"`
	Reason          string     `json:"reason"`
	Direct          string     `json:"direct"`
	BalanceAmount   *float64   `json:"balance_amount"`
	BalanceCurrency string     `json:"balance_currency"`
	BalanceLow      bool       `json:"balance_low"`
	BalanceSource   string     `json:"balance_source"`
	Action          string     `json:"action"`
	UndoState       string     `json:"undo_state"`
	CheckedAt       *time.Time `json:"checked_at"`
	ActionDetail    struct {
		Calls  []string `json:"calls"`
		Proven *bool    `json:"proven"`
		Detail string   `json:"detail"`
		Undo   string   `json:"undo"`
	} `json:"action_detail"`
	HostView struct {
		Present     bool   `json:"present"`
		Status      string `json:"status"`
		Schedulable bool   `json:"schedulable"`
	} `json:"host_view"`
}

func (c checkView) actionText() string {
	if c.Action == "" {
		return "-"
	}
	s := c.Action
	if len(c.ActionDetail.Calls) > 0 {
		s += " (" + strings.Join(c.ActionDetail.Calls, ", ") + ")"
	}
	if c.ActionDetail.Proven != nil && *c.ActionDetail.Proven {
		s += " proven"
	}
	if c.UndoState != "" {
		s += " undo:" + c.UndoState
	} else if c.ActionDetail.Undo != "" {
		s += " [undoable]"
	}
	return s
}

func (c checkView) hostText() string {
	if !c.HostView.Present {
		return "gone"
	}
	s := c.HostView.Status
	if !c.HostView.Schedulable {
		s += ",unschedulable"
	}
	return s
}

func (e *env) accountsHistory(fs *flag.FlagSet) func(pos []string) error {
	limit := fs.Int("limit", 30, "show the newest this many checks (1-500)")
	return func(pos []string) error {
		if len(pos) != 1 {
			return usagef("accounts history takes one account: its item ID (see crmctl accounts list)")
		}
		if err := e.finish(); err != nil {
			return err
		}
		var resp struct {
			Account accountView `json:"account"`
			Items   []checkView `json:"items"`
		}
		raw, err := e.client.AccountChecks(e.ctx, pos[0], *limit, &resp)
		if err != nil {
			return err
		}
		if e.json() {
			return e.printJSON(raw)
		}
		a := resp.Account
		fmt.Fprintf(e.stdout, "%s  %s  %s since %s  %s\n", oneLine(a.AccountName), dash(a.Provider), a.Status, fmtTime(&a.Since), sparkline(a.Recent))
		if a.Class != "" || a.Reason != "" {
			fmt.Fprintf(e.stdout, "  %s: %s\n", dash(a.Class), oneLine(a.Reason))
		}
		fmt.Fprintf(e.stdout, "  balance %s", balanceText(a.BalanceAmount, a.BalanceCurrency, a.BalanceLow))
		if a.BalanceAt != nil {
			fmt.Fprintf(e.stdout, " read %s", fmtTime(a.BalanceAt))
		}
		fmt.Fprintln(e.stdout)
		if m := accountMarks(a); m != "" {
			fmt.Fprintf(e.stdout, "  marks: %s\n", m)
		}
		tw := newTable(e.stdout)
		fmt.Fprintln(tw, "CHECKED\tHEALTH\tCLASS\tDIRECT\tHOST\tBALANCE\tACTION\tCHECK ID\tREASON")
		for _, c := range resp.Items {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", fmtTime(c.CheckedAt), c.Status, dash(c.Class), dash(c.Direct), c.hostText(),
				balanceText(c.BalanceAmount, c.BalanceCurrency, c.BalanceLow), c.actionText(), c.ID, truncateCell(oneLine(c.Reason), 100))
		}
		return tw.Flush()
	}
}
