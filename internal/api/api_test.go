package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/hibiken/asynq"

	"github.com/cn-relay-manager/cn-relay-manager/internal/batch"
	"github.com/cn-relay-manager/cn-relay-manager/internal/catalog"
	"github.com/cn-relay-manager/cn-relay-manager/internal/egress"
	"github.com/cn-relay-manager/cn-relay-manager/internal/hostreg"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
	"github.com/cn-relay-manager/cn-relay-manager/jobs"
)

type fakeEnqueuer struct {
	mu  sync.Mutex
	ids []string
}

func (f *fakeEnqueuer) EnqueueContext(_ context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, o := range opts {
		if o.Type() == asynq.TaskIDOpt {
			f.ids = append(f.ids, o.Value().(string))
		}
	}
	if bytes.Contains(t.Payload(), []byte("sk-")) {
		panic("secret in task payload")
	}
	return &asynq.TaskInfo{}, nil
}

type fakeProber struct{ status string }

func (p fakeProber) ProbeHost(_ context.Context, h *store.Host) error {
	h.Version, h.Profile, h.Status = "0.1.179", "0.1.179", p.status
	if p.status == "auth_failed" {
		h.StatusMessage = "the host refused the admin credentials"
	}
	return nil
}

const token = "test-token-0123456789"

