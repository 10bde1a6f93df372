package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

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

// stepOutcome names what a step run led to, for crm_step_duration_seconds.
func stepOutcome(name string, dec pipeline.Decision, err error) string {
	switch {
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
