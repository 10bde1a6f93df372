package cli

import (
	"errors"
	"flag"
	"fmt"
	"sort"
	"strings"
)

// command is one row of the command table: crmctl GROUP SUB (or a single word).
type command struct {
	name    string   // "batch submit"
	aliases []string // other spellings of the subcommand ("ls")
	args    string   // the positional arguments, e.g. "ID" or "[FILE|-]"
	summary string
	long    string // more help printed after the flags
	// setup defines the command's flags on fs and returns what runs it with the
	// positional arguments once the flags are parsed.
	setup func(e *env, fs *flag.FlagSet) func(pos []string) error
}

// commands is the command table, in the order the help lists it.
var commands = []command{
	{name: "hosts add", summary: "register a sub2api host (the API probes it first)", setup: (*env).hostsAdd},
	{name: "hosts list", aliases: []string{"ls"}, summary: "list the registered hosts", setup: (*env).hostsList},
	{name: "hosts probe", args: "ID|NAME", summary: "probe a registered host again (version, profile, status)", setup: (*env).hostsProbe},
	{name: "hosts update", args: "ID|NAME", summary: "rename a host, change its URLs or rotate its admin key (checked against the host before saving)", setup: (*env).hostsUpdate},
	{name: "hosts test", args: "ID|NAME", summary: "test the connection to a host with its stored settings, or with the given ones (nothing saved)", setup: (*env).hostsTest},
	{name: "hosts delete", aliases: []string{"rm"}, args: "ID|NAME", summary: "delete a host (refused while the ledger holds objects on it, unless --forget)", setup: (*env).hostsDelete},
	{name: "batch submit", args: "[FILE|-]", summary: "submit the keys read from CSV, JSONL or `url key [models...]` lines", setup: (*env).batchSubmit},
	{name: "batch list", aliases: []string{"ls"}, summary: "list batches", setup: (*env).batchList},
	{name: "batch show", args: "ID", summary: "show a batch and its items, or one item with its attempts", setup: (*env).batchShow},
	{name: "batch retry", args: "ID", summary: "start the batch's failed items again", setup: (*env).batchRetry},
	{name: "batch cancel", args: "ID", summary: "stop the batch's running items (what exists on the host is kept)", setup: (*env).batchCancel},
	{name: "batch rollback", args: "ID", summary: "delete what this batch created on the host", setup: (*env).batchRollback},
	{name: "batch reconcile", args: "ID", summary: "compare the batch's ledger with the host", setup: (*env).batchReconcile},
	{name: "accounts list", aliases: []string{"ls"}, summary: "a host's imported accounts with health, balance, last check and history (--failing: only failing)", setup: (*env).accountsList},
	{name: "accounts history", args: "ITEM_ID", summary: "an account's checks, newest first, with their evidence summary and actions", setup: (*env).accountsHistory},
	{name: "accounts verify", summary: "re-verify a host's imported accounts now", setup: (*env).accountsVerify},
	{name: "accounts undo", args: "CHECK_ID", summary: "reverse the host change a check made (parking or recovery)", setup: (*env).accountsUndo},
	{name: "bench", summary: "load benchmark on built binaries", long: benchHelp, setup: (*env).bench},
}

// groupAliases are other spellings of a command group.
var groupAliases = map[string]string{"host": "hosts", "batches": "batch", "account": "accounts"}

var errNeedsSub = errors.New("needs a subcommand")

// lookup finds the command args start with and returns the arguments after its name.
func lookup(args []string) (command, []string, error) {
	group := args[0]
	if g, ok := groupAliases[group]; ok {
		group = g
	}
	sub, rest := "", args[1:]
	known := false
	for _, c := range commands {
		g, s, hasSub := strings.Cut(c.name, " ")
		if g != group {
			continue
		}
		known = true
		if !hasSub {
			return c, rest, nil
		}
		if len(rest) > 0 && (rest[0] == s || contains(c.aliases, rest[0])) {
			return c, rest[1:], nil
		}
	}
	if !known {
		return command{}, nil, usagef("unknown command %q (want %s)", args[0], strings.Join(groups(), ", "))
	}
	if len(rest) > 0 {
		sub = rest[0]
	}
	switch sub {
	case "":
		return command{}, nil, errNeedsSub
	case "-h", "--help", "help":
		return command{}, nil, flag.ErrHelp
	}
	return command{}, nil, usagef("unknown %s subcommand %q", group, sub)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// groups lists the command groups ("hosts, batch or bench").
func groups() []string {
	var out []string
	for _, c := range commands {
		g, _, _ := strings.Cut(c.name, " ")
		if !contains(out, g) {
			out = append(out, g)
		}
	}
	if n := len(out); n > 1 {
		out[n-2] += " or " + out[n-1]
		out = out[:n-1]
	}
	return out
}

// newFlagSet returns the flag set of command c: the global flags, and a usage text made
// from the table row and the flags the command defines.
func (e *env) newFlagSet(c command) *flag.FlagSet {
	fs := flag.NewFlagSet("crmctl "+c.name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: crmctl %s [flags]", c.name)
		if c.args != "" {
			fmt.Fprintf(e.stderr, " %s", c.args)
		}
		fmt.Fprintf(e.stderr, "\n\n%s\n\nflags:\n", c.summary)
		fs.PrintDefaults()
		if c.long != "" {
			fmt.Fprintf(e.stderr, "\n%s\n", c.long)
		}
	}
	e.globalFlags(fs)
	return fs
}

// globalFlagNames are the flags every command accepts (globalFlags).
func globalFlagNames() map[string]bool {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	(&env{}).globalFlags(fs)
	names := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { names[f.Name] = true })
	return names
}

// commandFlags defines c's flags on a fresh set (without running anything) and returns
// the ones that are its own, sorted by name.
func commandFlags(c command) []*flag.Flag {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	c.setup(&env{}, fs)
	global := globalFlagNames()
	var out []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if !global[f.Name] {
			out = append(out, f)
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// synopsis is "batch submit [--dry-run] [--host string] … [FILE|-]", wrapped.
func synopsis(c command) string {
	words := []string{c.name}
	for _, f := range commandFlags(c) {
		name, _ := flag.UnquoteUsage(f)
		if name == "" {
			words = append(words, "[--"+f.Name+"]")
		} else {
			words = append(words, "[--"+f.Name+" "+name+"]")
		}
	}
	if c.args != "" {
		words = append(words, c.args)
	}
	var b strings.Builder
	line := "  "
	for i, w := range words {
		if i > 0 && len(line)+1+len(w) > 100 {
			b.WriteString(line + "\n")
			line = "      "
		} else if i > 0 {
			line += " "
		}
		line += w
	}
	b.WriteString(line + "\n")
	return b.String()
}

// mainUsage is `crmctl -h`: every command with every flag it takes, from the table.
func mainUsage() string {
	var b strings.Builder
	b.WriteString("crmctl — operator CLI for cn-relay-manager (talks to its REST API)\n\n")
	b.WriteString("usage: crmctl [--api URL] [--token T] [--output table|json] <command> [flags] [args]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "%s      %s\n", synopsis(c), c.summary)
	}
	b.WriteString("\nglobal flags (also accepted after the command):\n")
	gfs := flag.NewFlagSet("crmctl", flag.ContinueOnError)
	gfs.SetOutput(&b)
	(&env{api: DefaultAPIURL, output: "table"}).globalFlags(gfs)
	gfs.PrintDefaults()
	b.WriteString(`
exit codes: 0 ok, 1 command failed or batch items failed, 2 usage error.
Run "crmctl <command> <subcommand> -h" for the flags of one command.
`)
	return b.String()
}
