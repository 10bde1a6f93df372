package jobs

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// Sweeper re-enqueues every non-terminal item whose next step is due (or soon due) from
// the database, so that a lost Redis, a crash between commit and enqueue, or an archived
// task loses no work. Task IDs make it safe to run anywhere and often.
type Sweeper struct {
	Store     *store.Store
	Queue     *Queue
	Log       *slog.Logger
	Lookahead time.Duration // also enqueue items due within this window (as scheduled tasks)
	Batch     int
}

// Sweep runs one pass and returns how many tasks it enqueued.
func (s *Sweeper) Sweep(ctx context.Context) (int, error) {
	limit := s.Batch
	if limit <= 0 {
		limit = 5000
	}
	now := time.Now().UTC()
	items, err := s.Store.DueItems(ctx, now.Add(s.Lookahead), limit)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, it := range items {
		at := now
		if it.NextRunAt != nil {
			at = *it.NextRunAt
		}
		err := s.Queue.EnqueueStep(ctx, it.Step, it.ID, it.Seq, at)
		switch {
		case err == nil:
			n++
		case errors.Is(err, ErrExists):
			if s.freeArchived(ctx, it, now) {
				if err := s.Queue.EnqueueStep(ctx, it.Step, it.ID, it.Seq, now); err == nil {
					n++
				}
			}
		default:
			return n, err
		}
	}
	return n, nil
}

// freeArchived deletes an archived task that holds the ID of an overdue item step: asynq
// keeps archived task IDs for up to 90 days, which would otherwise block the item forever.
func (s *Sweeper) freeArchived(ctx context.Context, it store.Item, now time.Time) bool {
	if s.Queue.Inspector == nil || it.NextRunAt == nil || now.Sub(*it.NextRunAt) < time.Minute {
		return false
	}
	id := StepTaskID(it.Step, it.ID, it.Seq)
	queue := QueueOf(it.Step)
	info, err := s.Queue.Inspector.GetTaskInfo(queue, id)
	if err != nil || info.State != asynq.TaskStateArchived {
		return false
	}
	if err := s.Queue.Inspector.DeleteTask(queue, id); err != nil {
		return false
	}
	s.Log.Warn("freed archived task for an overdue item", "item_id", it.ID, "step", it.Step, "last_error", info.LastErr)
	return true
}

// Run sweeps at start and then every interval until ctx ends.
func (s *Sweeper) Run(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if n, err := s.Sweep(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.Log.Warn("recovery sweep failed", "error", err)
		} else if n > 0 {
			s.Log.Info("recovery sweep re-enqueued item steps", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
