package cli

import (
	"flag"
	"fmt"
	"strings"
)

// testResultView is the answer of POST /api/v1/hosts/{id}/test.
type testResultView struct {
	OK            bool     `json:"ok"`
	Status        string   `json:"status"`
	StatusMessage string   `json:"status_message"`
	Version       string   `json:"version"`
	Profile       string   `json:"profile"`
	Warnings      []string `json:"warnings"`
	LatencyMS     int64    `json:"latency_ms"`
	Settings      string   `json:"settings"`
}

func (e *env) hostsTest(fs *flag.FlagSet) func(pos []string) error {
	change := hostChangeFlags(fs)
	return func(pos []string) error {
		if len(pos) != 1 {
			return usagef("hosts test takes one host ID or name")
		}
		if err := e.finish(); err != nil {
			return err
		}
		ch, err := change(e)
		if err != nil {
			return err
		}
		id, err := e.client.ResolveHost(e.ctx, pos[0])
		if err != nil {
			return err
		}
		var r testResultView
		raw, err := e.client.TestHost(e.ctx, id, ch, &r)
		if err != nil {
			return err
		}
		if e.json() {
			if err := e.printJSON(raw); err != nil {
				return err
			}
		} else {
			verdict := "connection ok"
			if !r.OK {
				verdict = "connection failed"
			}
			fmt.Fprintf(e.stdout, "%s: %s (%d ms, %s settings)\n", verdict, r.Status, r.LatencyMS, r.Settings)
			tw := newTable(e.stdout)
			for _, kv := range [][2]string{{"message", r.StatusMessage}, {"version", r.Version}, {"profile", r.Profile}, {"warnings", strings.Join(r.Warnings, "; ")}} {
				if kv[1] != "" {
					fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
				}
			}
			tw.Flush()
		}
		if !r.OK {
			return errItemsFailed
		}
		return nil
	}
}
