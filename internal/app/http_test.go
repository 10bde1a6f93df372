package app

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cn-relay-manager/cn-relay-manager/internal/config"
)

// Every route of the whole HTTP surface (API, pages, asynqmon, metrics, OpenAPI) refuses
// an unauthenticated request, except health, readiness and the login page itself. Pages
// send a browser to the login page; everything else answers 401.
func TestEveryRouteRefusesAnonymous(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Defaults()
	cfg.DataDir, cfg.DatabaseURL, cfg.MasterKey = dir, filepath.Join(dir, "h.db"), "http-test-master-key-000"
	a, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	app, closer := a.HTTPApp("http-test-token-0123456789")
	defer closer.Close()

	anonymous := map[string]bool{"/healthz": true, "/readyz": true, "/login": true}
	checked := 0
	for _, r := range app.GetRoutes(true) {
		if r.Method == "HEAD" || r.Method == "OPTIONS" || r.Method == "CONNECT" || r.Method == "TRACE" || r.Path == "/" && r.Method == "USE" {
			continue
		}
		if r.Method == "USE" || anonymous[r.Path] {
			continue
		}
		path := r.Path
		for _, p := range []string{":id", ":item", "*"} {
			path = strings.ReplaceAll(path, p, "x")
		}
		req := httptest.NewRequest(r.Method, path, nil)
		resp, err := app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		loc := resp.Header.Get("Location")
		switch {
		case resp.StatusCode == 401:
		case r.Method == "GET" && resp.StatusCode/100 == 3 && strings.HasPrefix(loc, "/login"):
		case r.Path == "/" && resp.StatusCode/100 == 3: // the root only redirects to /batches
		default:
			t.Errorf("%s %s without credentials: %d (Location %q)", r.Method, r.Path, resp.StatusCode, loc)
		}
	}
	if checked < 30 {
		t.Fatalf("crawled only %d routes", checked)
	}
	t.Logf("%d routes refuse anonymous requests", checked)

	// Those requests are counted by route pattern, never by path.
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Authorization", "Bearer http-test-token-0123456789")
	resp, err := app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`crm_http_requests_total{method="GET",route="/batches/:id",status_class="3xx"}`,
		`crm_http_requests_total{method="PATCH",route="/api/v1",status_class="4xx"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(string(body), `route="/batches/x"`) {
		t.Error("a request path became a label")
	}
}
