package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// CreateReconcileRun inserts a run (status "running" unless set). A run for a periodic
// slot is unique per (host, slot): a second scheduler enqueuing the same slot finds it
// exists. At most one periodic run per host is running at a time (a partial unique index),
// so two slots cannot both start while the first is still running.
func (s *Store) CreateReconcileRun(ctx context.Context, r *ReconcileRun) error {
	if r.ID == "" {
		r.ID = NewID()
	}
	r.StartedAt = s.now()
	if r.Status == "" {
		r.Status = RunRunning
	}
	if r.Status == RunRunning {
		hb := r.StartedAt
		r.HeartbeatAt = &hb
	}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	if _, err := s.DB.NewInsert().Model(r).Exec(ctx); err != nil {
		return writeError("insert reconcile run", err)
	}
	return nil
}

// StartPeriodicReconcile creates the run of a periodic slot. One run per (host, slot) is enforced
// by a unique index, so a second scheduler or a late duplicate does nothing. A host whose
// previous run (periodic or asked for) is still running is skipped: the slot gets a run in
// status "skipped" naming the running one, so the run list says why there was no
// comparison. A run without a heartbeat for staleAfter was abandoned. At most one periodic run per host runs at a time (a partial unique index), so
// two slots racing past the check cannot both start.
func (s *Store) StartPeriodicReconcile(ctx context.Context, hostID, slot string, staleAfter time.Duration) (*ReconcileRun, bool, error) {
	prev, err := s.RunningReconcile(ctx, hostID, staleAfter)
	if err != nil {
		return nil, false, err
	}
	run := &ReconcileRun{HostID: hostID, Slot: slot}
	if prev == nil {
		err := s.CreateReconcileRun(ctx, run)
		if err == nil {
			return run, true, nil
		}
		if !errors.Is(err, ErrConflict) {
			return nil, false, err
		}
		if taken, terr := s.ReconcileSlotTaken(ctx, hostID, slot); terr != nil || taken {
			return nil, false, terr // this slot already ran (or runs): nothing to do
		}
		// Another periodic run of the host started between the check and the insert.
		if prev, err = s.RunningReconcile(ctx, hostID, staleAfter); err != nil {
			return nil, false, err
		}
	}
	run = &ReconcileRun{HostID: hostID, Slot: slot, Status: RunSkipped,
		Summary: "skipped: the previous reconcile of this host is still running"}
	if prev != nil {
		run.Summary = fmt.Sprintf("skipped: reconcile run %s (started %s) is still running, %d of %d objects checked",
			prev.ID, prev.StartedAt.UTC().Format(time.RFC3339), prev.ObjectsChecked, prev.ObjectsTotal)
	}
	if err := s.CreateReconcileRun(ctx, run); err != nil {
		if errors.Is(err, ErrConflict) {
			return nil, false, nil
		}
		return nil, false, err
	}
	now := run.StartedAt
	run.FinishedAt = &now
	return nil, false, s.FinishReconcileRun(ctx, run)
}

// StartReconcileRun marks a queued run as running (a worker picked it up) and resets its
// progress; a run that is already running (the task was delivered again) is restarted.
func (s *Store) StartReconcileRun(ctx context.Context, r *ReconcileRun) error {
	now := s.now()
	r.Status, r.HeartbeatAt, r.ObjectsChecked, r.ObjectsTotal = RunRunning, &now, 0, 0
	r.Findings, r.Summary, r.FinishedAt = []Finding{}, "", nil
	_, err := s.DB.NewUpdate().Model(r).Column("status", "heartbeat_at", "objects_checked", "objects_total", "findings", "summary", "finished_at").
		WherePK().Exec(ctx)
	if err != nil {
		return fmt.Errorf("start reconcile run %s: %w", r.ID, err)
	}
	return nil
}

// ReconcileProgress stores how far a running run got and refreshes its heartbeat. It
// touches only a running run.
func (s *Store) ReconcileProgress(ctx context.Context, r *ReconcileRun) error {
	if r.ID == "" {
		return nil // a run that was never stored (tests, dry comparisons)
	}
	now := s.now()
	r.HeartbeatAt = &now
	_, err := s.DB.NewUpdate().Model(r).Column("objects_checked", "objects_total", "heartbeat_at").
		WherePK().Where("status = ?", RunRunning).Exec(ctx)
	if err != nil {
		return fmt.Errorf("reconcile run %s progress: %w", r.ID, err)
	}
	return nil
}

// FinishReconcileRun stores the status, findings, summary and progress of a run.
func (s *Store) FinishReconcileRun(ctx context.Context, r *ReconcileRun) error {
	now := s.now()
	r.FinishedAt = &now
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	_, err := s.DB.NewUpdate().Model(r).Column("status", "findings", "summary", "objects_checked", "objects_total", "finished_at").
		WherePK().Exec(ctx)
	if err != nil {
		return fmt.Errorf("finish reconcile run %s: %w", r.ID, err)
	}
	return nil
}

// RunningReconcile returns a run of the host that is running and alive (a heartbeat
// within staleAfter), or nil. Running runs whose heartbeat is older were abandoned (their
// worker died mid-run): they are marked failed on the way, so they block nothing.
func (s *Store) RunningReconcile(ctx context.Context, hostID string, staleAfter time.Duration) (*ReconcileRun, error) {
	var runs []ReconcileRun
	if err := s.DB.NewSelect().Model(&runs).Where("host_id = ?", hostID).Where("status = ?", RunRunning).
		Order("started_at DESC").Scan(ctx); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("running reconcile runs of host %s: %w", hostID, err)
	}
	now := s.now()
	var alive *ReconcileRun
	for i := range runs {
		r := &runs[i]
		beat := r.StartedAt
		if r.HeartbeatAt != nil {
			beat = *r.HeartbeatAt
		}
		if now.Sub(beat) <= staleAfter {
			if alive == nil {
				alive = r
			}
			continue
		}
		r.Summary = fmt.Sprintf("abandoned: no progress since %s (%d of %d objects checked); the worker running it stopped",
			beat.Format(time.RFC3339), r.ObjectsChecked, r.ObjectsTotal)
		_, err := s.DB.NewUpdate().Model(r).Set("status = ?", RunFailed).Set("summary = ?", r.Summary).Set("finished_at = ?", now).
			WherePK().Where("status = ?", RunRunning).Exec(ctx)
		if err != nil {
			return nil, fmt.Errorf("mark abandoned reconcile run %s: %w", r.ID, err)
		}
	}
	return alive, nil
}

// ReconcileSlotTaken reports whether the periodic slot of a host already has a run.
func (s *Store) ReconcileSlotTaken(ctx context.Context, hostID, slot string) (bool, error) {
	n, err := s.DB.NewSelect().Model((*ReconcileRun)(nil)).Where("host_id = ?", hostID).Where("slot = ?", slot).Count(ctx)
	if err != nil {
		return false, fmt.Errorf("reconcile slot %s of host %s: %w", slot, hostID, err)
	}
	return n > 0, nil
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
