// Package api serves the REST API under /api/v1 with fiber. Its handlers translate HTTP:
// they decode and check the request, call the batch service (internal/batch) or the host
// service (internal/hostreg) or read the store, and map the answer and the errors to
// status codes. It never calls a host or an upstream itself.
package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/cn-relay-manager/cn-relay-manager/internal/accounts"
	"github.com/cn-relay-manager/cn-relay-manager/internal/batch"
	"github.com/cn-relay-manager/cn-relay-manager/internal/hostreg"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// MaxBodyBytes is the largest request body (413 above it).
const MaxBodyBytes = 32 << 20

// bodyTooLarge is the message of the 413 answer: it names the limit.
var bodyTooLarge = fmt.Sprintf("the request body is larger than the limit of %d MiB (%d bytes)", MaxBodyBytes>>20, MaxBodyBytes)

// Server holds the API's dependencies.
type Server struct {
	Store   *store.Store
	Batches *batch.Service
	Hosts   *hostreg.Service
	Token   string
	Log     *slog.Logger
	// Ready reports extra readiness (queue reachable); nil = always ready.
	Ready func(ctx context.Context) error
	// Accounts is the service of the work after the import (settings, webhooks, runs,
	// undo).
	Accounts *accounts.Service
	// Metrics counts every request the app serves (nil: none counted).
	Metrics RequestObserver
}

// APIError is the JSON error body: {"error":{"code","message","field"}}.
type APIError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *APIError) Error() string { return e.Message }

func badField(field, msg string) *APIError {
	return &APIError{Status: fiber.StatusBadRequest, Code: "invalid_field", Message: msg, Field: field}
}

// NewApp builds the fiber application with every route.
func (s *Server) NewApp() *fiber.App {
	app := fiber.New(fiber.Config{
		BodyLimit:             MaxBodyBytes,
		DisableStartupMessage: true,
		ReadTimeout:           30 * time.Second,
		ErrorHandler:          s.errorHandler,
	})
	s.Mount(app)
	return app
}

// Mount registers the request log (applies to every route registered after it, on this
// app), then the routes: health, the OpenAPI document and the authenticated API.
func (s *Server) Mount(app *fiber.App) {
	app.Use(s.RequestLog)
	app.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	app.Get("/readyz", s.readyz)
	app.Get(OpenAPIPath, s.Auth, s.openAPI)
	v1 := app.Group("/api/v1", s.Auth, rejectControlsInQuery)
	v1.Post("/hosts", s.createHost)
	v1.Get("/hosts", s.listHosts)
	v1.Get("/hosts/:id", s.getHost)
	v1.Patch("/hosts/:id", s.updateHost)
	v1.Delete("/hosts/:id", s.deleteHost)
	v1.Post("/hosts/:id/probe", s.probeHost)
	v1.Post("/hosts/:id/test", s.testHost)
	v1.Post("/batches", s.submitBatch)
	v1.Get("/batches", s.listBatches)
	v1.Get("/batches/:id", s.getBatch)
	v1.Get("/batches/:id/items", s.listItems)
	v1.Get("/batches/:id/items/:item", s.getItem)
	v1.Post("/batches/:id/retry", s.retryBatch)
	v1.Post("/batches/:id/cancel", s.cancelBatch)
	v1.Post("/batches/:id/rollback", s.rollbackBatch)
	v1.Post("/batches/:id/reconcile", s.reconcileBatch)
	v1.Post("/batches/:id/import", s.importBatch)
	v1.Post("/hosts/:id/reconcile", s.reconcileHost)
	v1.Get("/reconcile-runs", s.listReconcileRuns)
	v1.Get("/reconcile-runs/:id", s.getReconcileRun)
	v1.Post("/reconcile-runs/:id/repair", s.repairRun)
	v1.Get("/resources", s.listResources)
	s.mountAccounts(v1)
}

// Auth requires "Authorization: Bearer <token>".
func (s *Server) Auth(c *fiber.Ctx) error {
	h := c.Get(fiber.HeaderAuthorization)
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || s.Token == "" || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(s.Token)) != 1 {
		return &APIError{Status: fiber.StatusUnauthorized, Code: "unauthorized", Message: "a valid bearer token is required"}
	}
	return c.Next()
}

func (s *Server) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 3*time.Second)
	defer cancel()
	if err := s.Store.Ping(ctx); err != nil {
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "unavailable", "reason": "database"})
	}
	if s.Ready != nil {
		if err := s.Ready(ctx); err != nil {
			body := fiber.Map{"status": "unavailable", "reason": "queue"}
			// The endpoint is anonymous: only a message written for it (the setting and
			// the cause, no URL, no secret) is shown.
			var p interface{ Public() string }
			if errors.As(err, &p) {
				body["message"] = p.Public()
			}
			return c.Status(fiber.StatusServiceUnavailable).JSON(body)
		}
	}
	return c.JSON(fiber.Map{"status": "ready"})
}

func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	var ae *APIError
	var fe *fiber.Error
	var field *batch.FieldError
	var state *batch.StateError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &field):
		ae = badField(field.Field, field.Message)
	case errors.As(err, &state):
		ae = &APIError{Status: fiber.StatusConflict, Code: state.Code, Message: state.Message}
	case errors.Is(err, store.ErrNotFound):
		ae = &APIError{Status: fiber.StatusNotFound, Code: "not_found", Message: err.Error()}
	case errors.As(err, &fe):
		ae = &APIError{Status: fe.Code, Code: "http_error", Message: fe.Message}
		if fe.Code == fiber.StatusRequestEntityTooLarge {
			ae.Code, ae.Message = "body_too_large", bodyTooLarge
		}
	default:
		s.Log.Error("request failed", "request_id", RequestID(c.UserContext()), "method", c.Method(), "path", c.Path(), "error", err)
		ae = &APIError{Status: fiber.StatusInternalServerError, Code: "internal", Message: "internal error"}
	}
	return c.Status(ae.Status).JSON(fiber.Map{"error": ae})
}
