package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/schema"
)

// GetItem loads an item.
func (s *Store) GetItem(ctx context.Context, id string) (*Item, error) {
	it := new(Item)
	// Every step starts here: prepared (prepared.go).
	err := s.queryRow(ctx, "get item", func() string {
		return s.DB.NewSelect().Model((*Item)(nil)).Where("id = ?", s.ph(1)).String()
	}, it, id)
	if err != nil {
		return nil, notFound(err, "item "+id)
	}
	return it, nil
}

// ListItems returns the items of a batch in submission order.
func (s *Store) ListItems(ctx context.Context, batchID string, limit, offset int) ([]Item, int, error) {
	var out []Item
	if limit <= 0 {
		limit = 1000
	}
	total, err := s.DB.NewSelect().Model(&out).Where("batch_id = ?", batchID).Order("idx ASC").
		Limit(int64(limit)).Offset(int64(offset)).ScanAndCount(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("list items of batch %s: %w", batchID, err)
	}
	return out, int(total), nil
}

// ListAttempts returns the attempts of an item in order.
func (s *Store) ListAttempts(ctx context.Context, itemID string) ([]Attempt, error) {
	var out []Attempt
	if err := s.DB.NewSelect().Model(&out).Where("item_id = ?", itemID).Order("seq ASC").Scan(ctx); err != nil {
		return nil, fmt.Errorf("list attempts of item %s: %w", itemID, err)
	}
	return out, nil
}

// CompleteStep stores the attempt and the item's new state in one transaction, but only
// if the item is still at sequence expectSeq: a second delivery of the same task, or a
// worker that lost a race, gets ErrStale and changes nothing. The batch status is
// refreshed when the item became terminal.
func (s *Store) CompleteStep(ctx context.Context, it *Item, expectSeq int, a *Attempt) error {
	now := s.now()
	it.UpdatedAt = now
	if IsTerminal(it.Status) && it.FinishedAt == nil {
		it.FinishedAt = &now
	}
	if a != nil {
		if a.ID == "" {
			a.ID = NewID()
		}
		a.ItemID = it.ID
		if a.Evidence == nil {
			a.Evidence = []Exchange{}
		}
		it.AttemptCount++
	}
	fillItemDefaults(it)
	// Every step ends here: the item's update and the attempt's insert are prepared
	// statements (prepared.go), written in one transaction.
	f := s.stepFields()
	itemArgs, err := columnArgs(f.item, it)
	if err != nil {
		return fmt.Errorf("update item %s: %w", it.ID, err)
	}
	itemArgs = append(itemArgs, it.ID, expectSeq)
	var attArgs []any
	if a != nil {
		if attArgs, err = columnArgs(f.attempt, a); err != nil {
			return fmt.Errorf("insert attempt for item %s: %w", it.ID, err)
		}
	}
	update, err := s.txStmt(ctx, "update item step", func() string {
		n := len(f.item)
		return fmt.Sprintf(`UPDATE "items" SET %s WHERE "id" = %s AND "seq" = %s`, s.setList(f.item, 1), s.ph(n+1), s.ph(n+2))
	})
	if err != nil {
		return err
	}
	insert, err := s.txStmt(ctx, "insert attempt", func() string {
		return `INSERT INTO "attempts" (` + columnList(f.attempt) + `) VALUES (` + s.placeholders(1, len(f.attempt)) + `)`
	})
	if err != nil {
		return err
	}
	running, err := s.txStmt(ctx, "batch running", func() string {
		return fmt.Sprintf(`UPDATE "batches" SET "status" = %s, "updated_at" = %s WHERE "id" = %s AND "status" = %s`,
			s.ph(1), s.ph(2), s.ph(3), s.ph(4))
	})
	if err != nil {
		return err
	}
	return s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := update(tx).ExecContext(ctx, itemArgs...)
		if err != nil {
			return fmt.Errorf("update item %s: %w", it.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("item %s at seq %d: %w", it.ID, expectSeq, ErrStale)
		}
		if a != nil {
			if _, err := insert(tx).ExecContext(ctx, attArgs...); err != nil {
				return fmt.Errorf("insert attempt for item %s: %w", it.ID, err)
			}
		}
		switch {
		case IsTerminal(it.Status):
			return settleBatchStatus(ctx, tx, it.BatchID, now)
		case expectSeq == 0:
			// The batch's first step: queued → running, without counting its items.
			_, err := running(tx).ExecContext(ctx, BatchRunning, bunTime(now), it.BatchID, BatchQueued)
			return err
		}
		return nil
	})
}

// stepColumns are the columns CompleteStep writes.
type stepColumns struct {
	item    []*schema.Field // every column a step may change
	attempt []*schema.Field
}

// stepFields returns the columns CompleteStep writes, computed once.
func (s *Store) stepFields() *stepColumns {
	s.stepOnce.Do(func() {
		s.stepCols = &stepColumns{
			item: s.modelColumns((*Item)(nil), "id", "batch_id", "host_id", "idx", "name", "base_url", "api_key_enc",
				"key_masked", "key_fingerprint", "created_at"),
			attempt: s.modelColumns((*Attempt)(nil)),
		}
	})
	return s.stepCols
}

// DueItems returns non-terminal items whose next step is due before t, oldest first,
// with only what the recovery sweep needs read (id, batch_id, step, seq, status,
// next_run_at): it runs every 30 s over up to thousands of items.
func (s *Store) DueItems(ctx context.Context, t time.Time, limit int) ([]Item, error) {
	var out []Item
	err := s.DB.NewSelect().Model(&out).Column("id", "batch_id", "step", "seq", "status", "next_run_at").
		Where("status NOT IN (?)", bun.In(TerminalItemStatuses)).
		Where("next_run_at IS NOT NULL AND next_run_at <= ?", t).
		Order("next_run_at ASC").Limit(int64(limit)).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("due items: %w", err)
	}
	return out, nil
}

