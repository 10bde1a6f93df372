package store

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// CreateBatch writes a batch and all its items in one transaction: either the whole
// submission exists or none of it does.
func (s *Store) CreateBatch(ctx context.Context, b *Batch, items []*Item) error {
	now := s.now()
	if b.ID == "" {
		b.ID = NewID()
	}
	b.CreatedAt, b.UpdatedAt = now, now
	b.Status = BatchQueued
	b.ItemCount = len(items)
	for i, it := range items {
		if it.ID == "" {
			it.ID = NewID()
		}
		it.BatchID, it.HostID, it.Idx = b.ID, b.HostID, i
		it.CreatedAt, it.UpdatedAt = now, now
		if it.Status == "" {
			it.Status = ItemSubmitted
		}
		if it.NextRunAt == nil {
			it.NextRunAt = &now
		}
		fillItemDefaults(it)
	}
	return s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(b).Exec(ctx); err != nil {
			return writeError("insert batch", err)
		}
		// Chunk the insert: SQLite limits bound parameters per statement.
		const chunk = 200
		for i := 0; i < len(items); i += chunk {
			j := min(i+chunk, len(items))
			part := items[i:j]
			if _, err := tx.NewInsert().Model(&part).Exec(ctx); err != nil {
				return writeError(fmt.Sprintf("insert items %d..%d", i, j-1), err)
			}
		}
		return nil
	})
}

func fillItemDefaults(it *Item) {
	if it.RequestedModels == nil {
		it.RequestedModels = []string{}
	}
	if it.Corrections == nil {
		it.Corrections = []Correction{}
	}
	if it.Models == nil {
		it.Models = []string{}
	}
	if it.Warnings == nil {
		it.Warnings = []string{}
	}
	if it.Capability == nil {
		it.Capability = map[string]any{}
	}
	if it.Plan == nil {
		it.Plan = map[string]any{}
	}
}

// GetBatch loads a batch.
func (s *Store) GetBatch(ctx context.Context, id string) (*Batch, error) {
	b := new(Batch)
	if err := s.DB.NewSelect().Model(b).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, notFound(err, "batch "+id)
	}
	return b, nil
}

// BatchFilter selects batches for listing.
type BatchFilter struct {
	HostID string
	Status string
	Limit  int
	Offset int
}

