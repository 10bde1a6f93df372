package api

import (
	"github.com/gofiber/fiber/v2"

	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

func (s *Server) rollbackBatch(c *fiber.Ctx) error {
	if err := s.Batches.Rollback(c.UserContext(), c.Params("id")); err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"status": "queued", "message": "rollback queued; GET the batch to follow last_action"})
}

func (s *Server) reconcileBatch(c *fiber.Ctx) error {
	run, err := s.Batches.Reconcile(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(run)
}

func (s *Server) reconcileHost(c *fiber.Ctx) error {
	run, err := s.Batches.ReconcileHost(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(run)
}

func (s *Server) importBatch(c *fiber.Ctx) error {
	id, err := s.Batches.ImportDryRun(c.UserContext(), c.Params("id"))
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

func (s *Server) repairRun(c *fiber.Ctx) error {
	if _, err := s.Batches.Repair(c.UserContext(), c.Params("id")); err != nil {
		return err
	}
	run, err := s.Store.GetReconcileRun(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(run)
}
