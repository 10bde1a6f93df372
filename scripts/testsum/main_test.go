package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sample = `{"Action":"run","Package":"p/a","Test":"TestOK"}
{"Action":"output","Package":"p/a","Test":"TestOK","Output":"fine\n"}
{"Action":"pass","Package":"p/a","Test":"TestOK","Elapsed":0.1}
{"Action":"run","Package":"p/a","Test":"TestBad"}
{"Action":"run","Package":"p/a","Test":"TestBad/sub"}
{"Action":"output","Package":"p/a","Test":"TestBad/sub","Output":"    boom\n"}
{"Action":"fail","Package":"p/a","Test":"TestBad/sub","Elapsed":0.1}
{"Action":"fail","Package":"p/a","Test":"TestBad","Elapsed":0.1}
{"Action":"skip","Package":"p/a","Test":"TestSkip","Elapsed":0}
{"Action":"fail","Package":"p/a","Elapsed":0.3}
{"Action":"output","Package":"p/b","Output":"panic: oops\n"}
{"Action":"fail","Package":"p/b","Elapsed":1}
{"Action":"pass","Package":"p/c","Test":"TestC","Elapsed":0}
{"Action":"pass","Package":"p/c","Elapsed":0.1}
{"Action":"output","Package":"p/e","Output":"?   \tp/e\t[no test files]\n"}
{"Action":"skip","Package":"p/e","Elapsed":0}
# p/d [build failed]
`

func TestSummaryCountsEveryTestAndPackageFailure(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "race.json")
	if err := os.WriteFile(f, []byte(sample), 0o600); err != nil {
		t.Fatal(err)
	}
	stages := filepath.Join(dir, "stages.json")
	if err := os.WriteFile(stages, []byte("stage-failed vet (exit 1)\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := countFiles([]string{stages, f})
	if err != nil {
		t.Fatal(err)
	}
	// TestOK, TestC pass; TestBad, TestBad/sub, p/b (panic outside tests), vet fail.
	if c.passed != 2 || c.failed != 4 || c.skipped != 1 {
		t.Fatalf("got %d passed, %d failed, %d skipped (%v); want 2, 4, 1", c.passed, c.failed, c.skipped, c.failures)
	}
	joined := strings.Join(c.failures, "\n")
	for _, want := range []string{"vet (exit 1)", "p/a TestBad/sub", "p/b (package failed outside its tests"} {
		if !strings.Contains(joined, want) {
			t.Errorf("failures %q lack %q", joined, want)
		}
	}
}

func TestStreamShowsFailingOutputOnly(t *testing.T) {
	var b strings.Builder
	stream(strings.NewReader(sample), &b)
	out := b.String()
	for _, want := range []string{"    boom\n", "FAIL\tp/a", "panic: oops", "FAIL\tp/b", "ok  \tp/c", "# p/d [build failed]", "?   \tp/e\t[no test files]"} {
		if !strings.Contains(out, want) {
			t.Errorf("stream output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "fine\n") {
		t.Errorf("stream output shows a passing test's output:\n%s", out)
	}
}