// ListBatches returns a page of batches, newest first, and the total matching count.
func (s *Store) ListBatches(ctx context.Context, f BatchFilter) ([]Batch, int, error) {
	var out []Batch
	q := s.DB.NewSelect().Model(&out).Order("created_at DESC", "id DESC")
	if f.HostID != "" {
		q = q.Where("host_id = ?", f.HostID)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.Limit <= 0 {
		f.Limit = 50
	}
	total, err := q.Limit(int64(f.Limit)).Offset(int64(f.Offset)).ScanAndCount(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("list batches: %w", err)
	}
	return out, int(total), nil
}

// StatusCounts returns how many items of the batch are in each status.
func (s *Store) StatusCounts(ctx context.Context, batchID string) (map[string]int, error) {
	counts, err := s.countBy(ctx, "items", "status", "batch_id = ?", batchID)
	if err != nil {
		return nil, fmt.Errorf("batch %s: %w", batchID, err)
	}
	return counts, nil
}

// DeriveBatchStatus computes a batch status from item status counts (product §4).
func DeriveBatchStatus(counts map[string]int) string {
	total, terminal := 0, 0
	for st, n := range counts {
		total += n
		if IsTerminal(st) {
			terminal += n
		}
	}
	switch {
	case total == 0:
		return BatchQueued
	case terminal < total:
		if counts[ItemSubmitted] == total {
			return BatchQueued
		}
		return BatchRunning
	case counts[ItemRolledBack] == total:
		return BatchRolledBack
	case counts[ItemCancelled] == total:
		return BatchCancelled
	}
	good := counts[ItemReady] + counts[ItemReadyWithWarnings]
	skipped := counts[ItemSkipped]
	switch {
	case good+skipped == total && good > 0 || (skipped == total):
		return BatchSucceeded
	case good > 0:
		return BatchPartiallySucceeded
	case counts[ItemCancelled] > 0 && counts[ItemFailed] == 0:
		return BatchCancelled
	default:
		return BatchFailed
	}
}

// refreshBatchStatus recomputes and stores the batch status inside tx.
func refreshBatchStatus(ctx context.Context, tx bun.IDB, batchID string, now time.Time) error {
	var rows []struct {
		Status string `bun:"status"`
		N      int    `bun:"n"`
	}
	if err := tx.NewSelect().TableExpr("items").ColumnExpr("status, COUNT(*) AS n").
		Where("batch_id = ?", batchID).GroupExpr("status").Scan(ctx, &rows); err != nil {
		return fmt.Errorf("count items of batch %s: %w", batchID, err)
	}
	counts := map[string]int{}
	for _, r := range rows {
		counts[r.Status] = r.N
	}
	status := DeriveBatchStatus(counts)
	q := tx.NewUpdate().TableExpr("batches").Set("status = ?", status).Set("updated_at = ?", now).Where("id = ?", batchID)
	switch status {
	case BatchQueued, BatchRunning:
		q = q.Set("finished_at = NULL")
	default:
		q = q.Set("finished_at = COALESCE(finished_at, ?)", now)
	}
	if _, err := q.Exec(ctx); err != nil {
		return fmt.Errorf("update batch %s status: %w", batchID, err)
	}
	return nil
}

// settleBatchStatus runs when an item became terminal. Counting every item of the batch
// each time made a batch quadratic; while any item is still running (one indexed probe)
// the batch simply stays running, and the full count happens once, when the last item
// settles.
//
// On PostgreSQL the batch row is locked first: under READ COMMITTED two items settling at
// once in two transactions would each see the other still running and leave the batch
// running for good; with the lock the second waits for the first to commit and then sees
// its item settled. (SQLite runs one writer at a time.)
func settleBatchStatus(ctx context.Context, tx bun.IDB, batchID string, now time.Time) error {
	if tx.Dialect().Name() == dialect.PG {
		if _, err := tx.NewSelect().TableExpr("batches").ColumnExpr("1").Where("id = ?", batchID).For("UPDATE").Exec(ctx); err != nil {
			return fmt.Errorf("lock batch %s: %w", batchID, err)
		}
	}
	running, err := tx.NewSelect().TableExpr("items").ColumnExpr("1").Where("batch_id = ?", batchID).
		Where("status NOT IN (?)", bun.In(TerminalItemStatuses)).Limit(1).Exists(ctx)
	if err != nil {
		return fmt.Errorf("check running items of batch %s: %w", batchID, err)
	}
	if running {
		_, err := tx.NewUpdate().TableExpr("batches").Set("status = ?", BatchRunning).Set("updated_at = ?", now).
			Where("id = ?", batchID).Where("status <> ?", BatchRunning).Exec(ctx)
		return err
	}
	return refreshBatchStatus(ctx, tx, batchID, now)
}

// RefreshBatchStatus recomputes and stores the batch status.
func (s *Store) RefreshBatchStatus(ctx context.Context, batchID string) error {
	return refreshBatchStatus(ctx, s.DB, batchID, s.now())
}

// SetBatchAction records the outcome of a batch-level operation.
func (s *Store) SetBatchAction(ctx context.Context, batchID string, a Action) error {
	now := s.now()
	a.Finished = &now
	b := &Batch{ID: batchID, LastAction: a, UpdatedAt: now}
	if _, err := s.DB.NewUpdate().Model(b).Column("last_action", "updated_at").WherePK().Exec(ctx); err != nil {
		return fmt.Errorf("record %s of batch %s: %w", a.Kind, batchID, err)
	}
	return nil
}

// MarkRolledBack turns every item of the batch into rolled_back (moving their sequence
// on so that no pending step runs) and refreshes the batch status.
func (s *Store) MarkRolledBack(ctx context.Context, batchID string) error {
	return s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		now := s.now()
		if _, err := tx.NewUpdate().TableExpr("items").Set("status = ?", ItemRolledBack).Set("seq = seq + 1").
			Set("next_run_at = NULL").Set("updated_at = ?", now).Set("finished_at = COALESCE(finished_at, ?)", now).
			Where("batch_id = ?", batchID).Exec(ctx); err != nil {
			return fmt.Errorf("mark items of batch %s rolled back: %w", batchID, err)
		}
		return refreshBatchStatus(ctx, tx, batchID, now)
	})
}

// GetBatchByIdempotencyKey returns the host's batch submitted with key, or ErrNotFound.
func (s *Store) GetBatchByIdempotencyKey(ctx context.Context, hostID, key string) (*Batch, error) {
	b := new(Batch)
	if err := s.DB.NewSelect().Model(b).Where("host_id = ?", hostID).Where("idempotency_key = ?", key).Scan(ctx); err != nil {
		return nil, notFound(err, "batch with idempotency key")
	}
	return b, nil
}
