package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
	"github.com/cn-relay-manager/cn-relay-manager/internal/testpg"
)

// forEachStore runs fn against an API on a fresh SQLite database and on a fresh
// PostgreSQL one: bad bytes must be refused the same way whichever database is behind.
func forEachStore(t *testing.T, fn func(t *testing.T, app *fiber.App, st *store.Store, enq *fakeEnqueuer)) {
	for _, db := range []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{store.DialectSQLite, func(t *testing.T) string { return filepath.Join(t.TempDir(), "api.db") }},
		{store.DialectPostgres, func(t *testing.T) string { return testpg.Start(t) }},
	} {
		t.Run(db.name, func(t *testing.T) {
			app, enq, st := newTestServerOn(t, db.dsn(t), slog.New(slog.NewTextHandler(io.Discard, nil)))
			fn(t, app, st, enq)
		})
	}
}

// setField returns a copy of the JSON document doc with the string at path (dotted, with
// [i] for array elements) replaced by value.
func setField(t *testing.T, doc, path, value string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatal(err)
	}
	cur := v
	parts := strings.Split(strings.NewReplacer("[", ".", "]", "").Replace(path), ".")
	for i, p := range parts {
		last := i == len(parts)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				c[p] = value
			} else {
				cur = c[p]
			}
		case []any:
			var n int
			fmt.Sscan(p, &n)
			if last {
				c[n] = value
			} else {
				cur = c[n]
			}
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// A NUL (or another C0 control character) in any string field of a write endpoint is a
// 400 naming the field, on SQLite and PostgreSQL alike, and nothing is written.
func TestControlCharactersRefusedInEveryField(t *testing.T) {
	forEachStore(t, func(t *testing.T, app *fiber.App, st *store.Store, enq *fakeEnqueuer) {
		ctx := context.Background()
		hostDoc := `{"name":"h-ctl","admin_url":"http://127.0.0.1:1","public_url":"http://127.0.0.1:2","admin_api_key":"admin-secret-key-0123456789abcdef"}`
		pwDoc := `{"name":"h-pw","admin_url":"http://127.0.0.1:1","admin_email":"a@b.c","admin_password":"pw-0123456789"}`
		for _, c := range []struct{ doc, field string }{
			{hostDoc, "name"}, {hostDoc, "admin_url"}, {hostDoc, "public_url"}, {hostDoc, "admin_api_key"},
			{pwDoc, "admin_email"}, {pwDoc, "admin_password"},
		} {
			for _, bad := range []string{"\x00", "\x1b[31m", "a\tb", "a\nb"} {
				body := setField(t, c.doc, c.field, "x"+bad+"y")
				code, m, raw := call(t, app, "POST", "/api/v1/hosts", body, true)
				if e, _ := m["error"].(map[string]any); code != 400 || e["field"] != c.field {
					t.Errorf("host %s = %q: %d %s, want 400 naming %s", c.field, bad, code, raw, c.field)
				}
			}
		}
		if hosts, _ := st.ListHosts(ctx); len(hosts) != 0 {
			t.Fatalf("refused hosts were stored: %d", len(hosts))
		}
		hostID := registerHost(t, app)
		batchDoc := `{"host_id":"` + hostID + `","name":"b","mode":"self_service","items":[{"name":"n","base_url":"https://api.deepseek.com","api_key":"sk-abcdef1234567890","provider":"deepseek","models":["deepseek-flash","deepseek-pro"]}]}`
		for _, field := range []string{"host_id", "name", "mode", "items[0].name", "items[0].base_url", "items[0].api_key", "items[0].provider", "items[0].models[1]"} {
			bads := []string{"\x00", "\x07", "\x1f"}
			if field != "name" && field != "items[0].name" {
				bads = append(bads, "\t", "\n") // only the free-text names may hold these
			}
			for _, bad := range bads {
				body := setField(t, batchDoc, field, "x"+bad+"y")
				code, m, raw := call(t, app, "POST", "/api/v1/batches", body, true)
				if e, _ := m["error"].(map[string]any); code != 400 || e["field"] != field || !strings.Contains(raw, "control character") {
					t.Errorf("batch %s = %q: %d %s, want 400 naming %s", field, bad, code, raw, field)
				} else if msg, _ := e["message"].(string); strings.HasPrefix(field, "items[0]") != strings.HasPrefix(msg, "item 1: ") {
					t.Errorf("batch %s: message %q, want items counted from 1", field, msg)
				}
			}
		}
		if batches, total, _ := st.ListBatches(ctx, store.BatchFilter{}); total != 0 || len(enq.ids) != 0 {
			t.Fatalf("refused batches were stored (%d) or enqueued (%v): %+v", total, enq.ids, batches)
		}
		// Query parameters: refused by name instead of reaching the database.
		code, m, raw := call(t, app, "GET", "/api/v1/resources?host_id=%00", "", true)
		if e, _ := m["error"].(map[string]any); code != 400 || e["field"] != "host_id" {
			t.Errorf("query NUL: %d %s", code, raw)
		}
		code, m, raw = call(t, app, "GET", "/api/v1/reconcile-runs?batch_id=a%1Bb", "", true)
		if e, _ := m["error"].(map[string]any); code != 400 || e["field"] != "batch_id" {
			t.Errorf("query ESC: %d %s", code, raw)
		}
		// Free text keeps its tabs and newlines, read back unchanged from the database.
		body := setField(t, setField(t, batchDoc, "name", "June\tbatch\nsecond line"), "items[0].name", "中文\tname")
		code, m, raw = call(t, app, "POST", "/api/v1/batches", body, true)
		if code != 201 {
			t.Fatalf("free text refused: %d %s", code, raw)
		}
		id, _ := m["batch"].(map[string]any)["id"].(string)
		b, err := st.GetBatch(ctx, id)
		items, _, _ := st.ListItems(ctx, id, 10, 0)
		if err != nil || b.Name != "June\tbatch\nsecond line" || len(items) != 1 || items[0].Name != "中文\tname" {
			t.Fatalf("free text round trip: %v %q %+v", err, b.Name, items)
		}
	})
}

// A body over the limit is answered 413 with the JSON error naming the limit, over a
// real connection, every time (no connection reset while the client is still sending).
func TestBodyOverLimitIs413(t *testing.T) {
	forEachStore(t, func(t *testing.T, app *fiber.App, _ *store.Store, _ *fakeEnqueuer) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go app.Listener(LingerListener(ln)) //nolint:errcheck
		t.Cleanup(func() { _ = app.Shutdown() })
		body := bytes.Repeat([]byte(" "), 40<<20)
		for i := 0; i < 5; i++ {
			req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/api/v1/batches", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("attempt %d: %v", i, err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var m struct {
				Error APIError `json:"error"`
			}
			if resp.StatusCode != 413 || json.Unmarshal(raw, &m) != nil || m.Error.Code != "body_too_large" ||
				!strings.Contains(m.Error.Message, "32 MiB") || !strings.Contains(m.Error.Message, "33554432") {
				t.Fatalf("attempt %d: %d %s", i, resp.StatusCode, raw)
			}
		}
	})
}
