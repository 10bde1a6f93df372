package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/cn-relay-manager/cn-relay-manager/internal/batch"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
	"github.com/cn-relay-manager/cn-relay-manager/internal/testpg"
)

// fuzzHostID is the host every fuzzed batch may name.
const fuzzHostID = "fuzz-host"

type fuzzTarget struct {
	name string
	app  *fiber.App
	st   *store.Store
}

// fuzzTargets is the API on a SQLite and on a PostgreSQL database, each with the host
// fuzzHostID registered: every fuzz input runs against both, through the full handler,
// into the real store.
func fuzzTargets(f *testing.F) []fuzzTarget {
	f.Helper()
	var out []fuzzTarget
	for _, db := range []struct{ name, dsn string }{
		{store.DialectSQLite, filepath.Join(f.TempDir(), "fuzz.db")},
		{store.DialectPostgres, testpg.Start(f)},
	} {
		app, _, st := newTestServerOn(f, db.dsn, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err := st.CreateHost(context.Background(), &store.Host{ID: fuzzHostID, Name: "fuzz", AdminURL: "http://127.0.0.1:1",
			PublicURL: "http://127.0.0.1:1", AuthKind: "api_key"}); err != nil {
			f.Fatal(err)
		}
		out = append(out, fuzzTarget{db.name, app, st})
	}
	return out
}

// serve runs one request through the app's handler (no network: fast enough to fuzz).
func serve(app *fiber.App, method, uri string, body []byte) (int, []byte) {
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.SetContentType("application/json")
	req.SetBody(body)
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, nil)
	app.Handler()(&ctx)
	return ctx.Response.StatusCode(), append([]byte(nil), ctx.Response.Body()...)
}

// checkAnswer fails on a 5xx, and on an error answer that is not the JSON error body with
// a code and a message.
func checkAnswer(t *testing.T, db string, status int, body []byte) {
	t.Helper()
	if status >= 500 {
		t.Fatalf("%s: %d %s", db, status, body)
	}
	if status >= 400 {
		var e struct {
			Error APIError `json:"error"`
		}
		if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Fatalf("%s: %d with a body that is not the JSON error: %s", db, status, body)
		}
		if status == 400 && e.Error.Code != "invalid_field" {
			t.Fatalf("%s: 400 with code %q", db, e.Error.Code)
		}
	}
}

// FuzzSubmitBatch posts arbitrary bodies to POST /api/v1/batches on SQLite and PostgreSQL:
// never a 5xx, every refusal the JSON error, the same answer from both databases, and an
// accepted batch stored with exactly the items and name that were sent.
func FuzzSubmitBatch(f *testing.F) {
	for _, seed := range []string{
		`{"host_id":"fuzz-host","items":[{"base_url":"https://api.deepseek.com","api_key":"sk-1","models":["deepseek-flash"]}]}`,
		`{"host_id":"fuzz-host","name":"June\tbatch","mode":"subscription","window":{"deadline_s":60,"schedule_s":[2,5]},"items":[{"base_url":"https://api.moonshot.cn/v1/chat/completions","api_key":"k","name":"a\nb"}]}`,
		`{"host_id":"fuzz-host","name":"bad\u0000name","items":[{"base_url":"https://api.deepseek.com","api_key":"k"}]}`,
		`{"host_id":"fuzz-host","items":[{"base_url":"https://api.deepseek.com","api_key":"k","models":["a\u0000b"]}]}`,
		`{"host_id":"fuzz-\u0000host","items":[{"base_url":"https://api.deepseek.com","api_key":"k"}]}`,
		`{"host_id":"fuzz-host","items":[{"base_url":"https://` + strings.Repeat("a", 300) + `.example","api_key":"k"}]}`,
		`{"host_id":"fuzz-host","items":[{"base_url":"ftp://x","api_key":"k"}]}`,
		`{"host_id":"fuzz-host","items":[{"base_url":"http://169.254.169.254","api_key":"k"}]}`,
		`{"host_id":"fuzz-host","items":[{"base_url":"https://api.deepseek.com","api_key":"k","provider":"\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"}]}`,
		`{"items":[]}`, `[]`, `{"host_id":1}`, `{"host_id":"fuzz-host","items":[{"api_key":"a b"}]}`, `{"x":1}`, `{`, "\xff\xfe",
	} {
		f.Add([]byte(seed))
	}
	targets := fuzzTargets(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		var statuses []int
		for _, tg := range targets {
			status, answer := serve(tg.app, "POST", "/api/v1/batches", body)
			checkAnswer(t, tg.name, status, answer)
			statuses = append(statuses, status)
			if status != 201 {
				continue
			}
			var got struct {
				Batch store.Batch `json:"batch"`
			}
			var sent batch.Request
			if err := json.Unmarshal(answer, &got); err != nil || json.Unmarshal(body, &sent) != nil {
				t.Fatalf("%s: accepted %s → %s", tg.name, body, answer)
			}
			b, err := tg.st.GetBatch(context.Background(), got.Batch.ID)
			if err != nil {
				t.Fatalf("%s: accepted batch not stored: %v", tg.name, err)
			}
			items, total, err := tg.st.ListItems(context.Background(), b.ID, 1, 0)
			if err != nil || total != len(sent.Items) || b.ItemCount != total || len(items) != min(1, total) {
				t.Fatalf("%s: stored %d items (%v), sent %d", tg.name, total, err, len(sent.Items))
			}
			if b.Name != strings.TrimSpace(sent.Name) {
				t.Fatalf("%s: stored name %q, sent %q", tg.name, b.Name, sent.Name)
			}
			for _, it := range items {
				if !strings.HasPrefix(it.APIKeyEnc, "v1:") {
					t.Fatalf("%s: key not sealed", tg.name)
				}
				if it.NormalizedURL == "" || it.Provider == "" || it.DetectedBy == "" {
					t.Fatalf("%s: accepted item without base or provider: %+v", tg.name, it)
				}
			}
		}
		if statuses[0] != statuses[1] {
			t.Fatalf("SQLite answered %d, PostgreSQL %d for %q", statuses[0], statuses[1], body)
		}
	})
}

