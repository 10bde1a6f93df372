package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cn-relay-manager/cn-relay-manager/internal/backoff"
	"github.com/cn-relay-manager/cn-relay-manager/internal/limit"
	"github.com/cn-relay-manager/cn-relay-manager/internal/metrics"
	"github.com/cn-relay-manager/cn-relay-manager/internal/pipeline"
	"github.com/cn-relay-manager/cn-relay-manager/internal/step"
)

// StepRunner runs one pipeline step; *pipeline.Engine satisfies it.
type StepRunner interface {
	Run(ctx context.Context, name, itemID string, seq int) (pipeline.Decision, error)
}

// Handlers connects asynq tasks to the pipeline.
type Handlers struct {
	Runner  StepRunner
	Queue   *Queue
	Log     *slog.Logger
	Metrics *metrics.Metrics // step durations (nil: not recorded)
}

// Mux returns the asynq handler for every task type this process serves.
func (h *Handlers) Mux() *asynq.ServeMux {
	mux := asynq.NewServeMux()
	for _, s := range step.Table {
		mux.HandleFunc(s.Name, h.handleStep)
	}
	return mux
}

func (h *Handlers) handleStep(ctx context.Context, t *asynq.Task) error {
	var p StepPayload
	start := time.Now()
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.ItemID == "" {
		h.Metrics.ObserveStep(t.Type(), metrics.OutcomeInvalid, time.Since(start))
		return fmt.Errorf("bad %s payload: %w", t.Type(), asynq.SkipRetry)
	}
	dec, err := h.Runner.Run(ctx, t.Type(), p.ItemID, p.Seq)
	h.Metrics.ObserveStep(t.Type(), stepOutcome(t.Type(), dec, err), time.Since(start))
	if _, busy := limit.IsBusy(err); busy {
		// Not a failure: the task is parked in asynq's retry set (RetryDelay: the cap's
		// RetryIn; IsFailure: no retry spent), holding no worker slot and keeping its
		// task ID, so the recovery sweep leaves it alone and asynqmon shows it waiting
		// with the cap's message. A step in the cap's wait list is run again by the
		// release of a slot (Queue.Wake); RetryIn is the safety net.
		return err
	}
	if err != nil {
		h.Log.Warn("step failed; asynq will retry", "step", t.Type(), "item_id", p.ItemID, "seq", p.Seq, "error", err)
		return err
	}
	if dec.Next == "" {
		return nil
	}
	// The decision is already in the database; if this enqueue is lost the recovery sweep
	// re-creates the task from the item's next_run_at.
	if err := h.Queue.EnqueueStep(ctx, dec.Next, dec.ItemID, dec.Seq, time.Now().Add(dec.Delay)); err != nil && !errors.Is(err, ErrExists) {
		h.Log.Warn("enqueue next step failed; the recovery sweep will retry", "step", dec.Next, "item_id", dec.ItemID, "error", err)
	}
	return nil
}

// IsFailure is asynq's Config.IsFailure: a step deferred because a concurrency cap was
// full has not failed, so it does not use up one of the task's retries.
func IsFailure(err error) bool {
	_, busy := limit.IsBusy(err)
	return !busy
}

// RetryDelay is asynq's Config.RetryDelayFunc: a deferred step runs again after the
// cap's hint; a failed task backs off by the queue's policy (backoff.Queue).
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	if b, busy := limit.IsBusy(err); busy {
		return b.RetryIn
	}
	return backoff.Queue.Delay(n, 0)
}

// stepOutcome names what a step run led to, for crm_step_duration_seconds.
func stepOutcome(name string, dec pipeline.Decision, err error) string {
	_, busy := limit.IsBusy(err)
	switch {
	case busy:
		return metrics.OutcomeDeferred
	case err != nil:
		return metrics.OutcomeError
	case dec.Next == "":
		return metrics.OutcomeFinished
	case dec.Next == name:
		return metrics.OutcomeRescheduled
	default:
		return metrics.OutcomeAdvanced
	}
}
