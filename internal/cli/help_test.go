package cli

import (
	"context"
	"flag"
	"strings"
	"testing"
)

// `crmctl <cmd> -h` and `crmctl -h` list every flag each command defines: the help is
// generated from the flag definitions, so it cannot drift from them.
func TestHelpListsEveryFlag(t *testing.T) {
	var main strings.Builder
	if code := Run(context.Background(), []string{"-h"}, strings.NewReader(""), &main, &main); code != ExitOK {
		t.Fatalf("crmctl -h: exit %d", code)
	}
	for _, c := range commands {
		var out, errb strings.Builder
		args := append(strings.Fields(c.name), "-h")
		if code := Run(context.Background(), args, strings.NewReader(""), &out, &errb); code != ExitOK {
			t.Fatalf("crmctl %s: exit %d\n%s", strings.Join(args, " "), code, errb.String())
		}
		help := errb.String()
		if !strings.Contains(help, "usage: crmctl "+c.name) || !strings.Contains(help, c.summary) {
			t.Errorf("crmctl %s -h does not name the command:\n%s", c.name, help)
		}
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		c.setup(&env{}, fs)
		fs.VisitAll(func(f *flag.Flag) {
			if !strings.Contains(help, "  -"+f.Name+" ") && !strings.Contains(help, "  -"+f.Name+"\n") {
				t.Errorf("crmctl %s -h does not list -%s:\n%s", c.name, f.Name, help)
			}
		})
		for _, f := range commandFlags(c) {
			if !strings.Contains(main.String(), "[--"+f.Name) {
				t.Errorf("crmctl -h does not list %s --%s", c.name, f.Name)
			}
		}
		if !strings.Contains(main.String(), "  "+c.name+" ") && !strings.Contains(main.String(), "  "+c.name+"\n") {
			t.Errorf("crmctl -h does not list %s", c.name)
		}
	}
	for _, g := range []string{"--api", "--token", "--output"} {
		if !strings.Contains(main.String(), "-"+strings.TrimPrefix(g, "--")) {
			t.Errorf("crmctl -h does not list the global flag %s", g)
		}
	}
}
