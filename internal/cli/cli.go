// Package cli is crmctl, the operator command line of cn-relay-manager. It talks only to
// the product's REST API, through internal/apiclient: it registers and probes hosts,
// submits batches read from CSV, JSONL or plain `url key [models...]` lines, follows them
// with a progress bar and shows, retries, cancels, rolls back and reconciles them. Each
// command is one file (hosts_add.go, batch_submit.go, …) and one row of the command
// table; every help text is generated from the table and the commands' flag definitions.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/cn-relay-manager/cn-relay-manager/internal/apiclient"
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
	client      *apiclient.Client
}

func (e *env) json() bool { return e.output == "json" }

// globalFlags registers the global flags on fs so they work before and after subcommands.
func (e *env) globalFlags(fs *flag.FlagSet) {
	fs.StringVar(&e.api, "api", e.api, "API base URL (CRM_API_URL)")
	fs.Var((*secretValue)(&e.token), "token", "API bearer token (CRM_API_TOKEN)")
	fs.StringVar(&e.output, "output", e.output, "output format: table or json")
	fs.StringVar(&e.output, "o", e.output, "shorthand for --output")
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
	if ae, ok := err.(*apiclient.Error); ok {
		fmt.Fprintf(e.stderr, "crmctl: API error: %s\n", apiErrorText(ae))
		return ExitFailed
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(e.stderr, "crmctl: interrupted")
		return ExitFailed
	}
	var unreachable *apiclient.UnreachableError
	if errors.As(err, &unreachable) {
		fmt.Fprintf(e.stderr, "crmctl: %s\nhint: set --api or CRM_API_URL\n", err)
		return ExitFailed
	}
	fmt.Fprintf(e.stderr, "crmctl: %s\n", err)
	return ExitFailed
}

// apiErrorText is an API error with a hint for the answers an operator can act on.
func apiErrorText(ae *apiclient.Error) string {
	s := ae.Error()
	switch ae.Status {
	case 401:
		s += "\nhint: pass the API token with --token or CRM_API_TOKEN"
	case 404, 405:
		if ae.Code == "" || ae.Code == "http_error" {
			s += "\nhint: this server does not offer this endpoint (an older version?)"
		}
	}
	return s
}

// dispatch finds the command named by the first arguments (group and subcommand) in the
// command table, defines its flags, parses them anywhere among its arguments and runs it.
func (e *env) dispatch(args []string) error {
	fs := flag.NewFlagSet("crmctl", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(e.stderr, mainUsage()) }
	e.globalFlags(fs)
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	args = fs.Args()
	if len(args) == 0 {
		fmt.Fprint(e.stderr, mainUsage())
		return usagef("a command is required")
	}
	if args[0] == "help" {
		fmt.Fprint(e.stdout, mainUsage())
		return nil
	}
	c, rest, err := lookup(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) || errors.Is(err, errNeedsSub) {
			fmt.Fprint(e.stderr, mainUsage())
			if errors.Is(err, errNeedsSub) {
				return usagef("%s needs a subcommand", args[0])
			}
		}
		return err
	}
	cfs := e.newFlagSet(c)
	runCmd := c.setup(e, cfs)
	pos, err := parse(cfs, rest)
	if err != nil {
		return err
	}
	return runCmd(pos)
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
	e.client = apiclient.New(e.api, e.token)
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
