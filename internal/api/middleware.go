package api

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
)

// HeaderRequestID carries the request ID in both directions.
const HeaderRequestID = "X-Request-Id"

type requestIDKey struct{}

// RequestID returns the request ID carried by ctx ("" when none).
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// validRequestID accepts a client-supplied ID only if it is short and plain, so that it
// cannot smuggle anything into logs or headers.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.', r == ':':
		default:
			return false
		}
	}
	return true
}

// RequestObserver counts served requests by method, route pattern and status
// (internal/metrics).
type RequestObserver interface {
	ObserveRequest(method, route string, status int, d time.Duration)
}

// RequestLog gives every request an ID (X-Request-Id from the client when it is plain,
// else a fresh one), echoes it in the response and, when the request is done, writes one
// structured log line: request_id, method, path (never the query string), route, status,
// latency_ms, remote_ip and the host/batch/item/run IDs found in the route parameters,
// and counts the request in Metrics (when set).
// Bodies and headers (Authorization included) are never logged. Health checks log at
// debug level.
func (s *Server) RequestLog(c *fiber.Ctx) error {
	start := time.Now()
	id := c.Get(HeaderRequestID)
	if !validRequestID(id) {
		id = secret.RandomToken(12)
	}
	c.Set(HeaderRequestID, id)
	c.Locals(requestIDKey{}, id)
	c.SetUserContext(context.WithValue(c.UserContext(), requestIDKey{}, id))

	err := c.Next()
	if err != nil {
		// Turn the error into its response now so that the logged status is the real one.
		if herr := c.App().Config().ErrorHandler(c, err); herr != nil {
			_ = c.SendStatus(fiber.StatusInternalServerError)
		}
	}
	status := c.Response().StatusCode()
	// Copy strings: fiber reuses its buffers once the handler returns.
	path := strings.Clone(c.Path())
	if s.Metrics != nil {
		// The route pattern, never the path: a bounded label. A request no route matched
		// ends in the catch-all "/" and counts as unmatched.
		route := ""
		if r := c.Route(); r != nil && r.Path != "" && (r.Path != "/" || path == "/") {
			route = strings.Clone(r.Path)
		}
		s.Metrics.ObserveRequest(strings.Clone(c.Method()), route, status, time.Since(start))
	}
	attrs := []slog.Attr{
		slog.String("request_id", id),
		slog.String("method", strings.Clone(c.Method())),
		slog.String("path", path),
		slog.Int("status", status),
		slog.Float64("latency_ms", float64(time.Since(start).Microseconds())/1000),
		slog.String("remote_ip", strings.Clone(c.IP())),
	}
	if r := c.Route(); r != nil && r.Path != "" && r.Path != "/" {
		attrs = append(attrs, slog.String("route", r.Path))
		attrs = append(attrs, routeIDs(c, r.Path)...)
	}
	if v, ok := c.Locals(localBatchID).(string); ok && v != "" {
		attrs = append(attrs, slog.String("batch_id", v))
	}
	level := slog.LevelInfo
	switch {
	case status >= 500:
		level = slog.LevelError
	case path == "/healthz" || path == "/readyz":
		level = slog.LevelDebug
	}
	if s.Log != nil {
		s.Log.LogAttrs(c.UserContext(), level, "http request", attrs...)
	}
	return nil
}

// localBatchID lets a handler name the batch it created (POST /batches) for the log line.
const localBatchID = "crm.batch_id"

// routeIDs names the route parameters after what they identify.
func routeIDs(c *fiber.Ctx, route string) []slog.Attr {
	var out []slog.Attr
	add := func(key, param string) {
		if v := c.Params(param); v != "" {
			out = append(out, slog.String(key, strings.Clone(v)))
		}
	}
	switch {
	case strings.Contains(route, "/batches/:id"):
		add("batch_id", "id")
		add("item_id", "item")
	case strings.Contains(route, "/hosts/:id"):
		add("host_id", "id")
	case strings.Contains(route, "/reconcile-runs/:id"):
		add("run_id", "id")
	}
	return out
}
