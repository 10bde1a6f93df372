// Package cli is crmctl, the operator command line of cn-relay-manager. It talks only to
// the product's REST API over HTTP: it registers and probes hosts, submits batches read
// from CSV, JSONL or plain `url key [models...]` lines, follows them with a progress bar
// and shows, retries, cancels, rolls back and reconciles them.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// Exit codes.
const (
	ExitOK     = 0
	ExitFailed = 1 // a command failed, or a batch has failed items
	ExitUsage  = 2
)

// DefaultAPIURL is used when neither --api nor CRM_API_URL is set.
const DefaultAPIURL = "http://127.0.0.1:8080"

// usageError is a mistake in the command line (exit code 2).
type usageError struct {
	msg     string
	printed bool // the flag package has already printed it with the usage
}

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{msg: fmt.Sprintf(format, args...)} }

// errItemsFailed is returned (already reported) when a batch ended with failed items.
var errItemsFailed = errors.New("some items failed")

// env is one invocation's context.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	api, token, output string
	// progressTTY forces the single-line progress bar (nil: detect from stderr).
	progressTTY *bool
	client      *Client
}

func (e *env) json() bool { return e.output == "json" }

// globalFlags registers the global flags on fs so they work before and after subcommands.
func (e *env) globalFlags(fs *flag.FlagSet) {
	fs.StringVar(&e.api, "api", e.api, "API base URL (CRM_API_URL)")
	fs.Var((*secretValue)(&e.token), "token", "API bearer token (CRM_API_TOKEN)")
	fs.StringVar(&e.output, "output", e.output, "output format: table or json")
	fs.StringVar(&e.output, "o", e.output, "shorthand for --output")
}

func (e *env) newFlagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("crmctl "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: crmctl %s\n", usage)
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintln(e.stderr, "\nflags:")
			fs.PrintDefaults()
		}
	}
	e.globalFlags(fs)
	return fs
}

func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return &usageError{msg: err.Error(), printed: true}
}

// parse parses flags anywhere among the arguments (flag stops at the first positional
// argument; crmctl keeps going so that `batch submit items.csv --wait` works). "--" ends
// the flags.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, flagError(err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

const mainUsage = `crmctl — operator CLI for cn-relay-manager (talks to its REST API)

usage: crmctl [--api URL] [--token T] [--output table|json] <command> [flags] [args]

commands:
  hosts add --name N --admin-url U [--public-url U] (--admin-key K | --admin-email E --admin-password P)
  hosts list
  hosts probe ID|NAME
  batch submit --host ID|NAME [--mode M] [--dry-run] [--force] [--window 5m] [--name N]
               [--format auto|csv|jsonl|lines] [--wait] [FILE|-]
  batch list [--host ID|NAME] [--status S]
  batch show ID [--item ITEM]
  batch retry ID [--wait]
  batch cancel ID
  batch rollback ID [--wait]
  batch reconcile ID [--wait]
  bench [--items N] [--json] [--mode M] [--warmup D] ...   load benchmark on built binaries (see "crmctl bench -h")

global flags (also accepted after the command):
  --api URL        API base URL (env CRM_API_URL, default http://127.0.0.1:8080)
  --token T        API bearer token (env CRM_API_TOKEN)
  --output FORMAT  table (default) or json; -o for short

exit codes: 0 ok, 1 command failed or batch items failed, 2 usage error.
Run "crmctl <command> <subcommand> -h" for the flags of one command.
`

// Run is crmctl's entry point: it runs args (without the program name) and returns the
// process exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr,
		api: envOr("CRM_API_URL", DefaultAPIURL), token: os.Getenv("CRM_API_TOKEN"), output: "table"}
	return e.run(args)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func (e *env) run(args []string) int {
	err := e.dispatch(args)
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.Is(err, errItemsFailed):
		return ExitFailed
	}
	var ue *usageError
	if errors.As(err, &ue) {
		if ue.printed {
			return ExitUsage
		}
		fmt.Fprintf(e.stderr, "crmctl: %s\nRun \"crmctl -h\" for usage.\n", ue.msg)
		return ExitUsage
	}
	if ae, ok := err.(*APIError); ok {
		fmt.Fprintf(e.stderr, "crmctl: API error: %s\n", ae.Error())
		return ExitFailed
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(e.stderr, "crmctl: interrupted")
		return ExitFailed
	}
	fmt.Fprintf(e.stderr, "crmctl: %s\n", err)
	return ExitFailed
}

