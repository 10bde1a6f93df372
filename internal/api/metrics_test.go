package api

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

type requestCounter struct {
	mu   sync.Mutex
	seen []string
}

func (r *requestCounter) ObserveRequest(method, route string, status int, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, fmt.Sprintf("%s %s %d", method, route, status))
}

// Every request is counted under its route pattern, never its path (the label stays
// bounded however many IDs are asked for); a request no route matched is "unmatched".
func TestRequestsCountedByRoute(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	rc := &requestCounter{}
	s := &Server{Store: st, Token: token, Metrics: rc}
	app := s.NewApp()
	app.Use(func(c *fiber.Ctx) error { return fiber.ErrNotFound }) // the process's catch-all, as internal/app adds it
	for _, p := range []string{"/healthz", "/api/v1/batches/one", "/api/v1/batches/two", "/no/such/page"} {
		req := httptest.NewRequest("GET", p, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if _, err := app.Test(req, -1); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"GET /healthz 200", "GET /api/v1/batches/:id 404", "GET /api/v1/batches/:id 404", "GET  404"}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if fmt.Sprint(rc.seen) != fmt.Sprint(want) {
		t.Errorf("counted %q, want %q", rc.seen, want)
	}
}
