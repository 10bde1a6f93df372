// Package jobs defines the asynq task types, their payloads (IDs only, never secrets or
// state), deterministic task IDs, the handlers that run pipeline steps, the recovery
// sweep and the periodic scheduler entries.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/step"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
	"github.com/hibiken/asynq"
)

// Task types of the batch- and host-level operations. The item steps' task types are
// their names in the step table (internal/step).
const (
	TypeReconcile = "reconcile"
	TypeRollback  = "rollback"
)

// QueueName is the queue of the import step and of every task that is not an item step
// (batch, host and account operations).
const QueueName = "default"

// FinishQueue holds the item steps past the import (account-probe, access-closure). The
// worker serves it first (Queues, strict priority): a large batch's imports queue up at
// once, and without it an item's later steps would queue behind every import of the
// batch, so that no item was ready until all had been imported (at 10 000 items, the
// first six minutes). Steps that finish items take the worker slots they need as soon as
// they are due; the imports take the rest.
const FinishQueue = "finish"

// Queues is the asynq server's queues, with StrictPriority: FinishQueue before QueueName.
var Queues = map[string]int{FinishQueue: 2, QueueName: 1}

// QueueOf is the queue of a task type: an item step past the import goes to FinishQueue,
// everything else to QueueName.
func QueueOf(taskType string) string {
	if taskType != step.First && step.Known(taskType) {
		return FinishQueue
	}
	return QueueName
}

// StepPayload identifies one execution of one item step.
type StepPayload struct {
	ItemID string `json:"item_id"`
	Seq    int    `json:"seq"`
}

// BatchPayload identifies a batch-level task (rollback) or a host-level one (reconcile).
type BatchPayload struct {
	HostID  string `json:"host_id,omitempty"`
	BatchID string `json:"batch_id,omitempty"`
	RunID   string `json:"run_id,omitempty"`
	Slot    string `json:"slot,omitempty"`
	Repair  bool   `json:"repair,omitempty"` // apply the safe repairs to run RunID
}

// StepTaskID derives the task ID from (step, item, sequence): enqueuing the same step
// twice collapses into one task instead of running twice.
func StepTaskID(name, itemID string, seq int) string {
	return step.TaskID(name, itemID, seq)
}

// Enqueuer is the part of the asynq client the queue needs.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Queue puts pipeline work on asynq.
type Queue struct {
	Client    Enqueuer
	Inspector *asynq.Inspector // optional: lets the sweep free IDs held by archived tasks
	Log       *slog.Logger     // enqueue failures left to the sweep (nil: slog.Default)
}

// ErrExists is returned (wrapped) when a task with the same ID is already queued.
var ErrExists = errors.New("task already queued")

// EnqueueStep schedules step for the item at seq to run at (or right away when at is in
// the past). A task that is already queued with the same ID is not an error.
func (q *Queue) EnqueueStep(ctx context.Context, step, itemID string, seq int, at time.Time) error {
	payload, err := json.Marshal(StepPayload{ItemID: itemID, Seq: seq})
	if err != nil {
		return err
	}
	opts := []asynq.Option{asynq.TaskID(StepTaskID(step, itemID, seq)), asynq.Queue(QueueOf(step)),
		asynq.MaxRetry(8), asynq.Timeout(5 * time.Minute)}
	if d := time.Until(at); d > 0 {
		opts = append(opts, asynq.ProcessAt(at))
	}
	_, err = q.Client.EnqueueContext(ctx, asynq.NewTask(step, payload), opts...)
	if errors.Is(err, asynq.ErrTaskIDConflict) || errors.Is(err, asynq.ErrDuplicateTask) {
		return fmt.Errorf("%s: %w", StepTaskID(step, itemID, seq), ErrExists)
	}
	if err != nil {
		return fmt.Errorf("enqueue %s for item %s: %w", step, itemID, err)
	}
	return nil
}

