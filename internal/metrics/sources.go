package metrics

import (
	"context"
	"errors"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// StoreSource reads item counts and failure counts with two GROUP BY queries.
type StoreSource struct{ DB *bun.DB }

type groupCount struct {
	Key string `bun:"k"`
	N   int    `bun:"n"`
}

// ItemCounts returns the number of items per status.
func (s StoreSource) ItemCounts(ctx context.Context) (map[string]int, error) {
	var rows []groupCount
	err := s.DB.NewSelect().Model((*store.Item)(nil)).ColumnExpr("status AS k").ColumnExpr("count(*) AS n").
		Group("status").Scan(ctx, &rows)
	return toMap(rows), err
}

// FailureCounts returns the number of attempts per (non-empty) failure class.
func (s StoreSource) FailureCounts(ctx context.Context) (map[string]int, error) {
	var rows []groupCount
	err := s.DB.NewSelect().Model((*store.Attempt)(nil)).ColumnExpr("failure_class AS k").ColumnExpr("count(*) AS n").
		Where("failure_class <> ''").Group("failure_class").Scan(ctx, &rows)
	return toMap(rows), err
}

func toMap(rows []groupCount) map[string]int {
	m := make(map[string]int, len(rows))
	for _, r := range rows {
		m[r.Key] += r.N
	}
	return m
}

func isQueueNotFound(err error) bool {
	return errors.Is(err, asynq.ErrQueueNotFound) || strings.Contains(err.Error(), "does not exist") ||
		strings.Contains(err.Error(), "not found")
}
