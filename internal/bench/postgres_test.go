package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPostgresServer(t *testing.T) {
	for u, want := range map[string]bool{"postgres://u@h/db": true, "postgresql://h/db": true, "/tmp/crm.db": false, "sqlite:x.db": false} {
		if isPostgres(u) != want {
			t.Errorf("isPostgres(%q) = %v", u, !want)
		}
	}
	o := Options{Items: 1, Mode: "none", Concurrency: 1, DatabaseURL: "/tmp/crm.db"}
	if err := o.Check(); err == nil || !strings.Contains(err.Error(), "postgres://") {
		t.Fatalf("a SQLite --database-url: %v", err)
	}

	// A fake psql records its arguments and PGPASSWORD.
	dir := t.TempDir()
	rec := filepath.Join(dir, "calls")
	psql := filepath.Join(dir, "psql")
	script := "#!/bin/sh\necho \"PGPASSWORD=$PGPASSWORD $*\" >> " + rec + "\n"
	if err := os.WriteFile(psql, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := newPGServer("postgres://bench:s3cret@127.0.0.1:5432/postgres?sslmode=disable", psql)
	if err != nil {
		t.Fatal(err)
	}
	name, err := s.create(context.Background())
	if err != nil {
		t.Skip("cannot run a shell script here:", err)
	}
	if !strings.HasPrefix(name, "crm_bench_") || len(name) != len("crm_bench_")+12 {
		t.Fatalf("database name %q", name)
	}
	if got := s.dbURL(name); got != "postgres://bench:s3cret@127.0.0.1:5432/"+name+"?sslmode=disable" {
		t.Fatalf("dbURL %q", got)
	}
	if err := s.drop(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(rec)
	calls := strings.Split(strings.TrimSpace(string(b)), "\n")
	want := []string{
		"PGPASSWORD=s3cret -X -q -v ON_ERROR_STOP=1 -d postgres://bench@127.0.0.1:5432/postgres?sslmode=disable -c CREATE DATABASE " + name,
		"PGPASSWORD=s3cret -X -q -v ON_ERROR_STOP=1 -d postgres://bench@127.0.0.1:5432/postgres?sslmode=disable -c DROP DATABASE IF EXISTS " + name + " WITH (FORCE)",
	}
	if len(calls) != 2 || calls[0] != want[0] || calls[1] != want[1] {
		t.Fatalf("psql calls (the password must not be on the command line):\n%s", strings.Join(calls, "\n"))
	}
	if strings.Contains(s.dropCommand(name), "s3cret") || strings.Contains(redact("postgres://bench:s3cret@h/db"), "s3cret") {
		t.Fatal("a message shows the password")
	}
}
