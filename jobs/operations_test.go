package jobs

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// blockingOps is an Operator whose Reconcile waits until released.
type blockingOps struct {
	started chan string
	release chan struct{}
}

func (o *blockingOps) Rollback(context.Context, string) (store.Action, error) {
	return store.Action{}, nil
}
func (o *blockingOps) Repair(context.Context, *store.ReconcileRun) error { return nil }
func (o *blockingOps) Reconcile(_ context.Context, run *store.ReconcileRun) error {
	o.started <- run.ID
	<-o.release
	run.Status, run.Summary, run.ObjectsChecked, run.ObjectsTotal = store.RunCompleted, "in sync", 3, 3
	return nil
}

func newOpsFixture(t *testing.T) (*OperationHandlers, *blockingOps, *store.Store, string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "ops.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	h := &store.Host{Name: "h", AdminURL: "http://x", PublicURL: "http://x", AuthKind: "api_key"}
	if err := st.CreateHost(ctx, h); err != nil {
		t.Fatal(err)
	}
	ops := &blockingOps{started: make(chan string, 4), release: make(chan struct{})}
	return &OperationHandlers{Ops: ops, Store: st}, ops, st, h.ID
}

func periodicTask(t *testing.T, hostID, slot string) *asynq.Task {
	t.Helper()
	b, err := json.Marshal(BatchPayload{HostID: hostID, Slot: slot})
	if err != nil {
		t.Fatal(err)
	}
	return asynq.NewTask(TypeReconcile, b)
}

// A periodic slot that comes while the host's previous run is still running is skipped,
// and the run list says so; the running run then finishes normally.
func TestPeriodicReconcileSkipsHostStillRunning(t *testing.T) {
	h, ops, st, hostID := newOpsFixture(t)
	ctx := context.Background()
	first := make(chan error, 1)
	go func() { first <- h.handleReconcile(ctx, periodicTask(t, hostID, "202612062200")) }()
	var runningID string
	select {
	case runningID = <-ops.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the first periodic run did not start")
	}
	if err := h.handleReconcile(ctx, periodicTask(t, hostID, "202612062205")); err != nil {
		t.Fatalf("second slot: %v", err)
	}
	select {
	case id := <-ops.started:
		t.Fatalf("a second reconcile (%s) ran while the first was running", id)
	default:
	}
	close(ops.release)
	if err := <-first; err != nil {
		t.Fatalf("first slot: %v", err)
	}
	runs, err := st.ListReconcileRuns(ctx, hostID, "", 10)
	if err != nil || len(runs) != 2 {
		t.Fatalf("runs: %v %+v", err, runs)
	}
	byStatus := map[string]store.ReconcileRun{}
	for _, r := range runs {
		byStatus[r.Status] = r
	}
	skipped, done := byStatus[store.RunSkipped], byStatus[store.RunCompleted]
	if done.ID != runningID || done.ObjectsChecked != 3 {
		t.Errorf("the running run did not complete: %+v", done)
	}
	if skipped.Slot != "202612062205" || !strings.Contains(skipped.Summary, runningID) || skipped.FinishedAt == nil {
		t.Errorf("skipped run: %+v", skipped)
	}
	// A duplicate delivery of a slot that already ran does nothing.
	if err := h.handleReconcile(ctx, periodicTask(t, hostID, "202612062205")); err != nil {
		t.Fatal(err)
	}
	if runs, _ := st.ListReconcileRuns(ctx, hostID, "", 10); len(runs) != 2 {
		t.Fatalf("duplicate slot added a run: %d", len(runs))
	}
}

// A running run whose worker died (no heartbeat for longer than StaleReconcileAfter) is
// marked failed as abandoned and does not block the next periodic run.
func TestPeriodicReconcileAfterAbandonedRun(t *testing.T) {
	h, ops, st, hostID := newOpsFixture(t)
	ctx := context.Background()
	dead := &store.ReconcileRun{HostID: hostID, Slot: "202612062100"}
	if err := st.CreateReconcileRun(ctx, dead); err != nil {
		t.Fatal(err)
	}
	old := time.Now().UTC().Add(-2 * StaleReconcileAfter)
	if _, err := st.DB.NewUpdate().Model(dead).Set("heartbeat_at = ?", old).WherePK().Exec(ctx); err != nil {
		t.Fatal(err)
	}
	close(ops.release)
	if err := h.handleReconcile(ctx, periodicTask(t, hostID, "202612062200")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ops.started:
	default:
		t.Fatal("the periodic run was skipped behind an abandoned run")
	}
	got, _ := st.GetReconcileRun(ctx, dead.ID)
	if got.Status != store.RunFailed || !strings.HasPrefix(got.Summary, "abandoned") || got.FinishedAt == nil {
		t.Fatalf("abandoned run: %+v", got)
	}
}

// A run the API queued becomes running when a worker picks it up, and keeps its progress.
func TestQueuedReconcileRuns(t *testing.T) {
	h, ops, st, hostID := newOpsFixture(t)
	ctx := context.Background()
	run := &store.ReconcileRun{HostID: hostID, Status: store.RunQueued}
	if err := st.CreateReconcileRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(BatchPayload{HostID: hostID, RunID: run.ID})
	errc := make(chan error, 1)
	go func() { errc <- h.handleReconcile(ctx, asynq.NewTask(TypeReconcile, b)) }()
	<-ops.started
	if got, _ := st.GetReconcileRun(ctx, run.ID); got.Status != store.RunRunning || got.HeartbeatAt == nil {
		t.Errorf("picked-up run: %+v", got)
	}
	close(ops.release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got, _ := st.GetReconcileRun(ctx, run.ID); got.Status != store.RunCompleted || got.ObjectsTotal != 3 || got.FinishedAt == nil {
		t.Errorf("finished run: %+v", got)
	}
}
