package api

import (
	"context"
	"errors"

	"github.com/gofiber/fiber/v2"

	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/step"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
	"github.com/cn-relay-manager/cn-relay-manager/jobs"
)

// RollbackChecker refuses rollbacks the ledger cannot support.
type RollbackChecker interface {
	CheckRollback(ctx context.Context, batchID string) error
}

// RetryBatch restarts the batch's failed items; it returns how many.
func (s *Server) RetryBatch(ctx context.Context, batchID string) (int, error) {
	if _, err := s.Store.GetBatch(ctx, batchID); err != nil {
		return 0, err
	}
	items, err := s.Store.RetryFailed(ctx, batchID, step.Import)
	if err != nil {
		return 0, err
	}
	ptrs := make([]*store.Item, len(items))
	for i := range items {
		ptrs[i] = &items[i]
	}
	s.enqueueAll(ctx, batchID, ptrs)
	return len(items), nil
}

// CancelBatch stops the batch's running items; it returns how many.
func (s *Server) CancelBatch(ctx context.Context, batchID string) (int, error) {
	if _, err := s.Store.GetBatch(ctx, batchID); err != nil {
		return 0, err
	}
	return s.Store.CancelBatch(ctx, batchID)
}

// RollbackBatch queues the rollback of a batch after checking that the ledger holds
// something for it.
func (s *Server) RollbackBatch(ctx context.Context, batchID string) error {
	if s.Rollbacks != nil {
		if err := s.Rollbacks.CheckRollback(ctx, batchID); err != nil {
			if errors.Is(err, store.ErrNothingRecorded) {
				return &APIError{Status: fiber.StatusConflict, Code: "nothing_to_roll_back", Message: err.Error()}
			}
			return err
		}
	}
	return s.Queue.EnqueueBatchTask(ctx, jobs.TypeRollback, "rollback:"+batchID+":"+secret.RandomToken(6), jobs.BatchPayload{BatchID: batchID})
}

// ReconcileBatch queues a reconcile of the batch's ledger against its host.
func (s *Server) ReconcileBatch(ctx context.Context, batchID string) error {
	b, err := s.Store.GetBatch(ctx, batchID)
	if err != nil {
		return err
	}
	_, err = s.queueReconcile(ctx, b.HostID, batchID)
	return err
}

// ReconcileHost queues a reconcile of the whole host.
func (s *Server) ReconcileHost(ctx context.Context, hostID string) error {
	if _, err := s.Store.GetHost(ctx, hostID); err != nil {
		return err
	}
	_, err := s.queueReconcile(ctx, hostID, "")
	return err
}

func (s *Server) queueReconcile(ctx context.Context, hostID, batchID string) (*store.ReconcileRun, error) {
	run := &store.ReconcileRun{HostID: hostID, BatchID: batchID, Status: "queued"}
	if err := s.Store.CreateReconcileRun(ctx, run); err != nil {
		return nil, err
	}
	if err := s.Queue.EnqueueBatchTask(ctx, jobs.TypeReconcile, "reconcile:"+run.ID, jobs.BatchPayload{HostID: hostID, BatchID: batchID, RunID: run.ID}); err != nil {
		return nil, err
	}
	return run, nil
}

// ImportDryRun submits a dry-run batch again for real (same items, same options) and
// returns the new batch's ID.
func (s *Server) ImportDryRun(ctx context.Context, batchID string) (string, error) {
	b, err := s.Store.GetBatch(ctx, batchID)
	if err != nil {
		return "", err
	}
	if !b.DryRun {
		return "", &APIError{Status: fiber.StatusConflict, Code: "not_a_dry_run", Message: "only a dry-run batch can be imported"}
	}
	items, _, err := s.Store.ListItems(ctx, batchID, 0, 0)
	if err != nil {
		return "", err
	}
	nb := &store.Batch{HostID: b.HostID, Name: b.Name, Mode: b.Mode, Force: b.Force, Options: b.Options}
	copies := make([]*store.Item, 0, len(items))
	for _, it := range items {
		copies = append(copies, &store.Item{Name: it.Name, BaseURL: it.BaseURL, NormalizedURL: it.NormalizedURL, ProviderHint: it.ProviderHint,
			AnthropicBaseURL: it.AnthropicBaseURL, Provider: it.Provider, DetectedBy: it.DetectedBy, SuggestedProvider: it.SuggestedProvider,
			APIKeyEnc: it.APIKeyEnc, KeyMasked: it.KeyMasked, KeyFingerprint: it.KeyFingerprint, RequestedModels: it.RequestedModels, Step: step.Import})
	}
	if err := s.Store.CreateBatch(ctx, nb, copies); err != nil {
		return "", err
	}
	s.enqueueAll(ctx, nb.ID, copies)
	return nb.ID, nil
}

func (s *Server) rollbackBatch(c *fiber.Ctx) error {
	if err := s.RollbackBatch(c.UserContext(), c.Params("id")); err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"status": "queued", "message": "rollback queued; GET the batch to follow last_action"})
}

func (s *Server) reconcileBatch(c *fiber.Ctx) error {
	b, err := s.Store.GetBatch(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	run, err := s.queueReconcile(c.UserContext(), b.HostID, b.ID)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(run)
}

func (s *Server) reconcileHost(c *fiber.Ctx) error {
	if _, err := s.Store.GetHost(c.UserContext(), c.Params("id")); err != nil {
		return err
	}
	run, err := s.queueReconcile(c.UserContext(), c.Params("id"), "")
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(run)
}

func (s *Server) importBatch(c *fiber.Ctx) error {
	id, err := s.ImportDryRun(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	v, err := s.loadBatch(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"batch": v})
}

func (s *Server) listReconcileRuns(c *fiber.Ctx) error {
	runs, err := s.Store.ListReconcileRuns(c.UserContext(), c.Query("host_id"), c.Query("batch_id"), c.QueryInt("limit", 20))
	if err != nil {
		return err
	}
	if runs == nil {
		runs = []store.ReconcileRun{}
	}
	return c.JSON(fiber.Map{"items": runs})
}

func (s *Server) getReconcileRun(c *fiber.Ctx) error {
	run, err := s.Store.GetReconcileRun(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(run)
}

// RepairRun queues the safe repairs of a finished reconcile run's findings.
func (s *Server) RepairRun(ctx context.Context, runID string) error {
	run, err := s.Store.GetReconcileRun(ctx, runID)
	if err != nil {
		return err
	}
	if run.Status != "completed" {
		return &APIError{Status: fiber.StatusConflict, Code: "run_not_finished", Message: "only a completed reconcile run can be repaired"}
	}
	return s.Queue.EnqueueBatchTask(ctx, jobs.TypeReconcile, "repair:"+run.ID+":"+secret.RandomToken(6), jobs.BatchPayload{HostID: run.HostID, RunID: run.ID, Repair: true})
}

func (s *Server) repairRun(c *fiber.Ctx) error {
	if err := s.RepairRun(c.UserContext(), c.Params("id")); err != nil {
		return err
	}
	run, err := s.Store.GetReconcileRun(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(run)
}
