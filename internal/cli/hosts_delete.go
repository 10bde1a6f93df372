package cli

import (
	"flag"
	"fmt"
)

func (e *env) hostsDelete(fs *flag.FlagSet) func(pos []string) error {
	forget := fs.Bool("forget", false, "also forget the ledger's objects on the host: they stay on the host, unmanaged (no rollback, no reconcile)")
	return func(pos []string) error {
		if len(pos) != 1 {
			return usagef("hosts delete takes one host ID or name")
		}
		if err := e.finish(); err != nil {
			return err
		}
		id, err := e.client.ResolveHost(e.ctx, pos[0])
		if err != nil {
			return err
		}
		var out struct {
			Message string `json:"message"`
		}
		raw, err := e.client.DeleteHost(e.ctx, id, *forget, &out)
		if err != nil {
			return err
		}
		if e.json() {
			return e.printJSON(raw)
		}
		fmt.Fprintln(e.stdout, out.Message)
		return nil
	}
}
