package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLocateBinaries(t *testing.T) {
	root := t.TempDir()
	mk := func(path string, mode os.FileMode) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// The release directory holds crmctl, api and crmsim; worker there is not executable.
	rel := filepath.Join(root, "release")
	exe := mk(filepath.Join(rel, "crmctl"), 0o755)
	mk(filepath.Join(rel, "api"), 0o755)
	mk(filepath.Join(rel, "crmsim"), 0o755)
	mk(filepath.Join(rel, "worker"), 0o644)
	// crmctl is run through a symlink on PATH; the working directory has bin/.
	if err := os.MkdirAll(filepath.Join(root, "path"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "path", "crmctl")
	if err := os.Symlink(exe, link); err != nil {
		t.Skip("no symlinks:", err)
	}
	wd := filepath.Join(root, "work")
	mk(filepath.Join(wd, "bin", "api"), 0o755)
	mk(filepath.Join(wd, "bin", "worker"), 0o755)

	var o Options
	if err := locate(&o, link, wd); err != nil {
		t.Fatal(err)
	}
	// Beside the executable (through the symlink) first, then ./bin.
	if o.APIBin != filepath.Join(rel, "api") || o.SimBin != filepath.Join(rel, "crmsim") || o.WorkerBin != filepath.Join(wd, "bin", "worker") {
		t.Fatalf("found %q %q %q", o.APIBin, o.WorkerBin, o.SimBin)
	}

	// A flag wins, relative to the working directory.
	own := mk(filepath.Join(wd, "own", "api"), 0o755)
	o = Options{APIBin: "own/api"}
	if err := locate(&o, link, wd); err != nil || o.APIBin != own {
		t.Fatalf("--api-bin: %q %v", o.APIBin, err)
	}
	o = Options{WorkerBin: filepath.Join(rel, "worker")}
	if err := locate(&o, link, wd); err == nil || !strings.Contains(err.Error(), "--worker-bin") {
		t.Fatalf("non-executable --worker-bin accepted: %v", err)
	}

	// Nothing anywhere: the error names what is missing, where it looked and how to build.
	o = Options{}
	err := locate(&o, filepath.Join(root, "elsewhere", "crmctl"), filepath.Join(root, "empty"))
	if err == nil {
		t.Fatal("no binaries, no error")
	}
	for _, want := range []string{"api, worker, crmsim not found", filepath.Join(root, "elsewhere") + "/ (beside crmctl)",
		filepath.Join(root, "empty", "bin") + "/ (./bin)", BuildCommand, "--api-bin, --worker-bin, --crmsim-bin"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
