package jobs

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"

	"github.com/cn-relay-manager/cn-relay-manager/internal/step"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

func newQueue(t *testing.T) (*Queue, *asynq.Inspector) {
	t.Helper()
	m := miniredis.RunT(t)
	conn := asynq.RedisClientOpt{Addr: m.Addr()}
	c := asynq.NewClient(conn)
	ins := asynq.NewInspector(conn)
	t.Cleanup(func() { c.Close(); ins.Close() })
	return &Queue{Client: c, Inspector: ins}, ins
}

// Enqueuing the same (step, item, seq) twice collapses into one task; payloads carry IDs.
func TestEnqueueStepCollapsesDuplicates(t *testing.T) {
	q, ins := newQueue(t)
	ctx := context.Background()
	if err := q.EnqueueStep(ctx, step.Import, "item-1", 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := q.EnqueueStep(ctx, step.Import, "item-1", 0, time.Now()); !errors.Is(err, ErrExists) {
		t.Fatalf("second enqueue: %v", err)
	}
	if err := q.EnqueueStep(ctx, step.Import, "item-1", 1, time.Now().Add(time.Minute)); err != nil {
		t.Fatalf("next sequence must be a new task: %v", err)
	}
	pending, _ := ins.ListPendingTasks(QueueName)
	scheduled, _ := ins.ListScheduledTasks(QueueName)
	if len(pending) != 1 || len(scheduled) != 1 {
		t.Fatalf("pending %d scheduled %d", len(pending), len(scheduled))
	}
	if string(pending[0].Payload) != `{"item_id":"item-1","seq":0}` || pending[0].ID != "import:item-1:0" {
		t.Fatalf("task %s payload %s", pending[0].ID, pending[0].Payload)
	}
}

// The sweep rebuilds a lost queue from the database: every due, non-terminal item gets
// its step back, a second sweep adds nothing.
func TestSweepRebuildsQueueFromDatabase(t *testing.T) {
	q, ins := newQueue(t)
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	h := &store.Host{Name: "h", AdminURL: "http://x", PublicURL: "http://x", AuthKind: "api_key"}
	if err := st.CreateHost(ctx, h); err != nil {
		t.Fatal(err)
	}
	b := &store.Batch{HostID: h.ID, Mode: "none"}
	var items []*store.Item
	for i := 0; i < 3; i++ {
		items = append(items, &store.Item{Name: "i", BaseURL: "http://u", APIKeyEnc: "v1:x", KeyMasked: "m", KeyFingerprint: "f", Step: step.Import})
	}
	if err := st.CreateBatch(ctx, b, items); err != nil {
		t.Fatal(err)
	}
	done, _ := st.GetItem(ctx, items[2].ID)
	done.Status, done.Seq, done.Step, done.NextRunAt = store.ItemReady, 1, "", nil
	if err := st.CompleteStep(ctx, done, 0, nil); err != nil {
		t.Fatal(err)
	}
	sw := &Sweeper{Store: st, Queue: q, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	n, err := sw.Sweep(ctx)
	if err != nil || n != 2 {
		t.Fatalf("first sweep enqueued %d: %v", n, err)
	}
	if n, err := sw.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("second sweep enqueued %d: %v", n, err)
	}
	pending, _ := ins.ListPendingTasks(QueueName)
	if len(pending) != 2 {
		t.Fatalf("pending after sweeps: %d", len(pending))
	}
}

// Wake runs the parked task a cap's wait list names (a step that found the cap full is
// parked in asynq's retry set, or scheduled); a step that is pending already, or whose
// task is gone (it ran to its end meanwhile), is not a wake-up the freed slot needs, so
// Wake says false and the semaphore wakes the next waiter.
func TestWakeQueuesTheWaiterOrPassesTheWakeUpOn(t *testing.T) {
	q, ins := newQueue(t)
	q.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	if err := q.EnqueueStep(ctx, step.Import, "item-w", 2, time.Now().Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	waiter := step.TaskID(step.Import, "item-w", 2)
	if !q.Wake("upstream:x", waiter) {
		t.Fatal("Wake of a parked waiter: false")
	}
	info, err := ins.GetTaskInfo(QueueName, waiter)
	if err != nil || info.Type != step.Import || info.State != asynq.TaskStatePending {
		t.Fatalf("woken task: %+v, %v", info, err)
	}
	if q.Wake("upstream:x", waiter) {
		t.Fatal("Wake of a step that is pending already: true (the wake-up would be spent on it)")
	}
	// A later step is parked in its own queue (FinishQueue) and woken there.
	if err := q.EnqueueStep(ctx, step.AccessClosure, "item-f", 3, time.Now().Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	later := step.TaskID(step.AccessClosure, "item-f", 3)
	if !q.Wake("host:h", later) {
		t.Fatal("Wake of a parked later step: false")
	}
	if info, err := ins.GetTaskInfo(FinishQueue, later); err != nil || info.State != asynq.TaskStatePending {
		t.Fatalf("woken later step: %+v, %v", info, err)
	}
	if q.Wake("host:h", step.TaskID(step.AccountProbe, "item-gone", 1)) {
		t.Fatal("Wake of a waiter whose task is gone: true")
	}
	if q.Wake("host:h", "not-a-task-id") {
		t.Fatal("Wake of a malformed waiter: true")
	}
	// Without an Inspector nothing can be moved out of the retry set: the waiter runs
	// when its park ends, and the slot is offered to the next one.
	if (&Queue{Client: q.Client}).Wake("upstream:x", waiter) {
		t.Fatal("Wake without an Inspector: true")
	}
}

// The steps past the import go to the queue the worker serves first; the import and
// every other task to the default queue.
func TestQueueOf(t *testing.T) {
	for typ, want := range map[string]string{step.Import: QueueName, step.AccountProbe: FinishQueue, step.AccessClosure: FinishQueue,
		TypeRollback: QueueName, TypeVerifyAccount: QueueName} {
		if got := QueueOf(typ); got != want {
			t.Errorf("QueueOf(%s) = %s, want %s", typ, got, want)
		}
	}
	if len(step.Table) != 3 {
		t.Fatalf("the step table has %d steps: check which queue each belongs to", len(step.Table))
	}
}