// EnqueueBatchTask enqueues a reconcile or rollback task with an explicit task ID.
func (q *Queue) EnqueueBatchTask(ctx context.Context, typ, taskID string, p BatchPayload) error {
	payload, err := json.Marshal(p)
	if err != nil {
		return err
	}
	_, err = q.Client.EnqueueContext(ctx, asynq.NewTask(typ, payload), asynq.TaskID(taskID),
		asynq.Queue(QueueName), asynq.MaxRetry(3), asynq.Timeout(10*time.Minute))
	if errors.Is(err, asynq.ErrTaskIDConflict) || errors.Is(err, asynq.ErrDuplicateTask) {
		return fmt.Errorf("%s: %w", taskID, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", typ, err)
	}
	return nil
}

// EnqueueItems enqueues the next step of every item with a few concurrent Redis round
// trips (one by one, 10 000 items took ~0.9 s) and returns how many were enqueued (or
// were queued already). Failures are logged: the items are already committed and the
// recovery sweep enqueues whatever is missing.
func (q *Queue) EnqueueItems(ctx context.Context, items []*store.Item) int {
	const workers = 8
	var ok atomic.Int64
	next := make(chan *store.Item)
	var wg sync.WaitGroup
	for w := 0; w < min(workers, len(items)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range next {
				if err := q.EnqueueStep(ctx, it.Step, it.ID, it.Seq, time.Now()); err != nil && !errors.Is(err, ErrExists) {
					q.log().Warn("enqueue failed; the recovery sweep will retry", "step", it.Step, "batch_id", it.BatchID, "item_id", it.ID, "error", err)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	for _, it := range items {
		next <- it
	}
	close(next)
	wg.Wait()
	return int(ok.Load())
}

// Wake runs now a task that waited for a concurrency slot (limit.Semaphore.Wake): waiter
// is its asynq task ID (an item step, or an account check or undo). The waiting task is
// parked in asynq's retry set (its handler returned the cap's Busy), so waking it moves
// it to pending (Inspector.RunTask, which needs the queue's Inspector). Its handler may
// still be returning when a slot frees at once: a task still active is tried again
// briefly. Only a parked task is a wake-up the freed slot needs: for a task that is
// pending already, still running, or gone (it ran to its end meanwhile), Wake returns
// false and the semaphore wakes the next waiter, so no freed slot is left unused. A
// waiter that cannot be woken is not lost: its parked task runs when its retry comes due.
func (q *Queue) Wake(_, waiter string) bool {
	if q.Inspector == nil {
		return false
	}
	queue := QueueName
	if name, _, _, ok := step.ParseTaskID(waiter); ok {
		queue = QueueOf(name)
	}
	for delay := 10 * time.Millisecond; ; delay *= 2 {
		err := q.Inspector.RunTask(queue, waiter)
		// asynq exports no error values for a task that is active or pending: its
		// messages ("task is already running", "... already in pending state") tell them.
		switch {
		case err == nil:
			return true
		case errors.Is(err, asynq.ErrTaskNotFound), strings.Contains(err.Error(), "already in pending state"):
			return false
		case !strings.Contains(err.Error(), "already running"):
			q.log().Warn("wake a task waiting for a slot failed; it runs when its retry comes due", "task_id", waiter, "error", err)
			return true // Redis is failing: waking others would fail the same way
		case delay > 500*time.Millisecond:
			return false
		}
		time.Sleep(delay)
	}
}

// EnqueueRollback queues the rollback of a batch; every call is a new task (the operator
// may roll back again after a partial rollback).
func (q *Queue) EnqueueRollback(ctx context.Context, batchID string) error {
	return q.EnqueueBatchTask(ctx, TypeRollback, "rollback:"+batchID+":"+secret.RandomToken(6), BatchPayload{BatchID: batchID})
}

// EnqueueReconcile queues a stored (queued) reconcile run.
func (q *Queue) EnqueueReconcile(ctx context.Context, run *store.ReconcileRun) error {
	return q.EnqueueBatchTask(ctx, TypeReconcile, "reconcile:"+run.ID, BatchPayload{HostID: run.HostID, BatchID: run.BatchID, RunID: run.ID})
}

// EnqueueRepair queues the safe repairs of a finished run's findings.
func (q *Queue) EnqueueRepair(ctx context.Context, run *store.ReconcileRun) error {
	return q.EnqueueBatchTask(ctx, TypeReconcile, "repair:"+run.ID+":"+secret.RandomToken(6), BatchPayload{HostID: run.HostID, RunID: run.ID, Repair: true})
}

func (q *Queue) log() *slog.Logger {
	if q.Log != nil {
		return q.Log
	}
	return slog.Default()
}