// FuzzCreateHost posts arbitrary bodies to POST /api/v1/hosts on SQLite and PostgreSQL:
// never a 5xx, every refusal the JSON error, the same answer from both databases, and an
// accepted host stored under the name that was sent.
func FuzzCreateHost(f *testing.F) {
	for _, seed := range []string{
		`{"name":"h1","admin_url":"http://127.0.0.1:1","admin_api_key":"admin-secret-key-0123456789abcdef"}`,
		`{"name":"h2","admin_url":"http://127.0.0.1:2","public_url":"https://relay.example","admin_email":"a@b.c","admin_password":"pw-0123456789"}`,
		`{"name":"h\u0000","admin_url":"http://127.0.0.1:1","admin_api_key":"k"}`,
		`{"name":"h3","admin_url":"http://127.0.0.1:1","admin_email":"` + strings.Repeat("a", 400) + `@b.c","admin_password":"pw"}`,
		`{"name":"h4","admin_url":"http://127.0.0.1:1/\u0007","admin_api_key":"k"}`,
		`{"name":"` + strings.Repeat("名", 150) + `","admin_url":"http://127.0.0.1:1","admin_api_key":"k"}`,
		`{"name":"h5","admin_url":"not a url","admin_api_key":"x"}`, `{"name":1}`, `{}`, `{`, "\x00",
	} {
		f.Add([]byte(seed))
	}
	targets := fuzzTargets(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		var statuses []int
		for _, tg := range targets {
			status, answer := serve(tg.app, "POST", "/api/v1/hosts", body)
			checkAnswer(t, tg.name, status, answer)
			statuses = append(statuses, status)
			if status != 201 {
				continue
			}
			var got store.Host
			var sent hostRequest
			if err := json.Unmarshal(answer, &got); err != nil || json.Unmarshal(body, &sent) != nil {
				t.Fatalf("%s: accepted %s → %s", tg.name, body, answer)
			}
			h, err := tg.st.GetHost(context.Background(), got.ID)
			if err != nil || h.Name != strings.TrimSpace(sent.Name) {
				t.Fatalf("%s: stored host %+v (%v), sent name %q", tg.name, h, err, sent.Name)
			}
		}
		if statuses[0] != statuses[1] {
			t.Fatalf("SQLite answered %d, PostgreSQL %d for %q", statuses[0], statuses[1], body)
		}
	})
}
