package store

import (
	"context"
	"fmt"
	"time"
)

// FailedURLs returns the distinct normalised upstream URLs of the host's items that failed
// with failure class class and were last updated at or after since (the zero time: ever).
// The pipeline uses it to warn, before any write, about URLs the host has already refused.
func (s *Store) FailedURLs(ctx context.Context, hostID, class string, since time.Time) ([]string, error) {
	var urls []string
	q := s.DB.NewSelect().Model((*Item)(nil)).ColumnExpr("DISTINCT normalized_url").
		Where("host_id = ?", hostID).Where("status = ?", ItemFailed).Where("failure_class = ?", class).
		Where("normalized_url <> ''")
	if !since.IsZero() {
		q = q.Where("updated_at >= ?", since)
	}
	if err := q.Scan(ctx, &urls); err != nil {
		return nil, fmt.Errorf("failed urls of host %s: %w", hostID, err)
	}
	return urls, nil
}
