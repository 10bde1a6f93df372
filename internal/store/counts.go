package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// ItemCounts returns the number of items per status, over every batch (the metrics'
// crm_items, read at scrape time).
func (s *Store) ItemCounts(ctx context.Context) (map[string]int, error) {
	return s.countBy(ctx, "items", "status", "")
}

// FailureCounts returns the number of attempts per (non-empty) failure class; attempts
// are append-only, so the numbers only grow.
func (s *Store) FailureCounts(ctx context.Context) (map[string]int, error) {
	return s.countBy(ctx, "attempts", "failure_class", "failure_class <> ''")
}

// countBy runs one GROUP BY count of table by column, optionally filtered.
func (s *Store) countBy(ctx context.Context, table, column, where string, args ...any) (map[string]int, error) {
	var rows []struct {
		K string `bun:"k"`
		N int    `bun:"n"`
	}
	q := s.DB.NewSelect().TableExpr(table).ColumnExpr("? AS k", bun.Ident(column)).ColumnExpr("count(*) AS n").GroupExpr("?", bun.Ident(column))
	if where != "" {
		q = q.Where(where, args...)
	}
	if err := q.Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("count %s by %s: %w", table, column, err)
	}
	out := make(map[string]int, len(rows))
	for _, r := range rows {
		out[r.K] += r.N
	}
	return out, nil
}