func newTestServer(t *testing.T) (*fiber.App, *fakeEnqueuer, *store.Store) {
	t.Helper()
	return newTestServerLogging(t, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func newTestServerLogging(t *testing.T, log *slog.Logger) (*fiber.App, *fakeEnqueuer, *store.Store) {
	t.Helper()
	return newTestServerOn(t, filepath.Join(t.TempDir(), "api.db"), log)
}

// newTestServerOn is newTestServer on the database at dsn (a SQLite path or a PostgreSQL
// DSN from testpg).
func newTestServerOn(t testing.TB, dsn string, log *slog.Logger) (*fiber.App, *fakeEnqueuer, *store.Store) {
	t.Helper()
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	box, _ := secret.NewBox("api-test-master-key-000")
	enq := &fakeEnqueuer{}
	batches := &batch.Service{Store: st, Queue: &jobs.Queue{Client: enq}, Box: box, Catalog: catalog.Default(), Egress: egress.Policy{}}
	s := &Server{Store: st, Batches: batches, Hosts: &hostreg.Service{Store: st, Box: box, Prober: fakeProber{status: "ok"}}, Token: token, Log: log}
	return s.NewApp(), enq, st
}

func call(t *testing.T, app *fiber.App, method, path, body string, auth bool) (int, map[string]any, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	req.Header.Set("Content-Type", "application/json")
	if auth {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, string(raw)
}

func registerHost(t *testing.T, app *fiber.App) string {
	t.Helper()
	code, m, raw := call(t, app, "POST", "/api/v1/hosts", `{"name":"h1","admin_url":"http://127.0.0.1:1","admin_api_key":"admin-secret-key-0123456789abcdef"}`, true)
	if code != 201 {
		t.Fatalf("register: %d %s", code, raw)
	}
	if strings.Contains(raw, "admin-secret-key-0123456789abcdef") || m["admin_key_masked"] != "admin-...cdef" {
		t.Fatalf("admin key not masked: %s", raw)
	}
	return m["id"].(string)
}

// Every route but health answers 401 without a token (crawls the router).
func TestEveryRouteNeedsAuth(t *testing.T) {
	app, _, _ := newTestServer(t)
	n := 0
	for _, r := range app.GetRoutes(true) {
		if r.Method == "HEAD" || r.Method == "OPTIONS" || r.Method == "CONNECT" || r.Method == "TRACE" {
			continue
		}
		path := strings.NewReplacer(":id", "x", ":item", "y").Replace(r.Path)
		code, _, _ := call(t, app, r.Method, path, "", false)
		switch r.Path {
		case "/healthz", "/readyz":
			if code != 200 {
				t.Errorf("%s %s: %d, want 200", r.Method, r.Path, code)
			}
		default:
			n++
			if code != 401 {
				t.Errorf("%s %s without auth: %d, want 401", r.Method, r.Path, code)
			}
		}
	}
	if n < 10 {
		t.Fatalf("crawled only %d routes", n)
	}
}

func TestSubmitValidationNamesTheField(t *testing.T) {
	app, enq, _ := newTestServer(t)
	hostID := registerHost(t, app)
	cases := []struct{ body, field string }{
		{`{"host_id":"` + hostID + `","items":[{"base_url":"ftp://x","api_key":"k"}]}`, "items[0].base_url"},
		{`{"host_id":"` + hostID + `","items":[{"base_url":"https://api.deepseek.com","api_key":""}]}`, "items[0].api_key"},
		{`{"host_id":"` + hostID + `","items":[{"base_url":"https://api.deepseek.com","api_key":"k","bogus":1}]}`, "bogus"},
		{`{"host_id":"` + hostID + `","mode":"free","items":[{"base_url":"https://api.deepseek.com","api_key":"k"}]}`, "mode"},
		{`{"host_id":"nope","items":[{"base_url":"https://api.deepseek.com","api_key":"k"}]}`, "host_id"},
		{`{"host_id":"` + hostID + `","items":[]}`, "items"},
		{`{"host_id":"` + hostID + `","items":[{"base_url":"https://api.deepseek.com","api_key":"k","models":"x"}]}`, "items.models"},
		{`{"host_id":"` + hostID + `","window":{"schedule_s":[0]},"items":[{"base_url":"https://api.deepseek.com","api_key":"k"}]}`, "window.schedule_s"},
		{`{"host_id":"` + hostID + `","items":[{"base_url":"https://api.deepseek.com","api_key":"k1"},{"base_url":"https://api.deepseek.com","api_key":"k1"}]}`, "items[1].api_key"},
		{`{"host_id":"` + hostID + `","items":[{"base_url":"http://169.254.169.254/latest","api_key":"k"}]}`, "items[0].base_url"},
		{`{"host_id":"` + hostID + `","items":[{"base_url":"http://10.0.0.7/v1","api_key":"k"}]}`, "items[0].base_url"},
	}
	for _, c := range cases {
		code, m, raw := call(t, app, "POST", "/api/v1/batches", c.body, true)
		e, _ := m["error"].(map[string]any)
		if code != 400 || e == nil || e["field"] != c.field {
			t.Errorf("body %s: got %d %s, want 400 naming %s", c.body, code, raw, c.field)
		}
	}
	if len(enq.ids) != 0 {
		t.Fatalf("rejected submissions enqueued tasks: %v", enq.ids)
	}
	// An oversized body is refused by the server before any handler runs.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln)  //nolint:errcheck
	defer app.Shutdown() //nolint:errcheck
	req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/api/v1/batches", strings.NewReader(strings.Repeat("x", MaxBodyBytes+10)))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Errorf("oversized body: %d, want 413", resp.StatusCode)
		}
	} // a reset connection is also a refusal
}

func TestSubmitWritesBatchAndEnqueuesIDsOnly(t *testing.T) {
	app, enq, st := newTestServer(t)
	hostID := registerHost(t, app)
	body := `{"host_id":"` + hostID + `","items":[{"base_url":"https://api.deepseek.com/chat/completions","api_key":"sk-abcdef123456789","models":["deepseek-flash"]},{"base_url":"https://api.moonshot.cn/v1","api_key":"sk-zyxw987654321000"}]}`
	code, m, raw := call(t, app, "POST", "/api/v1/batches", body, true)
	if code != 201 {
		t.Fatalf("submit: %d %s", code, raw)
	}
	if strings.Contains(raw, "sk-abcdef123456789") {
		t.Fatal("api key in the response")
	}
	b := m["batch"].(map[string]any)
	id := b["id"].(string)
	if len(enq.ids) != 2 || !strings.HasPrefix(enq.ids[0], "import:") || !strings.HasSuffix(enq.ids[0], ":0") {
		t.Fatalf("task ids: %v", enq.ids)
	}
	code, m, raw = call(t, app, "GET", "/api/v1/batches/"+id+"/items", "", true)
	if code != 200 || strings.Contains(raw, "sk-abcdef123456789") || !strings.Contains(raw, "sk-abc...6789") {
		t.Fatalf("items: %d %s", code, raw)
	}
	items := m["items"].([]any)
	first := items[0].(map[string]any)
	if first["normalized_url"] != "https://api.deepseek.com" {
		t.Errorf("normalized url: %v", first["normalized_url"])
	}
	// The key is sealed at rest.
	it, _ := st.GetItem(context.Background(), first["id"].(string))
	if strings.Contains(it.APIKeyEnc, "abcdef") || !strings.HasPrefix(it.APIKeyEnc, "v1:") {
		t.Fatal("key stored in plain text")
	}
	code, m, _ = call(t, app, "POST", "/api/v1/batches/"+id+"/cancel", "", true)
	if code != 200 || m["cancelled"].(float64) != 2 {
		t.Fatalf("cancel: %d %v", code, m)
	}
	code, m, _ = call(t, app, "GET", "/api/v1/batches/"+id, "", true)
	if code != 200 || m["status"] != store.BatchCancelled {
		t.Fatalf("after cancel: %v", m)
	}
	code, _, _ = call(t, app, "GET", "/api/v1/batches/does-not-exist", "", true)
	if code != 404 {
		t.Errorf("unknown batch: %d", code)
	}
}

func TestRegisterHostRejectsBadCredentials(t *testing.T) {
	app, _, _ := newTestServer(t)
	code, m, raw := call(t, app, "POST", "/api/v1/hosts", `{"name":"h","admin_url":"not a url","admin_api_key":"x"}`, true)
	if code != 400 || m["error"].(map[string]any)["field"] != "admin_url" {
		t.Fatalf("bad url: %d %s", code, raw)
	}
	code, m, raw = call(t, app, "POST", "/api/v1/hosts", `{"name":"h","admin_url":"http://x"}`, true)
	if code != 400 || m["error"].(map[string]any)["field"] != "admin_api_key" {
		t.Fatalf("no credentials: %d %s", code, raw)
	}
}

// A submission retried with the same Idempotency-Key (its answer was lost) returns the
// first batch instead of creating a second one.
func TestSubmitIdempotencyKeyReplays(t *testing.T) {
	app, enq, _ := newTestServer(t)
	hostID := registerHost(t, app)
	body := `{"host_id":"` + hostID + `","items":[{"base_url":"https://api.deepseek.com","api_key":"sk-idem-0123456789"}]}`
	send := func() (int, map[string]any, string) {
		req := httptest.NewRequest("POST", "/api/v1/batches", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Idempotency-Key", "submit-2026-11-27-a")
		resp, err := app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		return resp.StatusCode, m, resp.Header.Get("Idempotency-Replayed")
	}
	code1, m1, _ := send()
	code2, m2, replayed := send()
	if code1 != 201 || code2 != 200 || replayed != "true" {
		t.Fatalf("first %d, second %d replayed=%q", code1, code2, replayed)
	}
	id1 := m1["batch"].(map[string]any)["id"]
	if id2 := m2["batch"].(map[string]any)["id"]; id1 != id2 {
		t.Fatalf("replay returned another batch: %v vs %v", id1, id2)
	}
	if len(enq.ids) != 1 {
		t.Fatalf("replay enqueued again: %v", enq.ids)
	}
	_, list, _ := call(t, app, "GET", "/api/v1/batches", "", true)
	if list["total"].(float64) != 1 {
		t.Fatalf("batches after a replay: %v", list["total"])
	}
}
