package api

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/cn-relay-manager/cn-relay-manager/internal/accounts"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// mountAccounts registers the routes of the work after the import: accounts with their
// latest verdict and history, re-verification runs, undo, host settings and webhooks.
func (s *Server) mountAccounts(v1 fiber.Router) {
	v1.Get("/hosts/:id/accounts", s.listAccounts)
	v1.Get("/accounts/:id/checks", s.accountChecks)
	v1.Post("/hosts/:id/verify", s.verifyHost)
	v1.Get("/verify-runs", s.listVerifyRuns)
	v1.Get("/verify-runs/:id", s.getVerifyRun)
	v1.Post("/account-checks/:id/undo", s.undoCheck)
	v1.Get("/hosts/:id/account-settings", s.getAccountSettings)
	v1.Put("/hosts/:id/account-settings", s.putAccountSettings)
	v1.Post("/hosts/:id/webhooks", s.addWebhook)
	v1.Delete("/webhooks/:id", s.deleteWebhook)
	v1.Post("/webhooks/:id/test", s.testWebhook)
}

// healthStatuses are the values of the status filter.
var healthStatuses = map[string]bool{store.HealthHealthy: true, store.HealthDegraded: true, store.HealthFailing: true}

func (s *Server) listAccounts(c *fiber.Ctx) error {
	ctx := c.UserContext()
	if _, err := s.Store.GetHost(ctx, c.Params("id")); err != nil {
		return err
	}
	page, size, err := pageParams(c)
	if err != nil {
		return err
	}
	status := c.Query("status")
	if status != "" && !healthStatuses[status] {
		return badField("status", "status is healthy, degraded or failing")
	}
	switch c.Query("failing") {
	case "", "false":
	case "true":
		if status != "" && status != store.HealthFailing {
			return badField("failing", "failing=true contradicts status="+status)
		}
		status = store.HealthFailing
	default:
		return badField("failing", "failing is true or false")
	}
	rows, total, err := s.Store.ListAccountHealth(ctx, store.HealthFilter{HostID: c.Params("id"), Status: status,
		Limit: size, Offset: (page - 1) * size})
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"items": rows, "total": total, "page": page, "page_size": size})
}

func (s *Server) accountChecks(c *fiber.Ctx) error {
	ctx := c.UserContext()
	limit := c.QueryInt("limit", 50)
	if limit < 1 || limit > 500 {
		return badField("limit", "limit must be between 1 and 500")
	}
	acct, err := s.Store.GetAccountHealth(ctx, c.Params("id"))
	if err != nil {
		return err
	}
	checks, err := s.Store.AccountHistory(ctx, acct.ItemID, limit)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"account": acct, "items": checks})
}

type verifyRequest struct {
	SpreadS int `json:"spread_s"`
}

func (s *Server) verifyHost(c *fiber.Ctx) error {
	var req verifyRequest
	if len(c.Body()) > 0 {
		if err := decodeStrict(c, &req); err != nil {
			return err
		}
	}
	run, err := s.Accounts.RunNow(c.UserContext(), c.Params("id"), time.Duration(req.SpreadS)*time.Second)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(run)
}

func (s *Server) listVerifyRuns(c *fiber.Ctx) error {
	limit := c.QueryInt("limit", 20)
	if limit < 1 || limit > 500 {
		return badField("limit", "limit must be between 1 and 500")
	}
	runs, err := s.Store.ListVerifyRuns(c.UserContext(), c.Query("host_id"), limit)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"items": runs})
}

func (s *Server) getVerifyRun(c *fiber.Ctx) error {
	run, err := s.Store.GetVerifyRun(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(run)
}

func (s *Server) undoCheck(c *fiber.Ctx) error {
	chk, err := s.Accounts.Undo(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(chk)
}

func (s *Server) getAccountSettings(c *fiber.Ctx) error {
	st, err := s.Accounts.Settings(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(st)
}

func (s *Server) putAccountSettings(c *fiber.Ctx) error {
	var req accounts.SettingsRequest
	if err := decodeStrict(c, &req); err != nil {
		return err
	}
	st, err := s.Accounts.PutSettings(c.UserContext(), c.Params("id"), req)
	if err != nil {
		return err
	}
	return c.JSON(st)
}

func (s *Server) addWebhook(c *fiber.Ctx) error {
	var req accounts.WebhookRequest
	if err := decodeStrict(c, &req); err != nil {
		return err
	}
	w, err := s.Accounts.AddWebhook(c.UserContext(), c.Params("id"), req)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(w)
}

func (s *Server) deleteWebhook(c *fiber.Ctx) error {
	if err := s.Accounts.DeleteWebhook(c.UserContext(), c.Params("id")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

type webhookTestRequest struct {
	Event string `json:"event"`
}

func (s *Server) testWebhook(c *fiber.Ctx) error {
	var req webhookTestRequest
	if len(c.Body()) > 0 {
		if err := decodeStrict(c, &req); err != nil {
			return err
		}
	}
	res, err := s.Accounts.TestWebhook(c.UserContext(), c.Params("id"), req.Event)
	if err != nil {
		return err
	}
	return c.JSON(res)
}
