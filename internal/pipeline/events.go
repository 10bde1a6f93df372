package pipeline

import (
	"context"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/evidence"
)

// StepEvent is what one item step recorded: its attempt's outcome and failure class, and
// the item's provider and host name (the metrics' per-provider and per-host counters).
type StepEvent struct {
	Step, Outcome, Class, Provider, Host string
}

// persistAndTell persists a step's result and tells Events about it.
func (e *Engine) persistAndTell(ctx context.Context, sc *stepContext, step string, seq int, started time.Time, res result, rec *evidence.Recorder) (Decision, error) {
	dec, err := e.persist(ctx, sc, step, seq, started, res, rec)
	if err == nil && e.Events != nil {
		e.Events(StepEvent{Step: step, Outcome: res.outcome, Class: string(res.class), Provider: sc.item.Provider, Host: sc.host.Name})
	}
	return dec, err
}
