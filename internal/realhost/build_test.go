package realhost

import (
	"archive/tar"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeArchive(t *testing.T, path string, files map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestArchivesFromPathsAndGlobs(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"sub2api-0.1.179.tar.gz", "sub2api-0.1.129.tar.gz", "other.txt"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub2api-dir.tar.gz"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := Archives(filepath.Join(dir, "sub2api-*.tar.gz") + " " + filepath.Join(dir, "sub2api-0.1.129.tar.gz") + " " + filepath.Join(dir, "none-*.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "sub2api-0.1.129.tar.gz"), filepath.Join(dir, "sub2api-0.1.179.tar.gz")}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("Archives = %v, want %v (sorted, deduplicated, files only)", got, want)
	}
	if got, err := Archives(filepath.Join(dir, "nothing-*.tar.gz")); err != nil || len(got) != 0 {
		t.Fatalf("a pattern matching nothing: %v %v", got, err)
	}
}

func TestExtractFindsBackendAndRefusesEscapes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.tar.gz")
	writeArchive(t, good, map[string]string{"sub2api-0.1.1/backend/go.mod": "module x\n", "sub2api-0.1.1/backend/cmd/server/VERSION": "0.1.1\n"})
	src := filepath.Join(dir, "src")
	if err := extract(good, src); err != nil {
		t.Fatal(err)
	}
	backend, err := findBackend(src)
	if err != nil || backend != filepath.Join(src, "sub2api-0.1.1", "backend") {
		t.Fatalf("findBackend = %q %v", backend, err)
	}
	bad := filepath.Join(dir, "bad.tar.gz")
	writeArchive(t, bad, map[string]string{"../../escaped": "x"})
	// Entry names are cleaned against the extraction root: "../../escaped" lands inside it.
	if err := extract(bad, filepath.Join(dir, "src2")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "escaped")); err == nil {
		t.Fatal("an archive entry escaped the extraction directory")
	}
	if _, err := os.Stat(filepath.Join(dir, "src2", "escaped")); err != nil {
		t.Fatalf("the cleaned entry is not inside the root: %v", err)
	}
	if _, err := findBackend(filepath.Join(dir, "src2")); err == nil {
		t.Fatal("a tree without backend/go.mod passed as a sub2api source")
	}
}

func TestBuildCacheHitNeedsNoToolchain(t *testing.T) {
	cache := t.TempDir()
	t.Setenv(EnvCache, cache)
	archive := filepath.Join(t.TempDir(), "a.tar.gz")
	writeArchive(t, archive, map[string]string{"x/backend/go.mod": "module x\n"})
	sum, err := fileSHA256(archive)
	if err != nil {
		t.Fatal(err)
	}
	entry := filepath.Join(cache, sum)
	if err := os.MkdirAll(entry, 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(entry, "VERSION"), []byte("0.1.999\n"), 0o644)
	_ = os.WriteFile(filepath.Join(entry, "sub2api"), []byte("#!/bin/sh\n"), 0o755)
	b, err := Build(archive, nil)
	if err != nil || !b.Cached || b.Version != "0.1.999" || b.Dir != entry {
		t.Fatalf("cached build: %+v %v", b, err)
	}
}

func TestScrubReplacesSecrets(t *testing.T) {
	claims := base64.RawURLEncoding.EncodeToString([]byte(`{"user_id":7,"email":"u@example.com","role":"user","exp":1}`))
	jwt := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + claims + ".c2lnbmF0dXJlLXNlY3JldA"
	admin := "admin-" + strings.Repeat("ab", 32)
	ex := &Exchange{Request: ExchangeRequest{Method: "POST", Path: "/api/v1/keys",
		Headers: map[string]string{"Authorization": "Bearer " + jwt, "x-api-key": admin},
		Body:    map[string]any{"password": "Pw-hunter2", "key": "sk-0123456789abcdef0123456789"}},
		Response: ExchangeResponse{Status: 200, Headers: map[string]any{}, Body: map[string]any{"key": "sk-0123456789abcdef0123456789"},
			stream: "data: {\"error\":\"" + admin + "\"}\n\n"}}
	if err := ex.Scrub(map[string]string{"Pw-hunter2": "fixture-pass-0001"}); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(ex)
	all := string(raw) + ex.Response.Stream()
	for _, secret := range []string{"hunter2", "c2lnbmF0dXJl", strings.Repeat("ab", 32), "0123456789abcdef0123456789"} {
		if strings.Contains(all, secret) {
			t.Errorf("secret %q left in %s", secret, all)
		}
	}
	if !strings.Contains(all, "fixture-sig-") || !strings.Contains(all, "sk-fixture-") || !strings.Contains(all, "fixture-pass-0001") {
		t.Errorf("placeholders missing: %s", all)
	}
	tok := strings.TrimPrefix(ex.Request.Headers["Authorization"], "Bearer ")
	b, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	var c map[string]any
	if json.Unmarshal(b, &c) != nil || c["user_id"] != float64(7) || c["email"] != "u@example.com" || c["exp"] != nil {
		t.Errorf("fixture JWT claims %s: keep user_id, email and role only", b)
	}
}