func (e *env) dispatch(args []string) error {
	fs := flag.NewFlagSet("crmctl", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(e.stderr, mainUsage) }
	e.globalFlags(fs)
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	args = fs.Args()
	if len(args) == 0 {
		fmt.Fprint(e.stderr, mainUsage)
		return usagef("a command is required")
	}
	group, sub := args[0], ""
	if len(args) > 1 {
		sub = args[1]
	}
	rest := []string{}
	if len(args) > 2 {
		rest = args[2:]
	}
	var cmd func([]string) error
	switch group {
	case "help":
		fmt.Fprint(e.stdout, mainUsage)
		return nil
	case "hosts", "host":
		cmd = map[string]func([]string) error{"add": e.hostsAdd, "list": e.hostsList, "ls": e.hostsList, "probe": e.hostsProbe}[sub]
	case "bench":
		return e.bench(args[1:])
	case "batch", "batches":
		cmd = map[string]func([]string) error{"submit": e.batchSubmit, "list": e.batchList, "ls": e.batchList, "show": e.batchShow,
			"retry": e.batchRetry, "cancel": e.batchCancel, "rollback": e.batchRollback, "reconcile": e.batchReconcile}[sub]
	default:
		return usagef("unknown command %q (want hosts, batch or bench)", group)
	}
	if cmd == nil {
		if sub == "" || sub == "-h" || sub == "--help" || sub == "help" {
			fmt.Fprint(e.stderr, mainUsage)
			if sub == "" {
				return usagef("%s needs a subcommand", group)
			}
			return flag.ErrHelp
		}
		return usagef("unknown %s subcommand %q", group, sub)
	}
	return cmd(rest)
}

// finish validates the global flags after a subcommand's flags are parsed and builds the client.
func (e *env) finish() error {
	switch e.output {
	case "table", "json":
	default:
		return usagef("--output must be table or json, not %q", e.output)
	}
	if e.api == "" {
		return usagef("--api (or CRM_API_URL) is empty")
	}
	if !looksLikeURL(e.api) {
		return usagef("--api must be an http(s) URL, not %q", e.api)
	}
	e.client = NewClient(e.api, e.token)
	return nil
}

// printJSON writes raw JSON indented to stdout.
func (e *env) printJSON(raw json.RawMessage) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		_, err := e.stdout.Write(append(raw, '\n'))
		return err
	}
	return e.printValue(v)
}

func (e *env) printValue(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (e *env) tty() bool {
	if e.progressTTY != nil {
		return *e.progressTTY
	}
	return isTerminal(e.stderr)
}

// table is a tabwriter whose lines lose their trailing padding.
type table struct {
	*tabwriter.Writer
	buf bytes.Buffer
	out io.Writer
}

func newTable(w io.Writer) *table {
	t := &table{out: w}
	t.Writer = tabwriter.NewWriter(&t.buf, 2, 4, 2, ' ', 0)
	return t
}

// Flush writes the aligned lines to the output.
func (t *table) Flush() error {
	if err := t.Writer.Flush(); err != nil {
		return err
	}
	lines := strings.SplitAfter(t.buf.String(), "\n")
	t.buf.Reset()
	var b strings.Builder
	for _, l := range lines {
		nl := strings.HasSuffix(l, "\n")
		b.WriteString(strings.TrimRight(l, " \n"))
		if nl {
			b.WriteByte('\n')
		}
	}
	_, err := io.WriteString(t.out, b.String())
	return err
}

// secretValue is a string flag whose value never appears in usage output.
type secretValue string

func (s *secretValue) String() string     { return "" }
func (s *secretValue) Set(v string) error { *s = secretValue(v); return nil }

// secretFlag defines a string flag with a hidden default.
func secretFlag(fs *flag.FlagSet, name, def, usage string) *string {
	p := new(string)
	*p = def
	fs.Var((*secretValue)(p), name, usage)
	return p
}
