package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAPI is a scripted stand-in for the REST API that records the requests it got.
type fakeAPI struct {
	t  *testing.T
	mu sync.Mutex
	// routes maps "METHOD /path" to a handler returning status and body.
	routes map[string]func(r *http.Request, body []byte) (int, any)
	seen   []string
	bodies map[string][]byte
	srv    *httptest.Server
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, routes: map[string]func(*http.Request, []byte) (int, any){}, bodies: map[string][]byte{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		key := r.Method + " " + r.URL.Path
		f.mu.Lock()
		f.seen = append(f.seen, key+"?"+r.URL.RawQuery)
		f.bodies[key] = body
		h := f.routes[key]
		f.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": "unauthorized", "message": "a valid bearer token is required"}}) //nolint:errcheck
			return
		}
		if h == nil {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte("Cannot " + r.Method + " " + r.URL.Path)) //nolint:errcheck
			return
		}
		status, out := h(r, body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(out) //nolint:errcheck
	}))
	t.Cleanup(f.srv.Close)
	f.handle("GET /api/v1/hosts", func(*http.Request, []byte) (int, any) {
		return 200, map[string]any{"items": []map[string]any{{"id": "h-1", "name": "prod", "status": "ok", "admin_url": "https://gw.example.com"}}, "total": 1}
	})
	return f
}

func (f *fakeAPI) handle(route string, h func(r *http.Request, body []byte) (int, any)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[route] = h
}

func (f *fakeAPI) body(route string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bodies[route]
}

func (f *fakeAPI) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), append([]string{"--api", f.srv.URL, "--token", "tok"}, args...), strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func TestUsageErrors(t *testing.T) {
	f := newFakeAPI(t)
	for _, args := range [][]string{
		{},
		{"nope"},
		{"batch"},
		{"batch", "frobnicate"},
		{"batch", "submit", "--host", "prod", "--mode", "weird", "-"},
		{"batch", "submit", "--host", "prod", "--format", "xml", "-"},
		{"batch", "submit", "-"},
		{"batch", "submit", "--host", "prod", "--window", "-1s", "-"},
		{"batch", "submit", "--host", "prod", "--window-schedule", "1s,0s", "-"},
		{"batch", "submit", "--host", "prod", "a.csv", "b.csv"},
		{"batch", "show"},
		{"batch", "show", "a", "b"},
		{"batch", "list", "--bogus"},
		{"hosts", "add", "--name", "x"},
		{"hosts", "add", "--name", "x", "--admin-url", "https://x", "--admin-key", "k", "--admin-email", "e"},
		{"hosts", "add", "--name", "x", "--admin-url", "https://x", "--admin-email", "e"},
		{"--output", "yaml", "hosts", "list"},
		{"hosts", "probe"},
	} {
		r := f.run(t, "", args...)
		if r.code != ExitUsage {
			t.Errorf("%v: exit %d, want 2\nstderr: %s", args, r.code, r.stderr)
		}
	}
	if r := f.run(t, "", "batch", "submit", "-h"); r.code != ExitOK || !strings.Contains(r.stderr, "-window") || strings.Contains(r.stderr, "tok\"") {
		t.Errorf("-h: exit %d\n%s", r.code, r.stderr)
	}
	if r := f.run(t, "", "help"); r.code != ExitOK || !strings.Contains(r.stdout, "batch submit") {
		t.Errorf("help: exit %d", r.code)
	}
}

