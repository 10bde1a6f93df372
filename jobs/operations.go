package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cn-relay-manager/cn-relay-manager/internal/metrics"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// TypeReconcileTick is the periodic task the asynq scheduler enqueues; its handler fans
// out one reconcile per host with a per-slot task ID.
const TypeReconcileTick = "reconcile-tick"

// Operator runs the batch- and host-level operations; *pipeline.Engine satisfies it.
type Operator interface {
	Rollback(ctx context.Context, batchID string) (store.Action, error)
	Reconcile(ctx context.Context, run *store.ReconcileRun) error
	Repair(ctx context.Context, run *store.ReconcileRun) error
}

// OperationHandlers serves rollback, reconcile and the periodic tick.
type OperationHandlers struct {
	Ops   Operator
	Store *store.Store
	Queue *Queue
	Now   func() time.Time
	// Metrics records each run's duration (nil: not recorded).
	Metrics *metrics.Metrics
}

// Register adds the handlers to mux; each run is timed in crm_step_duration_seconds
// under its task type.
func (h *OperationHandlers) Register(mux *asynq.ServeMux) {
	mux.HandleFunc(TypeRollback, h.timed(h.handleRollback))
	mux.HandleFunc(TypeReconcile, h.timed(h.handleReconcile))
	mux.HandleFunc(TypeReconcileTick, h.timed(h.handleTick))
}

func (h *OperationHandlers) timed(fn func(context.Context, *asynq.Task) error) func(context.Context, *asynq.Task) error {
	return func(ctx context.Context, t *asynq.Task) error {
		start := time.Now()
		err := fn(ctx, t)
		outcome := metrics.OutcomeFinished
		if err != nil {
			outcome = metrics.OutcomeError
		}
		h.Metrics.ObserveStep(t.Type(), outcome, time.Since(start))
		return err
	}
}

func (h *OperationHandlers) handleRollback(ctx context.Context, t *asynq.Task) error {
	var p BatchPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.BatchID == "" {
		return fmt.Errorf("bad rollback payload: %w", asynq.SkipRetry)
	}
	act, err := h.Ops.Rollback(ctx, p.BatchID)
	if errors.Is(err, store.ErrNothingRecorded) || errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("rollback %s: %v: %w", p.BatchID, err, asynq.SkipRetry)
	}
	if err != nil {
		return err
	}
	if act.Status == "partial" {
		return fmt.Errorf("rollback of batch %s incomplete: %s", p.BatchID, act.Message)
	}
	return nil
}

func (h *OperationHandlers) handleReconcile(ctx context.Context, t *asynq.Task) error {
	var p BatchPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("bad reconcile payload: %w", asynq.SkipRetry)
	}
	if p.Repair {
		run, err := h.Store.GetReconcileRun(ctx, p.RunID)
		if err != nil {
			return fmt.Errorf("repair run %s: %v: %w", p.RunID, err, asynq.SkipRetry)
		}
		if err := h.Ops.Repair(ctx, run); err != nil {
			return err
		}
		return h.Store.FinishReconcileRun(ctx, run)
	}
	var run *store.ReconcileRun
	if p.RunID != "" {
		r, err := h.Store.GetReconcileRun(ctx, p.RunID)
		if err != nil {
			return fmt.Errorf("reconcile run %s: %v: %w", p.RunID, err, asynq.SkipRetry)
		}
		run = r
		if err := h.Store.StartReconcileRun(ctx, run); err != nil {
			return err
		}
	} else {
		r, started, err := h.Store.StartPeriodicReconcile(ctx, p.HostID, p.Slot, StaleReconcileAfter)
		if err != nil || !started {
			return err
		}
		run = r
	}
	if err := h.Ops.Reconcile(ctx, run); err != nil {
		run.Status, run.Summary = store.RunFailed, err.Error()
		_ = h.Store.FinishReconcileRun(ctx, run)
		return err
	}
	return h.Store.FinishReconcileRun(ctx, run)
}

// StaleReconcileAfter is how long a running reconcile may go without reporting progress
// before it counts as abandoned (its worker died): runs report at least every few
// seconds, and one host call is bounded well below this even with its retries.
const StaleReconcileAfter = 5 * time.Minute

// handleTick enqueues one reconcile per registered host for the current slot (the
// minute): several schedulers ticking in the same minute produce the same task IDs.
func (h *OperationHandlers) handleTick(ctx context.Context, _ *asynq.Task) error {
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	slot := now().UTC().Truncate(time.Minute).Format("200601021504")
	hosts, err := h.Store.ListHosts(ctx)
	if err != nil {
		return err
	}
	for _, host := range hosts {
		err := h.Queue.EnqueueBatchTask(ctx, TypeReconcile, "reconcile:"+host.ID+":"+slot, BatchPayload{HostID: host.ID, Slot: slot})
		if err != nil && !errors.Is(err, ErrExists) {
			return err
		}
	}
	return nil
}

// NewScheduler returns the asynq scheduler that enqueues the reconcile tick on spec (a
// five-field cron spec or "@every 10m"). The tick is Unique for less than a minute, so
// several worker processes ticking together enqueue it once, and an archived tick never
// blocks the next one.
func NewScheduler(conn asynq.RedisConnOpt, spec string, logger asynq.Logger) (*asynq.Scheduler, error) {
	s := asynq.NewScheduler(conn, &asynq.SchedulerOpts{HeartbeatInterval: time.Second, Location: time.UTC, Logger: logger, LogLevel: asynq.WarnLevel})
	if _, err := s.Register(spec, asynq.NewTask(TypeReconcileTick, nil), asynq.Queue(QueueName), asynq.Unique(50*time.Second), asynq.MaxRetry(1)); err != nil {
		return nil, fmt.Errorf("CRM_RECONCILE_CRON: %w", err)
	}
	return s, nil
}
