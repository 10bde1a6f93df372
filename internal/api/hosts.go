package api

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/cn-relay-manager/cn-relay-manager/internal/hostreg"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// hostRequest is the body of POST /hosts, PATCH /hosts/{id} and POST /hosts/{id}/test.
type hostRequest struct {
	Name          string `json:"name"`
	AdminURL      string `json:"admin_url"`
	PublicURL     string `json:"public_url"`
	AdminAPIKey   string `json:"admin_api_key"`
	AdminEmail    string `json:"admin_email"`
	AdminPassword string `json:"admin_password"`
}

func (r hostRequest) settings() hostreg.Settings {
	return hostreg.Settings{Name: r.Name, AdminURL: r.AdminURL, PublicURL: r.PublicURL,
		AdminAPIKey: r.AdminAPIKey, AdminEmail: r.AdminEmail, AdminPassword: r.AdminPassword}
}

// hostError maps a refusal of the host service to its status: 409 for the stored state,
// 422 for the host's answer.
func hostError(err error) error {
	var he *hostreg.Error
	if !errors.As(err, &he) {
		return err
	}
	ae := &APIError{Status: fiber.StatusConflict, Code: he.Code, Message: he.Message, Field: he.Field}
	if he.Kind == hostreg.HostRefused {
		ae.Status = fiber.StatusUnprocessableEntity
	}
	return ae
}

func (s *Server) createHost(c *fiber.Ctx) error {
	var req hostRequest
	if err := decodeStrict(c, &req); err != nil {
		return err
	}
	h, err := s.Hosts.Register(c.UserContext(), req.settings())
	if err != nil {
		return hostError(err)
	}
	return c.Status(fiber.StatusCreated).JSON(h)
}

func (s *Server) updateHost(c *fiber.Ctx) error {
	var req hostRequest
	if err := decodeStrict(c, &req); err != nil {
		return err
	}
	h, err := s.Hosts.Update(c.UserContext(), c.Params("id"), req.settings())
	if err != nil {
		return hostError(err)
	}
	return c.JSON(h)
}

// testHost probes the host with its stored settings, or with the body's changes applied
// (an empty body tests the stored ones), and saves nothing.
func (s *Server) testHost(c *fiber.Ctx) error {
	var req hostRequest
	if len(c.Body()) > 0 {
		if err := decodeStrict(c, &req); err != nil {
			return err
		}
	}
	res, err := s.Hosts.Test(c.UserContext(), c.Params("id"), req.settings())
	if err != nil {
		return hostError(err)
	}
	return c.JSON(res)
}

// hostDeletion is the answer of DELETE /hosts/{id}: the host removed and what was removed
// with it.
type hostDeletion struct {
	Host      *store.Host      `json:"host"`
	Forgotten *store.HostUsage `json:"forgotten"`
	Message   string           `json:"message"`
}

func (s *Server) deleteHost(c *fiber.Ctx) error {
	forget := false
	if v := c.Query("forget"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return badField("forget", "forget must be true or false")
		}
		forget = b
	}
	h, usage, err := s.Hosts.Delete(c.UserContext(), c.Params("id"), forget)
	if err != nil {
		return hostError(err)
	}
	msg := fmt.Sprintf("host %s deleted with %d batches, %d items and %d reconcile runs", h.Name, usage.Batches, usage.Items, usage.ReconcileRuns)
	if usage.LedgerTotal > 0 {
		msg += fmt.Sprintf("; forgot the ledger's %s: they stay on the host, unmanaged", hostreg.DescribeLedger(usage))
	}
	return c.JSON(hostDeletion{Host: h, Forgotten: usage, Message: msg})
}

func (s *Server) listHosts(c *fiber.Ctx) error {
	hosts, err := s.Store.ListHosts(c.UserContext())
	if err != nil {
		return err
	}
	if hosts == nil {
		hosts = []store.Host{}
	}
	return c.JSON(fiber.Map{"items": hosts, "total": len(hosts)})
}

func (s *Server) getHost(c *fiber.Ctx) error {
	h, err := s.Store.GetHost(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(h)
}

// probeHost probes the host with its stored settings and stores what it answered.
func (s *Server) probeHost(c *fiber.Ctx) error {
	h, err := s.Hosts.Probe(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(h)
}
