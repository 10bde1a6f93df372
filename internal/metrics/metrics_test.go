package metrics_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"

	"github.com/cn-relay-manager/cn-relay-manager/internal/evidence"
	"github.com/cn-relay-manager/cn-relay-manager/internal/metrics"
	"github.com/cn-relay-manager/cn-relay-manager/internal/pipeline"
	"github.com/cn-relay-manager/cn-relay-manager/internal/step"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
	"github.com/cn-relay-manager/cn-relay-manager/jobs"
)

var (
	_ metrics.QueueInspector = (*asynq.Inspector)(nil)
	_ metrics.ItemSource     = (*store.Store)(nil)
)

type fakeRunner struct{}

func (fakeRunner) Run(_ context.Context, name, itemID string, seq int) (pipeline.Decision, error) {
	switch itemID {
	case "boom":
		return pipeline.Decision{}, errors.New("database went away")
	case "wait":
		return pipeline.Decision{ItemID: itemID, Next: name, Seq: seq + 1, Delay: time.Hour}, nil
	}
	return pipeline.Decision{ItemID: itemID, Next: step.AccountProbe, Seq: seq + 1, Delay: time.Hour}, nil
}

type nopEnqueuer struct{}

func (nopEnqueuer) EnqueueContext(context.Context, *asynq.Task, ...asynq.Option) (*asynq.TaskInfo, error) {
	return &asynq.TaskInfo{}, nil
}

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func wantLines(t *testing.T, body string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(body, l) {
			t.Errorf("exposition lacks %q", l)
		}
	}
}

