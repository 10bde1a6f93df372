package cli

import (
	"bufio"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
)

func (e *env) hostsAdd(args []string) error {
	fs := e.newFlagSet("hosts add", "hosts add --name N --admin-url U [--public-url U] (--admin-key K | --admin-email E --admin-password P)")
	name := fs.String("name", "", "host name (unique)")
	adminURL := fs.String("admin-url", "", "sub2api admin base URL")
	publicURL := fs.String("public-url", "", "URL end users call (default: the admin URL)")
	adminKey := secretFlag(fs, "admin-key", os.Getenv("CRM_ADMIN_KEY"), "admin API key; \"-\" reads it from stdin (env CRM_ADMIN_KEY)")
	email := fs.String("admin-email", "", "admin e-mail (instead of --admin-key)")
	password := secretFlag(fs, "admin-password", os.Getenv("CRM_ADMIN_PASSWORD"), "admin password; \"-\" reads it from stdin (env CRM_ADMIN_PASSWORD)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
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

func (e *env) hostsList(args []string) error {
	fs := e.newFlagSet("hosts list", "hosts list")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("hosts list takes no arguments")
	}
	if err := e.finish(); err != nil {
		return err
	}
	hosts, raw, err := e.client.listHosts(e.ctx)
	if err != nil {
		return err
	}
	if e.json() {
		return e.printJSON(raw)
	}
	if len(hosts) == 0 {
		fmt.Fprintln(e.stdout, "no hosts registered (add one with: crmctl hosts add)")
		return nil
	}
	tw := newTable(e.stdout)
	fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tVERSION\tPROFILE\tAUTH\tADMIN URL\tWARNINGS")
	for _, h := range hosts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", h.ID, h.Name, dash(h.Status), dash(h.Version), dash(h.Profile), dash(h.AuthKind), h.AdminURL, len(h.Warnings))
	}
	return tw.Flush()
}

func (e *env) hostsProbe(args []string) error {
	fs := e.newFlagSet("hosts probe", "hosts probe ID|NAME")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("hosts probe takes one host ID or name")
	}
	if err := e.finish(); err != nil {
		return err
	}
	id, err := e.client.resolveHost(e.ctx, pos[0])
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

func (e *env) printHost(h hostView) {
	tw := newTable(e.stdout)
	kv := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	kv("id", h.ID)
	kv("name", h.Name)
	kv("status", h.Status)
	kv("message", h.StatusMessage)
	kv("version", h.Version)
	kv("profile", h.Profile)
	kv("admin url", h.AdminURL)
	kv("public url", h.PublicURL)
	auth := h.AuthKind
	switch {
	case h.AdminKeyMasked != "":
		auth += " " + h.AdminKeyMasked
	case h.AdminEmail != "":
		auth += " " + h.AdminEmail
	}
	kv("auth", auth)
	if h.ProbedAt != nil {
		kv("probed at", h.ProbedAt.Local().Format("2006-01-02 15:04:05"))
	}
	if len(h.Flags) > 0 {
		var fl []string
		for k, v := range h.Flags {
			if v {
				fl = append(fl, k)
			}
		}
		sort.Strings(fl)
		kv("flags", strings.Join(fl, ", "))
	}
	for i, w := range h.Warnings {
		k := ""
		if i == 0 {
			k = "warnings:"
		}
		fmt.Fprintf(tw, "%s\t%s\n", k, w)
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
