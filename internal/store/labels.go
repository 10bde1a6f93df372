package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// ItemLabel is how pages name an item: its number in the batch (from 1) and its name.
type ItemLabel struct {
	ID      string `bun:"id"`
	BatchID string `bun:"batch_id"`
	Idx     int    `bun:"idx"`
	Name    string `bun:"name"`
}

// Number is the item's position in its batch, counted from 1.
func (l ItemLabel) Number() int { return l.Idx + 1 }

// ItemLabels returns the labels of the items with these IDs (unknown IDs are left out).
func (s *Store) ItemLabels(ctx context.Context, ids []string) (map[string]ItemLabel, error) {
	out := map[string]ItemLabel{}
	ids = distinct(ids)
	if len(ids) == 0 {
		return out, nil
	}
	var rows []ItemLabel
	if err := s.DB.NewSelect().TableExpr("items").Column("id", "batch_id", "idx", "name").
		Where("id IN (?)", bun.In(ids)).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("item labels: %w", err)
	}
	for _, r := range rows {
		out[r.ID] = r
	}
	return out, nil
}

// BatchNames returns the names of the batches with these IDs ("" for an unnamed batch;
// unknown IDs are left out).
func (s *Store) BatchNames(ctx context.Context, ids []string) (map[string]string, error) {
	out := map[string]string{}
	ids = distinct(ids)
	if len(ids) == 0 {
		return out, nil
	}
	var rows []struct {
		ID   string `bun:"id"`
		Name string `bun:"name"`
	}
	if err := s.DB.NewSelect().TableExpr("batches").Column("id", "name").Where("id IN (?)", bun.In(ids)).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("batch names: %w", err)
	}
	for _, r := range rows {
		out[r.ID] = r.Name
	}
	return out, nil
}

func distinct(ids []string) []string {
	seen := map[string]bool{}
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id != "" && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
