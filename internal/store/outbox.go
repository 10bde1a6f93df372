package store

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// Outbox row states.
const (
	OutboxPending   = "pending"   // to be delivered (at next_at)
	OutboxDelivered = "delivered" // the receiver accepted it
	OutboxFailed    = "failed"    // refused for good, or out of attempts
)

// OutboxRow is one delivery of one event to one webhook. (event_id, webhook_id) is
// unique, so raising the same event again (a second scan, a repeated task) adds nothing:
// each event is delivered once per webhook whatever the number of workers and restarts.
type OutboxRow struct {
	bun.BaseModel `bun:"table:notification_outbox"`

	ID        string `bun:"id,pk" json:"id"`
	EventID   string `bun:"event_id" json:"event_id"`
	WebhookID string `bun:"webhook_id" json:"webhook_id"`
	HostID    string `bun:"host_id" json:"host_id"`
	EventType string `bun:"event_type" json:"event_type"`
	// Payload is the event as JSON (no secrets: keys masked, texts redacted).
	Payload  string    `bun:"payload" json:"-"`
	State    string    `bun:"state" json:"state"`
	Attempts int       `bun:"attempts" json:"attempts"`
	NextAt   time.Time `bun:"next_at" json:"next_at"`
	// LeaseUntil: a worker claimed the row for one attempt until then; another worker may
	// claim it only after the lease ran out (the first died mid-attempt).
	LeaseUntil *time.Time `bun:"lease_until" json:"lease_until,omitempty"`
	LastError  string     `bun:"last_error" json:"last_error,omitempty"`
	CreatedAt  time.Time  `bun:"created_at" json:"created_at"`
	UpdatedAt  time.Time  `bun:"updated_at" json:"updated_at"`
}

// Event is one notification to queue: its stable ID (the delivery ID receivers
// de-duplicate on), type and JSON payload. At, when set, is when it happened: a webhook
// added after that does not get it (an old batch found by a later scan).
type Event struct {
	ID      string
	Type    string
	At      time.Time
	Payload []byte
}

// AddEvent queues an event for every webhook of the host that takes its type (and, with
// e.At set, existed when it happened). It returns the rows it added; an event already
// queued for a webhook is not added again.
func (s *Store) AddEvent(ctx context.Context, hostID string, e Event) ([]OutboxRow, error) {
	return s.addEvents(ctx, s.DB, hostID, []Event{e})
}

