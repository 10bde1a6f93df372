package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/config"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/hostsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/upstreamsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// Waiting in the confirmation window holds no worker slot: 200 items (60 under the race
// detector) each wait 10 s for the host with worker concurrency 5. The proof is read from
// the attempt records, not from the wall clock of a loaded machine: an item waits between
// a "waiting" attempt and its next attempt, and far more items than there are worker slots
// wait at the same moment (a handler that slept would allow at most 5).
func TestWaitsHoldNoWorkerSlots(t *testing.T) {
	n := 200
	if raceEnabled {
		n = 60
	}
	up, err := upstreamsim.Start(upstreamsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	adminKey := "admin-" + secret.RandomToken(32)
	hs, err := hostsim.Start(hostsim.Options{AdminAPIKey: adminKey, Default: hostsim.Behavior{ChatWarmup: 10 * time.Second, WarmupFromFirstUse: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()

	dir := t.TempDir()
	cfg := config.Defaults()
	cfg.DataDir, cfg.DatabaseURL = dir, filepath.Join(dir, "w.db")
	cfg.MasterKey = "app-test-master-key-0000"
	cfg.WorkerConcurrency = 5
	cfg.AllowPrivateUpstreams = true
	cfg.WindowDeadline = 2 * time.Minute
	cfg.WindowSchedule = []time.Duration{2 * time.Second, 3 * time.Second}
	cfg.SweepInterval = 10 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()

	h := registerSimHost(ctx, t, a, "sim", hs.URL(), adminKey)
	b := &store.Batch{HostID: h.ID, Mode: "self_service"}
	var items []*store.Item
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("sk-slots-%06d-abcdef", i)
		up.AddKey(key, upstreamsim.ModeOK)
		sealed, _ := a.Box.Seal(key)
		items = append(items, &store.Item{Name: key, BaseURL: up.BaseURL("deepseek"), ProviderHint: "deepseek", APIKeyEnc: sealed,
			KeyMasked: secret.Mask(key), KeyFingerprint: a.Box.Fingerprint(key), RequestedModels: []string{"deepseek-flash"}, Step: "import"})
	}
	if err := a.Store.CreateBatch(ctx, b, items); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, it := range items {
		if err := a.Queue.EnqueueStep(ctx, it.Step, it.ID, it.Seq, start); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- a.RunWorker(ctx) }()
	for {
		got, err := a.Store.GetBatch(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == store.BatchSucceeded {
			break
		}
		if got.Status != store.BatchRunning && got.Status != store.BatchQueued {
			counts, _ := a.Store.StatusCounts(ctx, b.ID)
			t.Fatalf("batch ended %s: %v", got.Status, counts)
		}
		if time.Since(start) > 5*time.Minute { // a hang guard, not a performance bound
			counts, _ := a.Store.StatusCounts(ctx, b.ID)
			dumpDurations(t, a.Store, items)
			t.Fatalf("not finished after 5 minutes: %v", counts)
		}
		time.Sleep(250 * time.Millisecond)
	}
	wall := time.Since(start)
	cancel()
	<-done
	t.Logf("%d items, each waiting 10 s, concurrency 5: %.1fs (holding slots would take %ds)", n, wall.Seconds(), n*10/5)
	waits := 0
	var spans [][2]time.Time // [end of a waiting attempt, start of the next attempt]
	for _, it := range items {
		atts, _ := a.Store.ListAttempts(context.Background(), it.ID)
		for i, at := range atts {
			if at.Outcome == store.OutcomeWaiting {
				waits++
				if i+1 < len(atts) {
					spans = append(spans, [2]time.Time{at.FinishedAt, atts[i+1].StartedAt})
				}
			}
		}
	}
	if waits < n {
		t.Fatalf("%d waiting attempts for %d items: the warm-up was not exercised for every item", waits, n)
	}
	if peak := maxOverlap(spans); peak < 2*cfg.WorkerConcurrency {
		t.Fatalf("at most %d items waited at the same time with %d worker slots: waiting holds slots", peak, cfg.WorkerConcurrency)
	} else {
		t.Logf("up to %d items waited at the same time on %d worker slots", peak, cfg.WorkerConcurrency)
	}
	if wall < 10*time.Second {
		t.Fatalf("finished in %s, before the 10 s warm-up could pass", wall)
	}
	if c := hs.Counts(); c.Accounts != n || c.Keys != n {
		t.Fatalf("host objects %+v", c)
	}
}

// maxOverlap is the largest number of spans that cover one instant.
func maxOverlap(spans [][2]time.Time) int {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, s := range spans {
		if s[1].After(s[0]) {
			edges = append(edges, edge{s[0], 1}, edge{s[1], -1})
		}
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at.Equal(edges[j].at) {
			return edges[i].delta < edges[j].delta // an end before a start at the same instant
		}
		return edges[i].at.Before(edges[j].at)
	})
	cur, peak := 0, 0
	for _, e := range edges {
		cur += e.delta
		peak = max(peak, cur)
	}
	return peak
}