func TestSubmitRequestAndErrors(t *testing.T) {
	f := newFakeAPI(t)
	f.handle("POST /api/v1/batches", func(r *http.Request, body []byte) (int, any) {
		return 201, map[string]any{"batch": map[string]any{"id": "b-1", "host_id": "h-1", "mode": "none", "dry_run": true, "status": "queued", "item_count": 2}, "enqueued": 2}
	})
	in := "base_url,api_key,models\nhttps://api.deepseek.com,sk-aaaaaaaaaaaaaaaa0001,deepseek-flash\nhttps://x.example/v1,sk-bbbbbbbbbbbbbbbb0002,\n"
	path := filepath.Join(t.TempDir(), "items.csv")
	if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	// flags after the file, host by name, window and schedule mapped to seconds
	r := f.run(t, "", "batch", "submit", path, "--host", "prod", "--mode", "none", "--dry-run", "--window", "5m", "--window-schedule", "2s,1m", "--name", "n")
	if r.code != 0 || !strings.Contains(r.stdout, "submitted batch b-1") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var req map[string]any
	if err := json.Unmarshal(f.body("POST /api/v1/batches"), &req); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"host_id": "h-1", "mode": "none", "dry_run": true, "name": "n",
		"window": map[string]any{"deadline_s": 300.0, "schedule_s": []any{2.0, 60.0}}}
	for k, v := range want {
		if b1, _ := json.Marshal(req[k]); string(b1) != mustJSON(v) {
			t.Errorf("%s = %s, want %s", k, b1, mustJSON(v))
		}
	}
	items := req["items"].([]any)
	if len(items) != 2 || items[0].(map[string]any)["api_key"] != "sk-aaaaaaaaaaaaaaaa0001" || items[1].(map[string]any)["models"] != nil {
		t.Errorf("items %v", items)
	}
	if _, has := req["force"]; has {
		t.Errorf("force sent while not set")
	}
	if strings.Contains(r.stdout+r.stderr, "sk-aaaa") {
		t.Errorf("key printed")
	}

	// JSON output of a submit without --wait is the API's answer.
	r = f.run(t, "https://x.example sk-cccccccccccccccc0003\n", "batch", "submit", "--host", "h-1", "-o", "json")
	var resp map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &resp) != nil || resp["enqueued"] != 2.0 {
		t.Errorf("json submit: exit %d %s", r.code, r.stdout)
	}

	// API error naming items[1] → mapped to input line 3.
	f.handle("POST /api/v1/batches", func(*http.Request, []byte) (int, any) {
		return 400, map[string]any{"error": map[string]string{"code": "invalid_field", "message": "base_url: unsupported scheme", "field": "items[1].base_url"}}
	})
	r = f.run(t, "", "batch", "submit", "--host", "prod", path)
	if r.code != ExitFailed || !strings.Contains(r.stderr, "items.csv: line 3: API error: base_url: unsupported scheme (HTTP 400) [invalid_field] field items[1].base_url") {
		t.Errorf("exit %d\n%s", r.code, r.stderr)
	}
	// Unknown host.
	r = f.run(t, "", "batch", "submit", "--host", "staging", path)
	if r.code != ExitFailed || !strings.Contains(r.stderr, `no registered host has the id or name "staging"`) {
		t.Errorf("unknown host: exit %d\n%s", r.code, r.stderr)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestAPIErrorsAndTransport(t *testing.T) {
	f := newFakeAPI(t)
	var out, errb bytes.Buffer
	code := Run(context.Background(), []string{"--api", f.srv.URL, "hosts", "list"}, strings.NewReader(""), &out, &errb)
	if code != ExitFailed || !strings.Contains(errb.String(), "crmctl: API error: a valid bearer token is required (HTTP 401) [unauthorized]") ||
		!strings.Contains(errb.String(), "CRM_API_TOKEN") {
		t.Errorf("no token: %d %s", code, errb.String())
	}
	// Non-JSON error body (an endpoint the server does not have yet).
	r := f.run(t, "", "batch", "rollback", "b-1")
	if r.code != ExitFailed || !strings.Contains(r.stderr, "Cannot POST /api/v1/batches/b-1/rollback (HTTP 404)") {
		t.Errorf("rollback 404: %d %s", r.code, r.stderr)
	}
	// Nothing listening.
	ln := httptest.NewServer(http.NotFoundHandler())
	dead := ln.URL
	ln.Close()
	errb.Reset()
	code = Run(context.Background(), []string{"--api", dead, "hosts", "list"}, strings.NewReader(""), &out, &errb)
	if code != ExitFailed || !strings.Contains(errb.String(), "cannot reach the API") || !strings.Contains(errb.String(), "CRM_API_URL") {
		t.Errorf("dead API: %d %s", code, errb.String())
	}
	// Env defaults.
	t.Setenv("CRM_API_URL", f.srv.URL)
	t.Setenv("CRM_API_TOKEN", "tok")
	out.Reset()
	code = Run(context.Background(), []string{"hosts", "list"}, strings.NewReader(""), &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "prod") {
		t.Errorf("env config: %d %s", code, out.String())
	}
}

func TestRollbackReconcileGeneric(t *testing.T) {
	f := newFakeAPI(t)
	f.handle("POST /api/v1/batches/b-1/reconcile", func(*http.Request, []byte) (int, any) {
		return 200, map[string]any{"id": "r-1", "status": "done", "summary": "1 missing",
			"findings": []map[string]any{{"kind": "missing", "resource_type": "account", "host_resource_id": "42", "name": "crm-a-1", "detail": "gone"}}}
	})
	f.handle("POST /api/v1/batches/b-1/rollback", func(*http.Request, []byte) (int, any) {
		return 202, map[string]any{"batch": map[string]any{"id": "b-1", "status": "running", "item_count": 2, "counts": map[string]int{"ready": 2}}, "message": "rollback queued"}
	})
	r := f.run(t, "", "batch", "reconcile", "b-1")
	if r.code != 0 || !strings.Contains(r.stdout, "findings (1):") || !strings.Contains(r.stdout, "missing  account") || !strings.Contains(r.stdout, "summary:  1 missing") {
		t.Errorf("reconcile: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = f.run(t, "", "batch", "rollback", "b-1")
	if r.code != 0 || !strings.Contains(r.stdout, "status: running  ready=2") || !strings.Contains(r.stdout, "message:  rollback queued") {
		t.Errorf("rollback: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = f.run(t, "", "batch", "rollback", "b-1", "--output", "json")
	var v map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &v) != nil || v["message"] != "rollback queued" {
		t.Errorf("rollback json: %d\n%s", r.code, r.stdout)
	}
}

// --wait: the progress bar redraws one line on a terminal and prints plain lines
// otherwise; the table follows and failed items give exit code 1.
func TestWaitProgressAndTable(t *testing.T) {
	f := newFakeAPI(t)
	var mu sync.Mutex
	polls := 0
	f.handle("GET /api/v1/batches/b-1", func(*http.Request, []byte) (int, any) {
		mu.Lock()
		defer mu.Unlock()
		polls++
		switch {
		case polls == 1:
			return 200, map[string]any{"id": "b-1", "status": "running", "item_count": 2, "counts": map[string]int{"probing": 2}}
		case polls == 2:
			return 200, map[string]any{"id": "b-1", "status": "running", "item_count": 2, "counts": map[string]int{"probing": 2}}
		case polls == 3:
			return 200, map[string]any{"id": "b-1", "status": "running", "item_count": 2, "counts": map[string]int{"confirming": 1, "failed": 1}}
		default:
			return 200, map[string]any{"id": "b-1", "status": "partially_succeeded", "item_count": 2, "counts": map[string]int{"ready": 1, "failed": 1}}
		}
	})
	f.handle("GET /api/v1/batches/b-1/items", func(*http.Request, []byte) (int, any) {
		return 200, map[string]any{"total": 2, "items": []map[string]any{
			{"id": "i-1", "index": 0, "name": "good", "provider": "kimi", "status": "ready", "attempts": 3,
				"corrections": []map[string]string{{"requested": "kimi-k2-6", "resolved": "kimi-k2.6", "method": "separator"}, {"requested": "kimi-k3", "resolved": "kimi-k3", "method": "exact"}}},
			{"id": "i-2", "index": 1, "name": "bad", "provider_hint": "deepseek", "status": "failed", "failure_class": "invalid_key", "attempts": 1},
		}}
	})
	f.handle("POST /api/v1/batches/b-1/retry", func(*http.Request, []byte) (int, any) {
		mu.Lock()
		polls = 0
		mu.Unlock()
		return 200, map[string]any{"batch": map[string]any{"id": "b-1", "status": "running"}, "retried": 1}
	})
	for _, tty := range []bool{false, true} {
		mu.Lock()
		polls = 0
		mu.Unlock()
		var out, errb bytes.Buffer
		e := &env{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &out, stderr: &errb, api: f.srv.URL, token: "tok", output: "table", progressTTY: &tty}
		code := e.run([]string{"batch", "retry", "b-1", "--wait", "--interval", "10ms"})
		if code != ExitFailed {
			t.Errorf("tty=%v: exit %d", tty, code)
		}
		stderr := errb.String()
		if tty {
			if strings.Count(stderr, "\r\x1b[K") != 4 || strings.Count(stderr, "\n") != 3 {
				t.Errorf("tty progress: %q", stderr)
			}
		} else {
			// the repeated poll with unchanged counts is not printed again
			if strings.Contains(stderr, "\r") || strings.Count(stderr, "] ") != 3 {
				t.Errorf("plain progress: %q", stderr)
			}
		}
		if !strings.Contains(stderr, "[###############...............] 1/2 running  confirming=1 failed=1") ||
			!strings.Contains(stderr, "[##############################] 2/2 partially_succeeded  ready=1 failed=1") {
			t.Errorf("progress lines: %q", stderr)
		}
		want := "batch b-1: partially_succeeded  ready=1 failed=1\n" +
			"ITEM  PROVIDER   STATE   FAILURE      ATTEMPTS  MODEL CORRECTIONS\n" +
			"good  kimi       ready   -            3         \"kimi-k2-6\"→kimi-k2.6 (separator)\n" +
			"bad   deepseek?  failed  invalid_key  1\n"
		if out.String() != want {
			t.Errorf("table:\n%s\nwant:\n%s", out.String(), want)
		}
	}
	// JSON: batch and items as the API sent them.
	mu.Lock()
	polls = 10
	mu.Unlock()
	r := f.run(t, "", "batch", "retry", "b-1", "--wait", "--interval", "10ms", "-o", "json")
	var v struct {
		Batch batchView        `json:"batch"`
		Items []map[string]any `json:"items"`
	}
	if r.code != ExitFailed || json.Unmarshal([]byte(r.stdout), &v) != nil || len(v.Items) != 2 || v.Items[1]["failure_class"] != "invalid_key" {
		t.Errorf("json wait: %d %s", r.code, r.stdout)
	}
	// --timeout stops waiting but says how to follow.
	f.handle("GET /api/v1/batches/b-2", func(*http.Request, []byte) (int, any) {
		return 200, map[string]any{"id": "b-2", "status": "running", "item_count": 1, "counts": map[string]int{"probing": 1}}
	})
	f.handle("POST /api/v1/batches/b-2/retry", func(*http.Request, []byte) (int, any) {
		return 200, map[string]any{"batch": map[string]any{"id": "b-2", "status": "running"}, "retried": 0}
	})
	start := time.Now()
	r = f.run(t, "", "batch", "retry", "b-2", "--wait", "--interval", "10ms", "--timeout", "100ms")
	if r.code != ExitFailed || !strings.Contains(r.stderr, "still running after 100ms") || time.Since(start) > 5*time.Second {
		t.Errorf("timeout: %d %s", r.code, r.stderr)
	}
}

func TestProgressBar(t *testing.T) {
	for _, c := range []struct{ done, total, fill int }{{0, 8, 0}, {4, 8, 15}, {8, 8, 30}, {0, 0, 0}, {9, 8, 30}} {
		bar := progressBar(c.done, c.total)
		if len(bar) != barWidth+2 || strings.Count(bar, "#") != c.fill {
			t.Errorf("progressBar(%d,%d) = %s", c.done, c.total, bar)
		}
	}
}

func TestCorrText(t *testing.T) {
	got := corrText([]correction{{"a", "a", "exact", ""}, {"Kimi-K3 ", "kimi-k3", "case", ""}, {"x", "", "unresolved", "x is served only in region cn"},
		{"", "m1", "default", ""}, {"", "m2", "default", ""}})
	if want := `"Kimi-K3 "→kimi-k3 (case), "x"→ (unresolved: x is served only in region cn), chosen: m1, m2`; got != want {
		t.Errorf("got %s want %s", got, want)
	}
}

func TestParseInterspersed(t *testing.T) {
	e := &env{stderr: io.Discard, output: "table"}
	fs := e.newFlagSet(command{name: "x", summary: "x"})
	wait := fs.Bool("wait", false, "")
	name := fs.String("name", "", "")
	pos, err := parse(fs, []string{"a.csv", "--wait", "-o", "json", "--name", "n", "--", "--not-a-flag"})
	if err != nil || !*wait || *name != "n" || e.output != "json" || len(pos) != 2 || pos[0] != "a.csv" || pos[1] != "--not-a-flag" {
		t.Errorf("pos %v wait %v name %q output %q err %v", pos, *wait, *name, e.output, err)
	}
}

func TestShowItemByNumber(t *testing.T) {
	f := newFakeAPI(t)
	f.handle("GET /api/v1/batches/b-1/items", func(*http.Request, []byte) (int, any) {
		return 200, map[string]any{"total": 1, "items": []map[string]any{{"id": "i-1", "index": 0, "name": "good", "status": "ready"}}}
	})
	f.handle("GET /api/v1/batches/b-1/items/i-1", func(*http.Request, []byte) (int, any) {
		at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		return 200, map[string]any{"item": map[string]any{"id": "i-1", "index": 0, "name": "good", "status": "ready", "key_masked": "sk-aaa...0001",
			"failure_class": "", "warnings": []string{"w1"}},
			"attempts": []map[string]any{{"step": "import", "seq": 0, "number": 1, "outcome": "retry", "message": "503 warm-up", "started_at": at, "finished_at": at.Add(1500 * time.Millisecond),
				"evidence": []map[string]any{{"target": "host", "method": "POST", "path": "/api/v1/admin/accounts", "status": 503, "latency_ms": 12, "preview": "busy"}}}}}
	})
	r := f.run(t, "", "batch", "show", "b-1", "--item", "1", "--evidence")
	for _, s := range []string{"item:      #1 good", "id:        i-1", "sk-aaa...0001", "warnings:", "w1", "attempts (1):", "import", "retry", "1.5s", "503 warm-up", "POST /api/v1/admin/accounts → 503", "busy"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("missing %q in\n%s", s, r.stdout)
		}
	}
	if r.code != 0 {
		t.Errorf("exit %d %s", r.code, r.stderr)
	}
	r = f.run(t, "", "batch", "show", "b-1", "--item", "nope")
	if r.code != ExitFailed || !strings.Contains(r.stderr, `no item with the ID, number or name "nope"`) {
		t.Errorf("unknown item: %d %s", r.code, r.stderr)
	}
}

func TestHostsAddSecretFromStdin(t *testing.T) {
	f := newFakeAPI(t)
	f.handle("POST /api/v1/hosts", func(r *http.Request, body []byte) (int, any) {
		return 201, map[string]any{"id": "h-2", "name": "gw", "status": "ok", "auth_kind": "api_key", "admin_key_masked": "admin-...beef"}
	})
	r := f.run(t, "admin-0123456789deadbeef\n", "hosts", "add", "--name", "gw", "--admin-url", "https://gw.example.com", "--admin-key", "-")
	if r.code != 0 || !strings.Contains(r.stdout, "registered host gw (h-2)") || strings.Contains(r.stdout, "admin-0123456789deadbeef") {
		t.Errorf("hosts add: %d %s %s", r.code, r.stdout, r.stderr)
	}
	var req map[string]string
	json.Unmarshal(f.body("POST /api/v1/hosts"), &req) //nolint:errcheck
	if req["admin_api_key"] != "admin-0123456789deadbeef" || req["name"] != "gw" || req["admin_url"] != "https://gw.example.com" {
		t.Errorf("request %v", req)
	}
	f.handle("POST /api/v1/hosts", func(r *http.Request, body []byte) (int, any) {
		return 422, map[string]any{"error": map[string]string{"code": "host_auth_failed", "message": "the host refused the admin key", "field": "admin_api_key"}}
	})
	r = f.run(t, "", "hosts", "add", "--name", "gw", "--admin-url", "https://gw.example.com", "--admin-key", "admin-0123456789deadbeef")
	if r.code != ExitFailed || !strings.Contains(r.stderr, "the host refused the admin key (HTTP 422) [host_auth_failed] field admin_api_key") {
		t.Errorf("auth failed: %d %s", r.code, r.stderr)
	}
}

func TestRollbackWaitPartial(t *testing.T) {
	f := newFakeAPI(t)
	var mu sync.Mutex
	posted := false
	old := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.handle("GET /api/v1/batches/b-1", func(*http.Request, []byte) (int, any) {
		mu.Lock()
		defer mu.Unlock()
		act := map[string]any{"kind": "rollback", "status": "completed", "message": "old", "finished_at": old}
		if posted {
			act = map[string]any{"kind": "rollback", "status": "partial", "message": "1 object(s) could not be deleted",
				"finished_at": old.Add(time.Hour), "objects": []map[string]any{{"resource_type": "account", "host_resource_id": "7", "name": "crm-a", "result": "failed", "detail": "503"}}}
		}
		return 200, map[string]any{"id": "b-1", "status": "partially_succeeded", "item_count": 1, "counts": map[string]int{"ready": 1}, "last_action": act}
	})
	f.handle("POST /api/v1/batches/b-1/rollback", func(*http.Request, []byte) (int, any) {
		mu.Lock()
		posted = true
		mu.Unlock()
		return 202, map[string]any{"status": "queued"}
	})
	r := f.run(t, "", "batch", "rollback", "b-1", "--wait", "--interval", "10ms")
	if r.code != ExitFailed || !strings.Contains(r.stdout, "last action: rollback partial") || !strings.Contains(r.stdout, "failed  account  7") ||
		!strings.Contains(r.stderr, "rollback partial: 1 object(s) could not be deleted") {
		t.Errorf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// batch reconcile --wait shows the run's progress on stderr while it runs, a line per
// change, and the findings on stdout at the end.
func TestReconcileWaitShowsProgress(t *testing.T) {
	f := newFakeAPI(t)
	f.handle("POST /api/v1/batches/b-1/reconcile", func(*http.Request, []byte) (int, any) {
		return 202, map[string]any{"id": "r-1", "status": "queued"}
	})
	var mu sync.Mutex
	polls := 0
	f.handle("GET /api/v1/reconcile-runs/r-1", func(*http.Request, []byte) (int, any) {
		mu.Lock()
		defer mu.Unlock()
		polls++
		switch {
		case polls <= 2:
			return 200, map[string]any{"id": "r-1", "status": "running", "objects_checked": 0, "objects_total": 601}
		case polls <= 4:
			return 200, map[string]any{"id": "r-1", "status": "running", "objects_checked": 400, "objects_total": 601}
		}
		return 200, map[string]any{"id": "r-1", "status": "completed", "summary": "in sync: 601 ledger object(s) match the host",
			"objects_checked": 601, "objects_total": 601, "findings": []any{}}
	})
	r := f.run(t, "", "batch", "reconcile", "b-1", "--wait", "--interval", "1ms", "--timeout", "10s")
	if r.code != 0 || !strings.Contains(r.stdout, "completed") || !strings.Contains(r.stdout, "no differences") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	want := "reconcile run r-1: running, 0 of 601 objects checked\nreconcile run r-1: running, 400 of 601 objects checked\n"
	if !strings.HasSuffix(r.stderr, want) || strings.Count(r.stderr, "objects checked") != 2 {
		t.Errorf("progress on stderr:\n%q\nwant\n%q", r.stderr, want)
	}
}
