package api

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// requestLines parses the "http request" lines of a JSON log.
func requestLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m["msg"] == "http request" {
			out = append(out, m)
		}
	}
	return out
}

func TestRequestLogIsJSONWithIDsAndNoSecrets(t *testing.T) {
	var buf syncBuffer
	// A JSON logger at debug level, so that health-check lines show up too.
	app, enq, _ := newTestServerLogging(t, slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	hostID := registerHost(t, app)

	const apiKey = "sk-logsecret-0123456789abcdef"
	send := func(method, path, body, auth, reqID string) (int, string, map[string]any) {
		t.Helper()
		var r io.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		req := httptest.NewRequest(method, path, r)
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		if reqID != "" {
			req.Header.Set(HeaderRequestID, reqID)
		}
		resp, err := app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		return resp.StatusCode, resp.Header.Get(HeaderRequestID), m
	}

	code, echoed, m := send("POST", "/api/v1/batches?note=x", `{"host_id":"`+hostID+`","items":[{"base_url":"https://api.deepseek.com","api_key":"`+apiKey+`"}]}`, token, "req-submit-1")
	if code != 201 || echoed != "req-submit-1" {
		t.Fatalf("submit: %d, echoed %q", code, echoed)
	}
	if len(enq.ids) != 1 {
		t.Fatalf("enqueued %v", enq.ids)
	}
	batchID := m["batch"].(map[string]any)["id"].(string)
	code, _, m = send("GET", "/api/v1/batches/"+batchID+"/items", "", token, "")
	if code != 200 {
		t.Fatalf("items: %d", code)
	}
	itemID := m["items"].([]any)[0].(map[string]any)["id"].(string)
	code, genID, _ := send("GET", "/api/v1/batches/"+batchID+"/items/"+itemID, "", token, "")
	if code != 200 || len(genID) < 16 {
		t.Fatalf("item: %d, generated request id %q", code, genID)
	}
	code, _, _ = send("GET", "/api/v1/hosts", "", "wrong-token-must-not-be-logged", "bad id with spaces")
	if code != 401 {
		t.Fatalf("wrong token: %d", code)
	}
	code, _, _ = send("POST", "/api/v1/batches", `{"host_id":"`+hostID+`","items":[{"base_url":"ftp://x","api_key":"`+apiKey+`"}]}`, token, "req-bad-1")
	if code != 400 {
		t.Fatalf("bad submit: %d", code)
	}
	send("GET", "/healthz", "", "", "")

	log := buf.String()
	for _, secret := range []string{token, "wrong-token-must-not-be-logged", apiKey, "logsecret", "admin-secret-key", "Bearer", "note=x"} {
		if strings.Contains(log, secret) {
			t.Errorf("log contains %q:\n%s", secret, log)
		}
	}
	lines := requestLines(t, log)
	byID := map[string]map[string]any{}
	for _, l := range lines {
		id, _ := l["request_id"].(string)
		if id == "" {
			t.Errorf("line without request_id: %v", l)
		}
		for _, k := range []string{"method", "path", "status", "latency_ms"} {
			if _, ok := l[k]; !ok {
				t.Errorf("line without %s: %v", k, l)
			}
		}
		byID[id] = l
	}
	if l := byID["req-submit-1"]; l == nil || l["status"] != float64(201) || l["path"] != "/api/v1/batches" || l["batch_id"] != batchID || l["method"] != "POST" {
		t.Errorf("submit line: %v", l)
	}
	if l := byID[genID]; l == nil || l["batch_id"] != batchID || l["item_id"] != itemID || l["route"] != "/api/v1/batches/:id/items/:item" {
		t.Errorf("item line: %v", l)
	}
	if l := byID["req-bad-1"]; l == nil || l["status"] != float64(400) {
		t.Errorf("400 line: %v", l)
	}
	found401 := false
	for _, l := range lines {
		if l["status"] == float64(401) {
			found401 = true
			if l["request_id"] == "bad id with spaces" {
				t.Error("an unsafe client request id was kept")
			}
		}
		if l["path"] == "/healthz" && l["level"] != "DEBUG" {
			t.Errorf("health check logged at %v", l["level"])
		}
	}
	if !found401 {
		t.Error("no line for the 401")
	}
}