func (s *Store) addEvents(ctx context.Context, db bun.IDB, hostID string, events []Event) ([]OutboxRow, error) {
	if len(events) == 0 {
		return nil, nil
	}
	var hooks []Webhook
	if err := db.NewSelect().Model(&hooks).Where("host_id = ?", hostID).Scan(ctx); err != nil {
		return nil, fmt.Errorf("webhooks of host %s: %w", hostID, err)
	}
	var added []OutboxRow
	now := s.now()
	for _, e := range events {
		for i := range hooks {
			w := &hooks[i]
			if !w.Wants(e.Type) || (!e.At.IsZero() && w.CreatedAt.After(e.At)) {
				continue
			}
			row := OutboxRow{ID: NewID(), EventID: e.ID, WebhookID: w.ID, HostID: hostID, EventType: e.Type,
				Payload: string(e.Payload), State: OutboxPending, NextAt: now, CreatedAt: now, UpdatedAt: now}
			res, err := db.NewInsert().Model(&row).On("CONFLICT (event_id, webhook_id) DO NOTHING").Exec(ctx)
			if err != nil {
				return added, fmt.Errorf("queue %s event %s: %w", e.Type, e.ID, err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				added = append(added, row)
			}
		}
	}
	return added, nil
}

// ClaimOutbox takes a due, unclaimed pending row for one attempt: it counts the attempt
// and leases the row for lease. It reports false when the row is not due, delivered,
// failed, or leased by another worker.
func (s *Store) ClaimOutbox(ctx context.Context, id string, lease time.Duration) (*OutboxRow, bool, error) {
	now := s.now()
	res, err := s.DB.NewUpdate().Model((*OutboxRow)(nil)).Set("attempts = attempts + 1").Set("lease_until = ?", now.Add(lease)).
		Set("updated_at = ?", now).Where("id = ?", id).Where("state = ?", OutboxPending).Where("next_at <= ?", now).
		WhereGroup(" AND ", func(q *bun.UpdateQuery) *bun.UpdateQuery {
			return q.Where("lease_until IS NULL").WhereOr("lease_until < ?", now)
		}).Exec(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("claim delivery %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return nil, false, nil
	}
	row := new(OutboxRow)
	if err := s.DB.NewSelect().Model(row).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, false, fmt.Errorf("read delivery %s: %w", id, err)
	}
	return row, true, nil
}

// SettleOutbox stores the outcome of the attempt a worker claimed: state delivered,
// failed, or pending again with the next attempt at next.
func (s *Store) SettleOutbox(ctx context.Context, row *OutboxRow, state string, next time.Time, lastError string) error {
	now := s.now()
	row.State, row.LastError, row.UpdatedAt, row.LeaseUntil = state, lastError, now, nil
	if !next.IsZero() {
		row.NextAt = next.UTC()
	}
	if _, err := s.DB.NewUpdate().Model(row).Column("state", "last_error", "updated_at", "lease_until", "next_at").
		WherePK().Exec(ctx); err != nil {
		return fmt.Errorf("settle delivery %s: %w", row.ID, err)
	}
	return nil
}

// DueOutbox returns pending rows due at t that no worker holds, oldest first.
func (s *Store) DueOutbox(ctx context.Context, t time.Time, limit int) ([]OutboxRow, error) {
	var out []OutboxRow
	q := s.DB.NewSelect().Model(&out).Where("state = ?", OutboxPending).Where("next_at <= ?", t).
		WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
			return q.Where("lease_until IS NULL").WhereOr("lease_until < ?", t)
		}).Order("next_at ASC")
	if limit > 0 {
		q = q.Limit(int64(limit))
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("due deliveries: %w", err)
	}
	return out, nil
}

// ListOutbox returns the newest deliveries of a host first.
func (s *Store) ListOutbox(ctx context.Context, hostID string, limit int) ([]OutboxRow, error) {
	out := []OutboxRow{}
	if limit <= 0 {
		limit = 50
	}
	if err := s.DB.NewSelect().Model(&out).Where("host_id = ?", hostID).Order("created_at DESC", "id DESC").
		Limit(int64(limit)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("deliveries of host %s: %w", hostID, err)
	}
	return out, nil
}

// OutboxCounts returns the number of deliveries in each state.
func (s *Store) OutboxCounts(ctx context.Context) (map[string]int, error) {
	return s.countBy(ctx, "notification_outbox", "state", "")
}

// FinishedBatches returns the batches of a host that finished at or after since (final
// state, not dry runs), for the batch_finished notification.
func (s *Store) FinishedBatches(ctx context.Context, hostID string, since time.Time) ([]Batch, error) {
	var out []Batch
	if err := s.DB.NewSelect().Model(&out).Where("host_id = ?", hostID).Where("dry_run = ?", false).
		Where("finished_at IS NOT NULL").Where("finished_at >= ?", since).
		Where("status NOT IN (?)", bun.In([]string{BatchQueued, BatchRunning})).Order("finished_at ASC").Scan(ctx); err != nil {
		return nil, fmt.Errorf("finished batches of host %s: %w", hostID, err)
	}
	return out, nil
}

// BatchFailureClasses counts a batch's failed items per failure class.
func (s *Store) BatchFailureClasses(ctx context.Context, batchID string) (map[string]int, error) {
	return s.countBy(ctx, "items", "failure_class", "batch_id = ? AND status = ? AND failure_class <> ''", batchID, ItemFailed)
}
