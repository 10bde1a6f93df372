package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/config"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/hostsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/upstreamsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
	"github.com/cn-relay-manager/cn-relay-manager/internal/testredis"
)

// Every Redis user of a process — asynq's client (enqueue), server (worker), scheduler
// (periodic reconcile) and inspector (metrics, readiness), asynqmon and the host/upstream
// semaphores — runs over a password-protected Redis with an ACL user and the default user
// switched off, in the database the URL names. Any connection that skipped the shared
// constructor would have no credentials and meet NOAUTH, which Redis counts in its error
// statistics; the test requires none, and every open connection to be the ACL user's.
func TestEveryRedisUserOverACLUser(t *testing.T) {
	const pw = "acl-Secret-0123456789"
	r := testredis.StartWith(t, testredis.Options{Username: "crm", Password: pw})
	admin := r.Client(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Provider answers take a moment too: an upstream slot is held only for the probe,
	// which without latency is over in a few milliseconds and easily missed by a sampler
	// on a loaded machine.
	up, err := upstreamsim.Start(upstreamsim.Options{Latency: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	adminKey := "admin-" + secret.RandomToken(32)
	// Host calls take a moment, so that semaphore slots are held long enough to be seen.
	hs, err := hostsim.Start(hostsim.Options{AdminAPIKey: adminKey, Latency: 40 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()

	dir := t.TempDir()
	cfg := config.Defaults()
	cfg.DataDir, cfg.DatabaseURL = dir, filepath.Join(dir, "acl.db")
	cfg.MasterKey = "acl-test-master-key-0000"
	cfg.RedisURL = r.URL(3)
	cfg.AllowPrivateUpstreams = true
	cfg.WorkerConcurrency = 4
	cfg.HostConcurrency, cfg.UpstreamConcurrency = 2, 2
	cfg.ReconcileCron = "@every 1s"
	cfg.WindowDeadline = 30 * time.Second
	cfg.WindowSchedule = []time.Duration{time.Second}
	cfg.SweepInterval = 2 * time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	a, err := New(ctx, cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Redis == nil || a.Redis.String() != strings.Replace(cfg.RedisURL, pw, "xxxxx", 1) {
		t.Fatalf("connection %v", a.Redis)
	}
	const token = "acl-test-token-0123456789"
	web, closer := a.HTTPApp(token)
	defer closer.Close()
	get := func(path string) (int, string) {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := web.Test(req, -1)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Fatalf("/readyz: %d %s", code, body)
	}

	h := registerSimHost(ctx, t, a, "sim", hs.URL(), adminKey)
	const n = 12
	b := &store.Batch{HostID: h.ID, Mode: "self_service"}
	var items []*store.Item
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("sk-acl-%06d-abcdef", i)
		up.AddKey(key, upstreamsim.ModeOK)
		sealed, _ := a.Box.Seal(key)
		items = append(items, &store.Item{Name: key, BaseURL: up.BaseURL("deepseek"), ProviderHint: "deepseek", APIKeyEnc: sealed,
			KeyMasked: secret.Mask(key), KeyFingerprint: a.Box.Fingerprint(key), RequestedModels: []string{"deepseek-flash"}, Step: "import"})
	}
	if err := a.Store.CreateBatch(ctx, b, items); err != nil {
		t.Fatal(err)
	}
	for _, it := range items { // the asynq client
		if err := a.Queue.EnqueueStep(ctx, it.Step, it.ID, it.Seq, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- a.RunWorker(ctx) }() // server, scheduler, semaphores

	seen := map[string]bool{}
	deadline := time.Now().Add(90 * time.Second)
	awaitBatch(ctx, t, a, b.ID, 90*time.Second, 10*time.Millisecond, func() {
		keys, _ := admin.Keys(ctx, "crm:limit:*").Result()
		for _, k := range keys {
			seen[strings.SplitN(strings.TrimPrefix(k, "crm:limit:"), ":", 2)[0]] = true
		}
	}, logs.String)
	if !seen["host"] || !seen["upstream"] {
		t.Errorf("semaphore keys seen in database 3: %v; want host and upstream slots", seen)
	}
	// The scheduler registers itself and ticks; the reconcile tick's runs land in the store.
	for {
		runs, _ := a.Store.ListReconcileRuns(ctx, "", "", 10)
		sched, _ := admin.Keys(ctx, "asynq:schedulers*").Result()
		if len(runs) > 0 && len(sched) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no periodic reconcile run / scheduler entry in database 3 (runs %d, keys %v)\n%s", len(runs), sched, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	// asynqmon and the inspector behind /metrics and /readyz.
	for _, p := range []string{"/monitoring/api/queues", "/monitoring/api/redis_info", "/monitoring/api/servers", "/metrics", "/readyz"} {
		code, body := get(p)
		if code != 200 {
			t.Errorf("GET %s: %d %.300s", p, code, body)
		}
		if strings.Contains(body, pw) {
			t.Errorf("GET %s shows the Redis password", p)
		}
	}
	if _, body := get("/metrics"); !strings.Contains(body, `queue="default"`) {
		t.Errorf("/metrics has no queue depth from the inspector")
	}
	if _, body := get("/monitoring/api/servers"); !strings.Contains(body, `"queue_priorities":{"default"`) {
		t.Errorf("asynqmon lists no worker server: %.300s", body)
	}

	// Everything happened in database 3 as the ACL user, and nothing tried without it.
	stats, err := admin.Info(ctx, "errorstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"NOAUTH", "WRONGPASS", "NOPERM"} {
		if strings.Contains(stats, "errorstat_"+bad) {
			t.Errorf("Redis answered %s to some connection:\n%s", bad, stats)
		}
	}
	clients, err := admin.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	conns := 0
	for _, line := range strings.Split(strings.TrimSpace(clients), "\n") {
		conns++
		if !strings.Contains(line, " user=crm ") {
			t.Errorf("connection not authenticated as crm: %s", line)
		}
	}
	if conns < 4 {
		t.Errorf("only %d connections open: the users of the process are not all connected", conns)
	}
	if n, _ := r.Client(t, 0).DBSize(ctx).Result(); n != 0 {
		t.Errorf("database 0 holds %d keys: some Redis user ignored the database in the URL", n)
	}
	if strings.Contains(logs.String(), pw) {
		t.Error("the log shows the Redis password")
	}
	cancel()
	<-done
	t.Logf("%d items over the ACL user; %d connections, all as crm; semaphores seen: %v", n, conns, seen)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
