package api

import (
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

type hostRequest struct {
	Name          string `json:"name"`
	AdminURL      string `json:"admin_url"`
	PublicURL     string `json:"public_url"`
	AdminAPIKey   string `json:"admin_api_key"`
	AdminEmail    string `json:"admin_email"`
	AdminPassword string `json:"admin_password"`
}

func validHTTPURL(field, raw string) (string, error) {
	raw = strings.TrimRight(strings.TrimSpace(raw), "/")
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", badField(field, field+" must be an http(s) URL")
	}
	if u.User != nil {
		return "", badField(field, field+" must not contain credentials")
	}
	return raw, nil
}

func (s *Server) createHost(c *fiber.Ctx) error {
	var req hostRequest
	if err := decodeStrict(c, &req); err != nil {
		return err
	}
	req.Name = strings.TrimSpace(req.Name)
	if req.Name == "" || len(req.Name) > 200 {
		return badField("name", "name is required (at most 200 characters)")
	}
	h := &store.Host{Name: req.Name}
	var err error
	if h.AdminURL, err = validHTTPURL("admin_url", req.AdminURL); err != nil {
		return err
	}
	h.PublicURL = h.AdminURL
	if req.PublicURL != "" {
		if h.PublicURL, err = validHTTPURL("public_url", req.PublicURL); err != nil {
			return err
		}
	}
	switch {
	case req.AdminAPIKey != "" && req.AdminEmail != "":
		return badField("admin_api_key", "give either admin_api_key or admin_email/admin_password, not both")
	case req.AdminAPIKey != "":
		h.AuthKind = "api_key"
		if h.AdminKeyEnc, err = s.Box.Seal(strings.TrimSpace(req.AdminAPIKey)); err != nil {
			return err
		}
		h.AdminKeyMasked = secret.Mask(strings.TrimSpace(req.AdminAPIKey))
	case req.AdminEmail != "":
		if len(strings.TrimSpace(req.AdminEmail)) > 320 {
			return badField("admin_email", "admin_email is at most 320 characters")
		}
		if req.AdminPassword == "" {
			return badField("admin_password", "admin_password is required with admin_email")
		}
		h.AuthKind, h.AdminEmail = "password", strings.TrimSpace(req.AdminEmail)
		if h.AdminPasswordEnc, err = s.Box.Seal(req.AdminPassword); err != nil {
			return err
		}
	default:
		return badField("admin_api_key", "admin_api_key (or admin_email and admin_password) is required")
	}
	if _, err := s.Store.GetHostByName(c.UserContext(), h.Name); err == nil {
		return &APIError{Status: fiber.StatusConflict, Code: "host_exists", Message: "a host with this name is already registered", Field: "name"}
	}
	if err := s.Prober.ProbeHost(c.UserContext(), h); err != nil {
		return &APIError{Status: fiber.StatusUnprocessableEntity, Code: "host_unreachable", Message: err.Error(), Field: "admin_url"}
	}
	if h.Status == "auth_failed" {
		field := "admin_api_key"
		if h.AuthKind == "password" {
			field = "admin_password"
		}
		return &APIError{Status: fiber.StatusUnprocessableEntity, Code: "host_auth_failed", Message: h.StatusMessage, Field: field}
	}
	if err := s.Store.CreateHost(c.UserContext(), h); err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(h)
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

func (s *Server) probeHost(c *fiber.Ctx) error {
	h, err := s.Store.GetHost(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	if err := s.Prober.ProbeHost(c.UserContext(), h); err != nil {
		h.Status, h.StatusMessage = "unreachable", err.Error()
	}
	if err := s.Store.UpdateHost(c.UserContext(), h); err != nil {
		return err
	}
	return c.JSON(h)
}
