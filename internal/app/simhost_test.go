package app

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/config"

	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// registerSimHost probes the simulated host at url and registers it under name, as the
// API does for an operator.
func registerSimHost(ctx context.Context, t *testing.T, a *App, name, url, adminKey string) *store.Host {
	t.Helper()
	sealedAdmin, err := a.Box.Seal(adminKey)
	if err != nil {
		t.Fatal(err)
	}
	h := &store.Host{Name: name, AdminURL: url, PublicURL: url, AuthKind: "api_key", AdminKeyEnc: sealedAdmin}
	if err := a.Engine.ProbeHost(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := a.Store.CreateHost(ctx, h); err != nil {
		t.Fatal(err)
	}
	return h
}

// awaitBatch polls the batch until it succeeded, calling tick (when set) between polls. It
// fails the test when the batch ends otherwise or limit passes (a hang guard, not a
// performance bound); detail, when set, adds to the message.
func awaitBatch(ctx context.Context, t *testing.T, a *App, batchID string, limit, every time.Duration, tick func(), detail func() string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		got, err := a.Store.GetBatch(ctx, batchID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == store.BatchSucceeded {
			return
		}
		if got.Status != store.BatchRunning && got.Status != store.BatchQueued || time.Now().After(deadline) {
			counts, _ := a.Store.StatusCounts(ctx, batchID)
			more := ""
			if detail != nil {
				more = detail()
			}
			t.Fatalf("batch %s after %s: %v %s", got.Status, limit, counts, more)
		}
		if tick != nil {
			tick()
		}
		time.Sleep(every)
	}
}

// newTestApp builds the process wiring on a fresh SQLite file and the embedded Redis,
// with the test's settings applied over the defaults; it is closed with the test.
func newTestApp(ctx context.Context, t *testing.T, set func(*config.Config)) *App {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Defaults()
	cfg.DataDir, cfg.DatabaseURL = dir, filepath.Join(dir, "app.db")
	cfg.MasterKey = "app-test-master-key-0000"
	cfg.AllowPrivateUpstreams = true
	set(&cfg)
	a, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}
