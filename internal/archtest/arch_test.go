// Package archtest enforces the package boundaries of docs/architecture.md with the go
// command's own view of the import graph (`go list -deps`), so that CI fails on an edge
// the architecture forbids.
package archtest

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/cn-relay-manager/cn-relay-manager"

// imports returns every package of the module (with its test files' imports) and what it
// imports, as `go list -deps -test` reports them.
func imports(t *testing.T, patterns ...string) map[string][]string {
	t.Helper()
	args := append([]string{"list", "-deps", "-test", "-f", "{{.ImportPath}} {{join .Imports \" \"}}"}, patterns...)
	cmd := exec.Command("go", args...)
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	graph := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		// "pkg [pkg.test]" is the package compiled for its tests: same source directory.
		for _, d := range f[1:] {
			if !strings.HasPrefix(d, "[") {
				graph[f[0]] = append(graph[f[0]], d)
			}
		}
	}
	if len(graph) == 0 {
		t.Fatal("go list reported no packages")
	}
	return graph
}

// The REST API (and so the web pages' batch and host services) does not depend on the pipeline at
// all, directly or through another package: the API writes through the store and the
// batch service and enqueues; only the worker runs steps.
func TestAPIDoesNotDependOnPipeline(t *testing.T) {
	pipeline := module + "/internal/pipeline"
	for _, root := range []string{"internal/api", "internal/batch", "internal/hostreg", "internal/web"} {
		cmd := exec.Command("go", "list", "-deps", "./"+root)
		cmd.Dir = "../.."
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps ./%s: %v", root, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			if dep == pipeline {
				t.Errorf("%s depends on %s (go list -deps ./%s)", root, pipeline, root)
			}
		}
	}
	// crmctl talks to the API only: it shares the request rules (internal/batch/request)
	// but links neither the store nor a database driver.
	cmd := exec.Command("go", "list", "-deps", "./cmd/crmctl")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/crmctl: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == module+"/internal/store" || dep == pipeline || strings.HasPrefix(dep, "github.com/uptrace/bun") {
			t.Errorf("crmctl depends on %s", dep)
		}
	}
	for pkg, deps := range imports(t, "./...") {
		if !strings.HasPrefix(pkg, module+"/internal/api") {
			continue
		}
		for _, d := range deps {
			if d == pipeline {
				t.Errorf("edge %s → %s", pkg, d)
			}
		}
	}
}

// Only internal/store (and the migrations it embeds) talks to the database through bun;
// every other package reads and writes through the store's methods.
func TestOnlyStoreImportsBun(t *testing.T) {
	for pkg, deps := range imports(t, "./...") {
		if !strings.HasPrefix(pkg, module+"/") {
			continue
		}
		rel := strings.TrimPrefix(pkg, module+"/")
		if rel == "internal/store" || strings.HasPrefix(rel, "internal/store_test") || strings.HasPrefix(rel, "migrations") {
			continue
		}
		for _, d := range deps {
			if d == "github.com/uptrace/bun" || strings.HasPrefix(d, "github.com/uptrace/bun/") {
				t.Errorf("%s imports %s; only internal/store may", rel, d)
			}
		}
	}
}
