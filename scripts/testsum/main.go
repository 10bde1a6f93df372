// Command testsum reads `go test -json` streams. With "stream" it filters one stream from
// stdin into readable progress (a line per package, the output of failing tests, build
// errors); with "summary FILE..." it counts the tests of every file and prints one line,
// "N passed, N failed, N skipped", which `make test` ends with.
//
// It exists so that the test command reports every stage (race suite, PostgreSQL pass,
// fuzz) in one figure; go test itself prints per-package lines only.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Time       time.Time
	Action     string
	Package    string
	ImportPath string
	Test       string
	Elapsed    float64
	Output     string
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testsum stream <json | testsum summary FILE...")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "stream":
		stream(os.Stdin, os.Stdout)
	case "summary":
		c, err := countFiles(os.Args[2:])
		if err != nil {
			fmt.Fprintln(os.Stderr, "testsum:", err)
			os.Exit(2)
		}
		for _, f := range c.failures {
			fmt.Println("FAILED:", f)
		}
		fmt.Printf("%d passed, %d failed, %d skipped\n", c.passed, c.failed, c.skipped)
		if c.failed > 0 {
			os.Exit(1)
		}
	default:
		fmt.Fprintln(os.Stderr, "testsum: unknown mode", os.Args[1])
		os.Exit(2)
	}
}

// stream prints package results as they end and the whole output of every failing test
// (and of a package that fails outside any test: build errors, panics, timeouts).
func stream(r io.Reader, w io.Writer) {
	out := map[string]*strings.Builder{} // package|test → buffered output
	key := func(e event) string { return e.Package + "|" + e.Test }
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			fmt.Fprintln(w, string(line)) // not an event: go build's own errors
			continue
		}
		switch e.Action {
		case "build-output":
			fmt.Fprint(w, e.Output)
		case "output":
			b := out[key(e)]
			if b == nil {
				b = &strings.Builder{}
				out[key(e)] = b
			}
			b.WriteString(e.Output)
		case "fail":
			printed := ""
			if b := out[key(e)]; b != nil {
				printed = b.String()
				fmt.Fprint(w, printed)
			}
			if e.Test == "" && !strings.Contains(printed, "FAIL\t"+e.Package) {
				fmt.Fprintf(w, "FAIL\t%s\t%.1fs\n", e.Package, e.Elapsed)
			}
			delete(out, key(e))
		case "pass":
			if e.Test == "" {
				fmt.Fprintf(w, "ok  \t%s\t%.1fs\n", e.Package, e.Elapsed)
			}
			delete(out, key(e))
		case "skip":
			if e.Test == "" {
				fmt.Fprintf(w, "?   \t%s\t[no test files]\n", e.Package)
			}
			delete(out, key(e))
		}
	}
}

type counts struct {
	passed, failed, skipped int
	failures                []string
}

// countFiles counts every test and subtest by its final action. A package that fails
// without a failing test (it did not build, panicked or timed out) counts as one failure,
// and so does a stage that left a "stage-failed" marker line (non-Go stages: gofmt, vet).
func countFiles(files []string) (counts, error) {
	var c counts
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return c, err
		}
		final := map[string]string{}
		failedTests := map[string]bool{} // package → a test failed
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "stage-failed ") {
				c.failed++
				c.failures = append(c.failures, strings.TrimPrefix(line, "stage-failed "))
				continue
			}
			var e event
			if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &e) != nil {
				continue
			}
			switch e.Action {
			case "pass", "fail", "skip":
			default:
				continue
			}
			if e.Test == "" {
				if e.Action == "fail" {
					final["pkg|"+e.Package] = "fail"
				}
				continue
			}
			final[e.Package+"|"+e.Test] = e.Action
			if e.Action == "fail" {
				failedTests[e.Package] = true
			}
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			return c, fmt.Errorf("%s: %w", f, err)
		}
		keys := make([]string, 0, len(final))
		for k := range final {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			switch a := final[k]; {
			case strings.HasPrefix(k, "pkg|"):
				if pkg := strings.TrimPrefix(k, "pkg|"); !failedTests[pkg] {
					c.failed++
					c.failures = append(c.failures, pkg+" (package failed outside its tests: build error, panic or timeout)")
				}
			case a == "pass":
				c.passed++
			case a == "skip":
				c.skipped++
			case a == "fail":
				c.failed++
				c.failures = append(c.failures, strings.Replace(k, "|", " ", 1))
			}
		}
	}
	return c, nil
}
