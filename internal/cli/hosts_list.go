package cli

import (
	"flag"
	"fmt"
	"sort"
	"strings"
)

func (e *env) hostsList(fs *flag.FlagSet) func(pos []string) error {
	return func(pos []string) error {
		if len(pos) > 0 {
			return usagef("hosts list takes no arguments")
		}
		if err := e.finish(); err != nil {
			return err
		}
		hosts, raw, err := listHosts(e.ctx, e.client)
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
