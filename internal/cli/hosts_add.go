package cli

import (
	"bufio"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
)

func (e *env) hostsAdd(fs *flag.FlagSet) func(pos []string) error {
	name := fs.String("name", "", "host name (unique)")
	adminURL := fs.String("admin-url", "", "sub2api admin base URL")
	publicURL := fs.String("public-url", "", "URL end users call (default: the admin URL)")
	adminKey := secretFlag(fs, "admin-key", os.Getenv("CRM_ADMIN_KEY"), "admin API key; \"-\" reads it from stdin (env CRM_ADMIN_KEY)")
	email := fs.String("admin-email", "", "admin e-mail (instead of --admin-key)")
	password := secretFlag(fs, "admin-password", os.Getenv("CRM_ADMIN_PASSWORD"), "admin password; \"-\" reads it from stdin (env CRM_ADMIN_PASSWORD)")
	return func(pos []string) error {
		if len(pos) > 0 {
			return usagef("hosts add takes no arguments (got %d)", len(pos))
		}
		if err := e.finish(); err != nil {
			return err
		}
		switch {
		case strings.TrimSpace(*name) == "":
			return usagef("--name is required")
		case *adminURL == "":
			return usagef("--admin-url is required")
		case *adminKey != "" && *email != "":
			return usagef("give either --admin-key or --admin-email/--admin-password, not both")
		case *adminKey == "" && *email == "":
			return usagef("--admin-key (or --admin-email and --admin-password) is required")
		case *email != "" && *password == "":
			return usagef("--admin-password is required with --admin-email")
		}
		body := map[string]string{"name": *name, "admin_url": *adminURL}
		if *publicURL != "" {
			body["public_url"] = *publicURL
		}
		if *adminKey != "" {
			k, err := e.secretArg(*adminKey, "admin key")
			if err != nil {
				return err
			}
			body["admin_api_key"] = k
		} else {
			p, err := e.secretArg(*password, "admin password")
			if err != nil {
				return err
			}
			body["admin_email"], body["admin_password"] = *email, p
		}
		var h hostView
		raw, err := e.client.Do(e.ctx, http.MethodPost, "/api/v1/hosts", nil, body, &h)
		if err != nil {
			return err
		}
		if e.json() {
			return e.printJSON(raw)
		}
		fmt.Fprintf(e.stdout, "registered host %s (%s)\n", h.Name, h.ID)
		e.printHost(h)
		return nil
	}
}

// secretArg returns v, or one line read from stdin when v is "-".
func (e *env) secretArg(v, what string) (string, error) {
	if v != "-" {
		return strings.TrimSpace(v), nil
	}
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	line = strings.TrimSpace(line)
	if line == "" {
		if err != nil {
			return "", fmt.Errorf("reading the %s from stdin: %v", what, err)
		}
		return "", usagef("the %s read from stdin is empty", what)
	}
	return line, nil
}
