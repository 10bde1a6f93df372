package bench

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/apiclient"
)

func TestBenchBoundFromEvidence(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ex := func(target, path string, status int) map[string]any {
		return map[string]any{"target": target, "method": "GET", "path": path, "status": status}
	}
	att := func(outcome string, at time.Time, ev ...map[string]any) map[string]any {
		return map[string]any{"outcome": outcome, "evidence": ev, "started_at": at, "finished_at": at.Add(time.Second)}
	}
	// import: 2 upstream + 1 host; probe: account test (nested upstream); closure: one
	// wait, an early re-check, then the chat through the gateway (nested upstream).
	attempts := []map[string]any{
		att("ok", t0, ex("upstream", "/models", 200), ex("upstream", "/chat/completions", 200), ex("host", "/api/v1/admin/accounts", 200)),
		att("ok", t0.Add(2*time.Second), ex("host", "/api/v1/admin/accounts/1/test", 200)),
		att("waiting", t0.Add(3*time.Second), ex("gateway", "/v1/models", 200)),
		att("waiting", t0.Add(30*time.Second), ex("gateway", "/v1/models", 200)),
		att("ok", t0.Add(40*time.Second), ex("host", "/api/v1/admin/users/2", 500), ex("host", "/api/v1/admin/users/2", 200), ex("gateway", "/v1/chat/completions", 200)),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/items"):
			if r.URL.Query().Get("page") != "1" {
				_ = json.NewEncoder(w).Encode(map[string]any{"items": []any{}})
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"items": []any{map[string]any{"id": "a"}, map[string]any{"id": "b"}}})
		default:
			_ = json.NewEncoder(w).Encode(map[string]any{"attempts": attempts})
		}
	}))
	defer srv.Close()
	o := Options{Items: 2, Concurrency: 1, Sample: 2, HostLatency: 100 * time.Millisecond, UpstreamLatency: time.Second, Warmup: 30 * time.Second}
	b, err := deriveBound(context.Background(), apiclient.New(srv.URL, "t"), "batch", o)
	if err != nil {
		t.Fatal(err)
	}
	// pre: 2 up (2 s) + host (0.1) + test (0.1 + 1 nested) + models (0.1) = 3.3 s
	// post: 2 host (0.2) + fault back-off (0.2) + chat (0.1 + 1 nested) = 1.5 s
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !near(b.SlotPreS, 3.3) || !near(b.SlotPostS, 1.5) || !near(b.FaultsPerItem, 1) || !near(b.NestedPerItem, 2) {
		t.Fatalf("bound terms: %+v", b)
	}
	if !near(b.CapacityTermS, 2*4.8) || !near(b.LatencyTermS, 2*3.3+30+1+1.5) {
		t.Fatalf("bound: capacity %v latency %v", b.CapacityTermS, b.LatencyTermS)
	}
	// Two worker processes of one slot each: C = 2.
	o.Workers = 2
	if b, err = deriveBound(context.Background(), apiclient.New(srv.URL, "t"), "batch", o); err != nil {
		t.Fatal(err)
	}
	if b.Slots != 2 || !near(b.CapacityTermS, 4.8) || !near(b.LatencyTermS, 3.3+30+1+1.5) {
		t.Fatalf("two workers: slots %d, capacity %v latency %v", b.Slots, b.CapacityTermS, b.LatencyTermS)
	}
	if b.CapTermS != 0 || !near(b.SlotUpstreamS, 2) {
		t.Fatalf("no caps configured: cap term %v, S_up %v", b.CapTermS, b.SlotUpstreamS)
	}
	// Caps tighter than the slots: a host cap of 1 serialises every step (N·S/H), an
	// upstream cap of 1 the probes' direct calls (N·S_up/U = 2 × 2 s).
	o.HostCap, o.UpstreamCap = 1, 0
	if b, err = deriveBound(context.Background(), apiclient.New(srv.URL, "t"), "batch", o); err != nil {
		t.Fatal(err)
	}
	if !near(b.CapTermS, 2*4.8) {
		t.Fatalf("host cap 1: cap term %v, want %v", b.CapTermS, 2*4.8)
	}
	o.HostCap, o.UpstreamCap, o.Workers = 0, 1, 8
	if b, err = deriveBound(context.Background(), apiclient.New(srv.URL, "t"), "batch", o); err != nil {
		t.Fatal(err)
	}
	if !near(b.CapTermS, 2*2.0) {
		t.Fatalf("upstream cap 1: cap term %v, want 4", b.CapTermS)
	}
}

func TestProcReaders(t *testing.T) {
	if _, err := procCPU(1); err != nil {
		t.Skip("no /proc:", err)
	}
	if pct([]float64{5, 1, 3, 2, 4}, 50) != 3 || pct([]float64{5, 1, 3, 2, 4}, 99) != 5 {
		t.Fatal("pct")
	}
	if s, err := parseScheduleSeconds("31s, 1s"); err != nil || len(s) != 2 || s[0] != 31 {
		t.Fatalf("schedule: %v %v", s, err)
	}
}

// In a pooled group an account may be warm before its item gets to the gateway: only the
// items that waited are held up by the warm-up, so the latency term counts their share
// of the pre-wait work (f·N·S_pre/C), not every item's.
func TestBenchBoundCountsOnlyItemsThatWaited(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	up := map[string]any{"target": "upstream", "method": "GET", "path": "/models", "status": 200}
	gw := map[string]any{"target": "gateway", "method": "GET", "path": "/v1/models", "status": 200}
	att := func(outcome string, at time.Time, ev ...map[string]any) map[string]any {
		return map[string]any{"outcome": outcome, "evidence": ev, "started_at": at, "finished_at": at.Add(time.Second)}
	}
	waited := []map[string]any{att("ok", t0, up), att("waiting", t0.Add(time.Second), gw), att("ok", t0.Add(31*time.Second), gw)}
	warm := []map[string]any{att("ok", t0, up), att("ok", t0.Add(time.Second), gw)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/items") && r.URL.Query().Get("page") == "1":
			ids := []any{}
			for _, id := range []string{"w1", "c1", "c2", "c3"} {
				ids = append(ids, map[string]any{"id": id})
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"items": ids})
		case strings.HasSuffix(r.URL.Path, "/items"):
			_ = json.NewEncoder(w).Encode(map[string]any{"items": []any{}})
		case strings.HasSuffix(r.URL.Path, "/w1"):
			_ = json.NewEncoder(w).Encode(map[string]any{"attempts": waited})
		default:
			_ = json.NewEncoder(w).Encode(map[string]any{"attempts": warm})
		}
	}))
	defer srv.Close()
	o := Options{Items: 4, Concurrency: 1, Sample: 4, HostLatency: time.Second, UpstreamLatency: time.Second, Warmup: 30 * time.Second}
	b, err := deriveBound(context.Background(), apiclient.New(srv.URL, "t"), "batch", o)
	if err != nil {
		t.Fatal(err)
	}
	// S_pre: w1 2 s (up + the waiting gateway call), the others 2 s (no wait: all pre);
	// S_post: w1 1 s → 0.25 s per item. f = 1/4.
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !near(b.WaitedFraction, 0.25) || !near(b.LatencyTermS, 0.25*4*2+30+1+0.25) {
		t.Fatalf("f %v, latency term %v: %+v", b.WaitedFraction, b.LatencyTermS, b)
	}
}
