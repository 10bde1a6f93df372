package cli

import (
	"flag"
	"fmt"
	"time"
)

// verifyRunView is what crmctl shows of a re-verification run.
type verifyRunView struct {
	ID              string `json:"id"`
	Status          string `json:"status"`
	Summary         string `json:"summary"`
	AccountsTotal   int    `json:"accounts_total"`
	AccountsChecked int    `json:"accounts_checked"`
	Healthy         int    `json:"healthy"`
	Degraded        int    `json:"degraded"`
	Failing         int    `json:"failing"`
	Actions         int    `json:"actions"`
}

func (e *env) accountsVerify(fs *flag.FlagSet) func(pos []string) error {
	host := fs.String("host", "", "the host (ID or name); required")
	spread := fs.Duration("spread", 0, "spread the checks over this long (0 = all now; the host and upstream caps still bound them)")
	wf := addWaitFlags(fs, "follow the run until every account is checked, then print the counts")
	return func(pos []string) error {
		if len(pos) > 0 {
			return usagef("accounts verify takes no arguments (the host is --host)")
		}
		if *host == "" {
			return usagef("accounts verify needs --host")
		}
		if *spread < 0 {
			return usagef("--spread must not be negative")
		}
		if err := e.finish(); err != nil {
			return err
		}
		hostID, err := e.client.ResolveHost(e.ctx, *host)
		if err != nil {
			return err
		}
		var run verifyRunView
		raw, err := e.client.VerifyHost(e.ctx, hostID, int(*spread/time.Second), &run)
		if err != nil {
			return err
		}
		if !*wf.wait {
			if e.json() {
				return e.printJSON(raw)
			}
			fmt.Fprintf(e.stdout, "re-verification %s started; follow it with --wait, then: crmctl accounts list --host %s\n", run.ID, *host)
			return nil
		}
		shown, id := "", run.ID
		err = e.poll(wf, "re-verification "+id, func() (bool, error) {
			var err error
			run = verifyRunView{}
			if raw, err = e.client.GetVerifyRun(e.ctx, id, &run); err != nil {
				return false, err
			}
			if p := fmt.Sprintf("re-verification %s: %s, %d of %d accounts checked", run.ID, run.Status, run.AccountsChecked, run.AccountsTotal); p != shown {
				fmt.Fprintln(e.stderr, p)
				shown = p
			}
			return run.Status != "running", nil
		})
		if err != nil {
			return err
		}
		if e.json() {
			return e.printJSON(raw)
		}
		fmt.Fprintf(e.stdout, "re-verification %s: %s  %s\n", run.ID, run.Status, oneLine(run.Summary))
		if run.Failing > 0 {
			fmt.Fprintf(e.stdout, "failing accounts: crmctl accounts list --host %s --failing\n", *host)
		}
		return nil
	}
}
