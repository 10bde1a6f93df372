package cli

import (
	"flag"
	"fmt"

	"github.com/cn-relay-manager/cn-relay-manager/internal/apiclient"
)

// hostChangeFlags defines the flags of the settings hosts update and hosts test take; no
// flag reads the environment, so nothing changes or is tested unless asked for.
func hostChangeFlags(fs *flag.FlagSet) func(e *env) (apiclient.HostChange, error) {
	name := fs.String("name", "", "new host name")
	adminURL := fs.String("admin-url", "", "new sub2api admin base URL")
	publicURL := fs.String("public-url", "", "new URL end users call")
	adminKey := secretFlag(fs, "admin-key", "", "new admin API key (rotation); \"-\" reads it from stdin")
	email := fs.String("admin-email", "", "admin e-mail, to switch to a password login (with --admin-password)")
	password := secretFlag(fs, "admin-password", "", "new admin password; \"-\" reads it from stdin")
	return func(e *env) (apiclient.HostChange, error) {
		ch := apiclient.HostChange{Name: *name, AdminURL: *adminURL, PublicURL: *publicURL, AdminEmail: *email}
		if *adminKey != "" && (*email != "" || *password != "") {
			return ch, usagef("give either --admin-key or --admin-email/--admin-password, not both")
		}
		if *adminKey == "-" && *password == "-" {
			return ch, usagef("only one secret can be read from stdin")
		}
		var err error
		if *adminKey != "" {
			if ch.AdminAPIKey, err = e.secretArg(*adminKey, "admin key"); err != nil {
				return ch, err
			}
		}
		if *password != "" {
			if ch.AdminPassword, err = e.secretArg(*password, "admin password"); err != nil {
				return ch, err
			}
		}
		return ch, nil
	}
}

func (e *env) hostsUpdate(fs *flag.FlagSet) func(pos []string) error {
	change := hostChangeFlags(fs)
	return func(pos []string) error {
		if len(pos) != 1 {
			return usagef("hosts update takes one host ID or name")
		}
		if err := e.finish(); err != nil {
			return err
		}
		ch, err := change(e)
		if err != nil {
			return err
		}
		if ch == (apiclient.HostChange{}) {
			return usagef("nothing to change: give --name, --admin-url, --public-url, --admin-key or --admin-email/--admin-password")
		}
		id, err := e.client.ResolveHost(e.ctx, pos[0])
		if err != nil {
			return err
		}
		var h hostView
		raw, err := e.client.UpdateHost(e.ctx, id, ch, &h)
		if err != nil {
			return err
		}
		if e.json() {
			return e.printJSON(raw)
		}
		fmt.Fprintf(e.stdout, "updated host %s (%s)\n", h.Name, h.ID)
		e.printHost(h)
		return nil
	}
}
