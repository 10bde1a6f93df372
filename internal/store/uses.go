package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// Use records that an item (of a batch) relies on a ledger object it may share with
// other items and batches: its target group, the managed user, that user's key and
// subscription for the group. A rollback releases the uses of its batch and deletes a
// shared object only when no use is left (and this product created it).
type Use struct {
	bun.BaseModel `bun:"table:resource_uses"`

	ResourceID string    `bun:"resource_id,pk" json:"resource_id"`
	ItemID     string    `bun:"item_id,pk" json:"item_id"`
	BatchID    string    `bun:"batch_id" json:"batch_id"`
	CreatedAt  time.Time `bun:"created_at" json:"created_at"`
}

// AddUse records that item (of batch) uses ledger row resourceID; recording it twice is
// harmless.
func (s *Store) AddUse(ctx context.Context, resourceID, batchID, itemID string) error {
	// Every item records its uses of pooled rows: prepared (prepared.go).
	_, err := s.execPrepared(ctx, "add use", func() string {
		return fmt.Sprintf(`INSERT INTO "resource_uses" ("resource_id", "item_id", "batch_id", "created_at") VALUES (%s) `+
			`ON CONFLICT ("resource_id", "item_id") DO NOTHING`, s.placeholders(1, 4))
	}, resourceID, itemID, batchID, bunTime(s.now()))
	if err != nil {
		return fmt.Errorf("ledger use of %s by item %s: %w", resourceID, itemID, err)
	}
	return nil
}

// ReleaseUses forgets every use of resourceID by batch (its rollback handled the object).
func (s *Store) ReleaseUses(ctx context.Context, resourceID, batchID string) error {
	if _, err := s.DB.NewDelete().Model((*Use)(nil)).Where("resource_id = ?", resourceID).Where("batch_id = ?", batchID).Exec(ctx); err != nil {
		return fmt.Errorf("release uses of %s by batch %s: %w", resourceID, batchID, err)
	}
	return nil
}

// UsingBatches returns the batches other than except that still use resourceID, with the
// number of their items that do.
func (s *Store) UsingBatches(ctx context.Context, resourceID, except string) (map[string]int, error) {
	var rows []struct {
		BatchID string `bun:"batch_id"`
		N       int    `bun:"n"`
	}
	q := s.DB.NewSelect().Model((*Use)(nil)).Column("batch_id").ColumnExpr("COUNT(*) AS n").
		Where("resource_id = ?", resourceID).Group("batch_id")
	if except != "" {
		q = q.Where("batch_id <> ?", except)
	}
	if err := q.Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("uses of %s: %w", resourceID, err)
	}
	out := make(map[string]int, len(rows))
	for _, r := range rows {
		out[r.BatchID] = r.N
	}
	return out, nil
}

// UsedByBatch returns the ledger rows a batch uses without having created them (shared
// objects another batch created, or found/existing ones), for its rollback.
func (s *Store) UsedByBatch(ctx context.Context, batchID string) ([]Resource, error) {
	var out []Resource
	err := s.DB.NewSelect().Model(&out).
		Where("id IN (?)", s.DB.NewSelect().Model((*Use)(nil)).Column("resource_id").Where("batch_id = ?", batchID)).
		Where("batch_id <> ?", batchID).Order("created_at ASC", "id ASC").Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("ledger rows used by batch %s: %w", batchID, err)
	}
	return out, nil
}

// BatchGroup is one host group a batch's accounts joined (or, in a dry run, would join):
// what the operator sees as "groups created vs reused".
type BatchGroup struct {
	Name string `json:"name"`
	// Action is create (this batch created the group), reuse (it existed already: made by
	// an earlier batch, or found on the host under that name) or existing (the operator's
	// named target group).
	Action string `json:"action"`
	Items  int    `json:"items"` // items of the batch that target it
	Ready  int    `json:"ready"` // of which proven ready
	// Planned is true for a dry run: nothing was written, Action is what a real run would do.
	Planned bool `json:"planned,omitempty"`
}

// BatchGroups summarises the target groups of a batch's items.
func (s *Store) BatchGroups(ctx context.Context, b *Batch) ([]BatchGroup, error) {
	var rows []struct {
		Name  string `bun:"target_group"`
		N     int    `bun:"n"`
		Ready int    `bun:"ready"`
	}
	// Counted from the index items(batch_id, target_group, status) alone: the batch page
	// is polled while a batch runs, and reading every item row (with its plan) cost 50 ms
	// at 10 000 items. The plan of one item is read only for a group the ledger lacks.
	err := s.DB.NewSelect().TableExpr("items").Column("target_group").ColumnExpr("COUNT(*) AS n").
		ColumnExpr("SUM(CASE WHEN status IN (?, ?) THEN 1 ELSE 0 END) AS ready", ItemReady, ItemReadyWithWarnings).
		Where("batch_id = ?", b.ID).Where("target_group <> ''").Group("target_group").Order("target_group").Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("groups of batch %s: %w", b.ID, err)
	}
	out := make([]BatchGroup, 0, len(rows))
	for _, r := range rows {
		g := BatchGroup{Name: r.Name, Items: r.N, Ready: r.Ready, Planned: b.DryRun}
		res, err := s.FindResource(ctx, b.HostID, TypeGroup, r.Name)
		switch {
		case err == nil && res.Origin == OriginExisting:
			g.Action = "existing"
		case err == nil && res.BatchID == b.ID && res.Origin == OriginCreated && res.State != ResourceAdopted:
			g.Action = "create"
		case err == nil:
			g.Action = "reuse"
		default:
			var plan string
			if err := s.DB.NewSelect().TableExpr("items").Column("plan").Where("batch_id = ?", b.ID).
				Where("target_group = ?", r.Name).Limit(1).Scan(ctx, &plan); err != nil {
				return nil, fmt.Errorf("plan of group %s in batch %s: %w", r.Name, b.ID, err)
			}
			g.Action = planAction(plan)
		}
		out = append(out, g)
	}
	return out, nil
}

// planAction reads the group action an item's import plan recorded.
func planAction(plan string) string {
	var p struct {
		Group struct {
			Action string `json:"action"`
		} `json:"group"`
	}
	if json.Unmarshal([]byte(plan), &p) == nil && p.Group.Action != "" {
		return p.Group.Action
	}
	return "create"
}
