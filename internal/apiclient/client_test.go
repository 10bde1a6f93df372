package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/batch/request"
)

// An API error arrives as *Error with its status, code and field; a success is decoded.
func TestCallDecodesAnswersAndErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(401)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": "unauthorized", "message": "a valid bearer token is required"}}) //nolint:errcheck
			return
		}
		switch r.URL.Path {
		case "/api/v1/batches":
			w.WriteHeader(400)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": "invalid_field", "message": "bad", "field": "items[1].api_key"}}) //nolint:errcheck
		case "/api/v1/hosts":
			json.NewEncoder(w).Encode(map[string]any{"items": []map[string]string{{"id": "h1", "name": "Prod"}}}) //nolint:errcheck
		default:
			w.WriteHeader(404)
			w.Write([]byte("Cannot GET " + r.URL.Path)) //nolint:errcheck
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	c := New(srv.URL, "tok")
	_, err := c.SubmitBatch(ctx, requestOne(), nil)
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Code != "invalid_field" || ae.Field != "items[1].api_key" {
		t.Fatalf("submit: %v", err)
	}
	if id, err := c.ResolveHost(ctx, "prod"); err != nil || id != "h1" {
		t.Fatalf("resolve by name, any case: %q %v", id, err)
	}
	if _, err := c.GetBatch(ctx, "nope", nil); !IsStatus(err, 404) || err.Error() != "Cannot GET /api/v1/batches/nope (HTTP 404)" {
		t.Fatalf("404: %v", err)
	}
	if _, err := New(srv.URL, "").ListHosts(ctx, nil); !IsStatus(err, 401) {
		t.Fatalf("no token: %v", err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	var ue *UnreachableError
	if err := New("http://"+addr, "tok").Ready(ctx); !errors.As(err, &ue) {
		t.Fatalf("nothing listening: %v", err)
	}
}

// Poll checks until done, stops at the timeout with ErrTimeout and with ctx.
func TestPoll(t *testing.T) {
	var n atomic.Int32
	err := Poll(context.Background(), time.Millisecond, time.Minute, func(context.Context) (bool, error) { return n.Add(1) == 3, nil })
	if err != nil || n.Load() != 3 {
		t.Fatalf("done after 3 checks: %v (%d)", err, n.Load())
	}
	if err := Poll(context.Background(), time.Millisecond, 20*time.Millisecond, func(context.Context) (bool, error) { return false, nil }); !errors.Is(err, ErrTimeout) {
		t.Fatalf("timeout: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Poll(ctx, time.Millisecond, 0, func(context.Context) (bool, error) { return false, nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	boom := errors.New("boom")
	if err := Poll(context.Background(), time.Millisecond, 0, func(context.Context) (bool, error) { return false, boom }); !errors.Is(err, boom) {
		t.Fatalf("check error: %v", err)
	}
}

func requestOne() request.Batch {
	return request.Batch{HostID: "h1", Items: []request.Item{{BaseURL: "https://x.example", APIKey: "k"}}}
}
