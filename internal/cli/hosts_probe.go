package cli

import (
	"flag"
	"fmt"
	"net/http"
	"net/url"
)

func (e *env) hostsProbe(fs *flag.FlagSet) func(pos []string) error {
	return func(pos []string) error {
		if len(pos) != 1 {
			return usagef("hosts probe takes one host ID or name")
		}
		if err := e.finish(); err != nil {
			return err
		}
		id, err := e.client.ResolveHost(e.ctx, pos[0])
		if err != nil {
			return err
		}
		var h hostView
		raw, err := e.client.Do(e.ctx, http.MethodPost, "/api/v1/hosts/"+url.PathEscape(id)+"/probe", nil, nil, &h)
		if err != nil {
			return err
		}
		if e.json() {
			if err := e.printJSON(raw); err != nil {
				return err
			}
		} else {
			e.printHost(h)
		}
		switch h.Status {
		case "unreachable", "auth_failed", "login_blocked":
			fmt.Fprintf(e.stderr, "crmctl: host %s is %s\n", h.Name, h.Status)
			return errItemsFailed
		}
		return nil
	}
}
