package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

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

// ItemGroup is the number of items of one host, provider, status and failure class.
type ItemGroup struct {
	Host     string `bun:"host"` // the host's name
	Provider string `bun:"provider"`
	Status   string `bun:"status"`
	Class    string `bun:"failure_class"`
	N        int    `bun:"n"`
}

// ItemBreakdown counts items by host (name), provider, status and failure class in one
// GROUP BY (the metrics' state gauges, read at scrape time).
func (s *Store) ItemBreakdown(ctx context.Context) ([]ItemGroup, error) {
	var rows []ItemGroup
	err := s.DB.NewSelect().TableExpr("items AS i").Join("JOIN hosts AS h ON h.id = i.host_id").
		ColumnExpr("h.name AS host, i.provider, i.status, i.failure_class, count(*) AS n").
		GroupExpr("h.name, i.provider, i.status, i.failure_class").Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("count items by host, provider and status: %w", err)
	}
	return rows, nil
}
