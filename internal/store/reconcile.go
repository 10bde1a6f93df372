package store

import (
	"context"
	"fmt"
)

// CreateReconcileRun inserts a run in state "running". A run for a periodic slot is
// unique per (host, slot): a second scheduler enqueuing the same slot finds it exists.
func (s *Store) CreateReconcileRun(ctx context.Context, r *ReconcileRun) error {
	if r.ID == "" {
		r.ID = NewID()
	}
	r.StartedAt = s.now()
	if r.Status == "" {
		r.Status = "running"
	}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	if _, err := s.DB.NewInsert().Model(r).Exec(ctx); err != nil {
		return fmt.Errorf("insert reconcile run: %w", err)
	}
	return nil
}

// FinishReconcileRun stores the findings and summary of a run.
func (s *Store) FinishReconcileRun(ctx context.Context, r *ReconcileRun) error {
	now := s.now()
	r.FinishedAt = &now
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	_, err := s.DB.NewUpdate().Model(r).Column("status", "findings", "summary", "finished_at").WherePK().Exec(ctx)
	if err != nil {
		return fmt.Errorf("finish reconcile run %s: %w", r.ID, err)
	}
	return nil
}

// GetReconcileRun loads a run.
func (s *Store) GetReconcileRun(ctx context.Context, id string) (*ReconcileRun, error) {
	r := new(ReconcileRun)
	if err := s.DB.NewSelect().Model(r).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, notFound(err, "reconcile run "+id)
	}
	return r, nil
}

// ListReconcileRuns returns the newest runs of a host (and batch, when given) first.
func (s *Store) ListReconcileRuns(ctx context.Context, hostID, batchID string, limit int) ([]ReconcileRun, error) {
	var out []ReconcileRun
	q := s.DB.NewSelect().Model(&out).Order("started_at DESC")
	if hostID != "" {
		q = q.Where("host_id = ?", hostID)
	}
	if batchID != "" {
		q = q.Where("batch_id = ?", batchID)
	}
	if limit <= 0 {
		limit = 20
	}
	if err := q.Limit(int64(limit)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("list reconcile runs: %w", err)
	}
	return out, nil
}
