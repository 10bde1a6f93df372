package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cn-relay-manager/cn-relay-manager/internal/metrics"
	"github.com/cn-relay-manager/cn-relay-manager/internal/pipeline"
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
}

// Register adds the handlers to mux; each run is timed in crm_step_duration_seconds
// under its task type.
func (h *OperationHandlers) Register(mux *asynq.ServeMux) {
	mux.HandleFunc(TypeRollback, timed(h.handleRollback))
	mux.HandleFunc(TypeReconcile, timed(h.handleReconcile))
	mux.HandleFunc(TypeReconcileTick, timed(h.handleTick))
}

func timed(fn func(context.Context, *asynq.Task) error) func(context.Context, *asynq.Task) error {
	return func(ctx context.Context, t *asynq.Task) error {
		start := time.Now()
		err := fn(ctx, t)
		outcome := metrics.OutcomeFinished
		if err != nil {
			outcome = metrics.OutcomeError
		}
		metrics.ObserveStep(t.Type(), outcome, time.Since(start))
		return err
	}
}

func (h *OperationHandlers) handleRollback(ctx context.Context, t *asynq.Task) error {
	var p BatchPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.BatchID == "" {
		return fmt.Errorf("bad rollback payload: %w", asynq.SkipRetry)
	}
	act, err := h.Ops.Rollback(ctx, p.BatchID)
	if errors.Is(err, pipeline.ErrNothingRecorded) || errors.Is(err, store.ErrNotFound) {
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
		r, started, err := h.startPeriodic(ctx, p.HostID, p.Slot)
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

// startPeriodic creates the run of a periodic slot. One run per (host, slot) is enforced
// by a unique index, so a second scheduler or a late duplicate does nothing. A host whose
// previous run (periodic or asked for) is still running is skipped: the slot gets a run in
// status "skipped" naming the running one, so the run list says why there was no
// comparison. At most one periodic run per host runs at a time (a partial unique index), so
// two slots racing past the check cannot both start.
func (h *OperationHandlers) startPeriodic(ctx context.Context, hostID, slot string) (*store.ReconcileRun, bool, error) {
	prev, err := h.Store.RunningReconcile(ctx, hostID, StaleReconcileAfter)
	if err != nil {
		return nil, false, err
	}
	run := &store.ReconcileRun{HostID: hostID, Slot: slot}
	if prev == nil {
		err := h.Store.CreateReconcileRun(ctx, run)
		if err == nil {
			return run, true, nil
		}
		if !isUniqueViolation(err) {
			return nil, false, err
		}
		if taken, terr := h.Store.ReconcileSlotTaken(ctx, hostID, slot); terr != nil || taken {
			return nil, false, terr // this slot already ran (or runs): nothing to do
		}
		// Another periodic run of the host started between the check and the insert.
		if prev, err = h.Store.RunningReconcile(ctx, hostID, StaleReconcileAfter); err != nil {
			return nil, false, err
		}
	}
	run = &store.ReconcileRun{HostID: hostID, Slot: slot, Status: store.RunSkipped,
		Summary: "skipped: the previous reconcile of this host is still running"}
	if prev != nil {
		run.Summary = fmt.Sprintf("skipped: reconcile run %s (started %s) is still running, %d of %d objects checked",
			prev.ID, prev.StartedAt.UTC().Format(time.RFC3339), prev.ObjectsChecked, prev.ObjectsTotal)
	}
	if err := h.Store.CreateReconcileRun(ctx, run); err != nil {
		if isUniqueViolation(err) {
			return nil, false, nil
		}
		return nil, false, err
	}
	now := run.StartedAt
	run.FinishedAt = &now
	return nil, false, h.Store.FinishReconcileRun(ctx, run)
}

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

func isUniqueViolation(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "unique") || strings.Contains(s, "duplicate key")
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