// NonTerminalItems returns the IDs of the batch's items that are still running.
func (s *Store) NonTerminalItems(ctx context.Context, batchID string) ([]Item, error) {
	var out []Item
	err := s.DB.NewSelect().Model(&out).Where("batch_id = ?", batchID).
		Where("status NOT IN (?)", bun.In(TerminalItemStatuses)).Order("idx ASC").Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("running items of batch %s: %w", batchID, err)
	}
	return out, nil
}

// ItemsByStatus returns the batch's items in one of statuses.
func (s *Store) ItemsByStatus(ctx context.Context, batchID string, statuses ...string) ([]Item, error) {
	var out []Item
	err := s.DB.NewSelect().Model(&out).Where("batch_id = ?", batchID).
		Where("status IN (?)", bun.In(statuses)).Order("idx ASC").Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("items of batch %s: %w", batchID, err)
	}
	return out, nil
}

// FindImportedKey returns an item of an earlier batch on the same host with the same key
// fingerprint that is ready or still on its way (so a batch submitted twice, e.g. after a
// lost answer, does not import its keys twice); nil when none. Only earlier batches
// count, so two batches racing each other never skip both.
func (s *Store) FindImportedKey(ctx context.Context, hostID, fingerprint, batchID string) (*Item, error) {
	it := new(Item)
	// Every import asks: prepared (prepared.go). The far-future time stands for a batch
	// that is not stored (yet): every stored one is earlier.
	err := s.queryRow(ctx, "find imported key", func() string {
		return s.DB.NewSelect().Model((*Item)(nil)).Where("host_id = ?", s.ph(1)).Where("key_fingerprint = ?", s.ph(2)).
			Where("batch_id != ?", s.ph(3)).
			Where("batch_id IN (SELECT b2.id FROM batches AS b2 WHERE b2.created_at < COALESCE((SELECT b1.created_at FROM batches AS b1 WHERE b1.id = ?), ?) OR (b2.created_at = (SELECT b1.created_at FROM batches AS b1 WHERE b1.id = ?) AND b2.id < ?))",
				s.ph(4), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), s.ph(5), s.ph(6)).
			Where("status NOT IN (?)", bun.In([]string{ItemFailed, ItemSkipped, ItemCancelled, ItemRolledBack})).
			Order("created_at ASC", "idx ASC").Limit(1).String()
	}, it, hostID, fingerprint, batchID, batchID, batchID, batchID)
	if err == sql.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find imported key: %w", err)
	}
	return it, nil
}

// RetryFailed moves the batch's failed items back to the start of the pipeline with a new
// sequence number and returns them; the ledger is kept, so re-running adopts what exists.
func (s *Store) RetryFailed(ctx context.Context, batchID string, firstStep string) ([]Item, error) {
	var out []Item
	err := s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := tx.NewSelect().Model(&out).Where("batch_id = ?", batchID).Where("status = ?", ItemFailed).Order("idx ASC").Scan(ctx); err != nil {
			return err
		}
		now := s.now()
		for i := range out {
			it := &out[i]
			it.Seq++
			it.Step, it.Status, it.StepAttempts, it.StepRetries = firstStep, ItemSubmitted, 0, 0
			it.FailureClass, it.FailureMessage, it.WindowDeadline, it.FinishedAt = "", "", nil, nil
			it.NextRunAt, it.UpdatedAt = &now, now
			if _, err := tx.NewUpdate().Model(it).Column("seq", "step", "status", "step_attempts", "step_retries", "failure_class", "failure_message",
				"window_deadline", "finished_at", "next_run_at", "updated_at").WherePK().Exec(ctx); err != nil {
				return err
			}
		}
		return refreshBatchStatus(ctx, tx, batchID, now)
	})
	if err != nil {
		return nil, fmt.Errorf("retry failed items of batch %s: %w", batchID, err)
	}
	return out, nil
}

// CancelBatch stops every non-terminal item of the batch: pending steps become stale (the
// sequence moves on) and nothing more is scheduled. What exists on the host is kept.
func (s *Store) CancelBatch(ctx context.Context, batchID string) (int, error) {
	var n int
	err := s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		now := s.now()
		res, err := tx.NewUpdate().TableExpr("items").
			Set("status = ?", ItemCancelled).Set("seq = seq + 1").Set("next_run_at = NULL").
			Set("updated_at = ?", now).Set("finished_at = ?", now).
			Where("batch_id = ?", batchID).Where("status NOT IN (?)", bun.In(TerminalItemStatuses)).Exec(ctx)
		if err != nil {
			return err
		}
		rows, _ := res.RowsAffected()
		n = int(rows)
		return refreshBatchStatus(ctx, tx, batchID, now)
	})
	if err != nil {
		return 0, fmt.Errorf("cancel batch %s: %w", batchID, err)
	}
	return n, nil
}

// ItemStatuses returns the status of each of the given items (missing ids are left out).
func (s *Store) ItemStatuses(ctx context.Context, ids []string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	const chunk = 500 // SQLite limits bound parameters per statement
	for i := 0; i < len(ids); i += chunk {
		var rows []struct {
			ID     string `bun:"id"`
			Status string `bun:"status"`
		}
		if err := s.DB.NewSelect().TableExpr("items").Column("id", "status").
			Where("id IN (?)", bun.In(ids[i:min(i+chunk, len(ids))])).Scan(ctx, &rows); err != nil {
			return nil, fmt.Errorf("item statuses: %w", err)
		}
		for _, r := range rows {
			out[r.ID] = r.Status
		}
	}
	return out, nil
}