// After some activity (items in the store, an attempt with a failure class, HTTP calls
// seen by the evidence hook, step runs through the job handler, tasks in a real asynq
// queue) every family is exposed on the process's registry, with no secret in it.
func TestExpositionAfterActivity(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "metrics.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	h := &store.Host{Name: "h", AdminURL: "http://h", PublicURL: "http://h", AuthKind: "api_key", Status: "ok"}
	if err := st.CreateHost(ctx, h); err != nil {
		t.Fatal(err)
	}
	b := &store.Batch{HostID: h.ID, Mode: "none"}
	items := []*store.Item{
		{Name: "a", BaseURL: "https://api.deepseek.com", APIKeyEnc: "v1:x", KeyMasked: "sk-abc...6789", KeyFingerprint: "f1", Step: step.Import},
		{Name: "b", BaseURL: "https://api.deepseek.com", APIKeyEnc: "v1:y", KeyMasked: "sk-abc...6780", KeyFingerprint: "f2", Step: step.Import},
	}
	if err := st.CreateBatch(ctx, b, items); err != nil {
		t.Fatal(err)
	}
	it, err := st.GetItem(ctx, items[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	seq := it.Seq
	it.Status, it.FailureClass, it.Provider = store.ItemFailed, "rate_limited", "deepseek"
	now := time.Now()
	if err := st.CompleteStep(ctx, it, seq, &store.Attempt{Step: step.Import, Seq: seq, Number: 1, Outcome: store.OutcomeFailed,
		FailureClass: "rate_limited", StartedAt: now, FinishedAt: now}); err != nil {
		t.Fatal(err)
	}

	mr := miniredis.RunT(t)
	conn := asynq.RedisClientOpt{Addr: mr.Addr()}
	insp := asynq.NewInspector(conn)
	defer insp.Close()
	m := metrics.New()
	m.SetProviders([]string{"deepseek", "kimi"})
	t.Cleanup(func() { evidence.SetObserver(nil) })
	evidence.SetObserver(m.ObserveExchange)
	m.SetSources(st, insp)
	// Before anything was enqueued the queue does not exist in Redis: zeros, source up.
	wantLines(t, scrape(t, m), `crm_queue_depth{queue="default",state="pending"} 0`, `crm_scrape_source_up{source="queue"} 1`)
	client := asynq.NewClient(conn)
	defer client.Close()
	q := &jobs.Queue{Client: client}
	if err := q.EnqueueStep(ctx, step.Import, "i1", 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := q.EnqueueStep(ctx, step.Import, "i2", 0, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	// HTTP calls, as the host and upstream clients record them (no Recorder in ctx).
	evidence.Record(ctx, evidence.Exchange{Target: "upstream", Method: "POST", Path: "/v1/chat/completions", Status: 429,
		Latency: 120 * time.Millisecond, Preview: `{"error":"key sk-secret-in-preview-0123"}`})
	evidence.Record(ctx, evidence.Exchange{Target: "host", Method: "GET", Path: "/api/v1/admin/accounts", Status: 200, LatencyMS: 30})
	evidence.Record(ctx, evidence.Exchange{Target: "gateway", Method: "POST", Path: "/v1/chat/completions", Error: "dial tcp: refused"})

	// Step runs through the real job handler.
	hd := &jobs.Handlers{Runner: fakeRunner{}, Queue: &jobs.Queue{Client: nopEnqueuer{}}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m}
	mux := hd.Mux()
	for _, id := range []string{"ok", "wait", "boom", ""} {
		p, _ := json.Marshal(jobs.StepPayload{ItemID: id, Seq: 1})
		_ = mux.ProcessTask(ctx, asynq.NewTask(step.Import, p))
	}

	// Step results as the engine reports them, and requests as the API middleware does.
	m.ObserveStepResult(step.Import, store.OutcomeFailed, "rate_limited", "deepseek", "h")
	m.ObserveStepResult(step.Import, store.OutcomeOK, "", "some-unknown-relay", "h")
	m.ObserveRequest("GET", "/api/v1/batches/:id", 200, 3*time.Millisecond)
	m.ObserveRequest("BREW", "", 404, time.Millisecond)

	body := scrape(t, m)
	wantLines(t, body,
		`# TYPE crm_items gauge`,
		`crm_items{state="submitted"} 1`,
		`crm_items{state="failed"} 1`,
		`crm_items{state="ready"} 0`,
		`crm_items_by_provider{provider="deepseek",state="failed"} 1`,
		`crm_items_by_provider{provider="unknown",state="submitted"} 1`,
		`crm_items_by_host{host="h",state="failed"} 1`,
		`# TYPE crm_failed_items gauge`,
		`crm_failed_items{class="rate_limited",provider="deepseek"} 1`,
		`# TYPE crm_step_failures_total counter`,
		`crm_step_failures_total{class="rate_limited",host="h",provider="deepseek"} 1`,
		`crm_step_results_total{outcome="ok",provider="other",step="import"} 1`,
		`crm_http_requests_total{method="GET",route="/api/v1/batches/:id",status_class="2xx"} 1`,
		`crm_http_requests_total{method="other",route="unmatched",status_class="4xx"} 1`,
		`crm_http_request_duration_seconds_count{method="GET",route="/api/v1/batches/:id"} 1`,
		`crm_queue_depth{queue="default",state="pending"} 1`,
		`crm_queue_depth{queue="default",state="scheduled"} 1`,
		`crm_scrape_source_up{source="store"} 1`,
		`crm_http_client_requests_total{status_class="4xx",target="upstream"}`,
		`crm_http_client_requests_total{status_class="2xx",target="host"}`,
		`crm_http_client_requests_total{status_class="error",target="gateway"}`,
		`crm_http_client_duration_seconds_bucket{target="upstream",le="0.25"}`,
		`crm_step_duration_seconds_count{outcome="advanced",step="import"}`,
		`crm_step_duration_seconds_count{outcome="rescheduled",step="import"}`,
		`crm_step_duration_seconds_count{outcome="error",step="import"}`,
		`crm_step_duration_seconds_count{outcome="invalid",step="import"}`,
		`go_goroutines`,
	)
	for _, secret := range []string{"sk-secret", "sk-abc", "v1:x", "/v1/chat", "api.deepseek.com"} {
		if strings.Contains(body, secret) {
			t.Errorf("exposition contains %q", secret)
		}
	}

	// A broken source is reported, not fatal.
	mr.Close()
	body = scrape(t, m)
	wantLines(t, body, `crm_scrape_source_up{source="queue"} 0`, `crm_scrape_source_up{source="store"} 1`)
}

func TestPrivateRegistries(t *testing.T) {
	a, b := metrics.New(), metrics.New()
	a.ObserveStep("import", metrics.OutcomeFinished, time.Second)
	if strings.Contains(scrape(t, b), "crm_step_duration_seconds_count") {
		t.Fatal("registries share state")
	}
	wantLines(t, scrape(t, a), `crm_step_duration_seconds_count{outcome="finished",step="import"} 1`)
}

func TestStatusClass(t *testing.T) {
	for _, c := range []struct {
		status int
		failed bool
		want   string
	}{{200, false, "2xx"}, {302, false, "3xx"}, {404, false, "4xx"}, {503, false, "5xx"}, {0, true, "error"}, {0, false, "error"}, {200, true, "error"}} {
		if got := metrics.StatusClass(c.status, c.failed); got != c.want {
			t.Errorf("StatusClass(%d, %v) = %s, want %s", c.status, c.failed, got, c.want)
		}
	}
}

// State counts are gauges and every *_total family is a counter: a value read from the
// database at scrape time, which may go down (a host forgotten, a batch retried), is
// never typed as a counter.
func TestGaugesForStatesCountersForEvents(t *testing.T) {
	m := metrics.New()
	m.ObserveStepResult("import", "failed", "invalid_key", "deepseek", "h")
	m.ObserveRequest("GET", "/healthz", 200, time.Millisecond)
	m.ObserveStep("import", metrics.OutcomeFinished, time.Second)
	m.SetSources(breakdown{{Host: "h", Provider: "deepseek", Status: store.ItemFailed, Class: "invalid_key", N: 2}}, nil)
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	gauges := map[string]bool{"crm_items": true, "crm_items_by_provider": true, "crm_items_by_host": true, "crm_failed_items": true}
	seen := 0
	for _, f := range fams {
		name, typ := f.GetName(), f.GetType().String()
		switch {
		case gauges[name]:
			seen++
			if typ != "GAUGE" {
				t.Errorf("%s is a %s, want a gauge", name, typ)
			}
		case strings.HasSuffix(name, "_total") && strings.HasPrefix(name, "crm_") && typ != "COUNTER":
			t.Errorf("%s is a %s, want a counter", name, typ)
		}
	}
	if seen != len(gauges) {
		t.Errorf("found %d of the %d state gauges", seen, len(gauges))
	}
}

// Provider labels are the catalog's IDs, host labels at most MaxHosts names: a stream of
// new names cannot grow the series without bound.
func TestLabelsAreBounded(t *testing.T) {
	m := metrics.New()
	m.SetProviders([]string{"deepseek"})
	var groups breakdown
	for i := 0; i < metrics.MaxHosts+20; i++ {
		name := fmt.Sprintf("host-%03d", i)
		m.ObserveStepResult("import", "failed", "invalid_key", fmt.Sprintf("relay-%d", i), name)
		groups = append(groups, store.ItemGroup{Host: name, Provider: fmt.Sprintf("made-up-%d", i), Status: store.ItemReady, N: 1})
	}
	m.SetSources(groups, nil)
	body := scrape(t, m)
	if n := strings.Count(body, "crm_step_failures_total{"); n != metrics.MaxHosts+1 {
		t.Errorf("%d failure series for %d hosts, want %d (the rest is other)", n, metrics.MaxHosts+20, metrics.MaxHosts+1)
	}
	if n := strings.Count(body, "crm_items_by_host{"); n != metrics.MaxHosts+1 {
		t.Errorf("%d host series, want %d", n, metrics.MaxHosts+1)
	}
	wantLines(t, body, `crm_items_by_host{host="other",state="ready"} 20`, `crm_items_by_provider{provider="other",state="ready"} 70`,
		`crm_step_failures_total{class="invalid_key",host="other",provider="other"} 20`)
	if strings.Contains(body, "relay-") || strings.Contains(body, "made-up-") {
		t.Error("a provider outside the catalog got its own label")
	}
}

// breakdown is a fixed ItemSource.
type breakdown []store.ItemGroup

func (b breakdown) ItemBreakdown(context.Context) ([]store.ItemGroup, error) { return b, nil }
