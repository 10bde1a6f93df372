package app

import (
	"io"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/hibiken/asynqmon"

	"github.com/cn-relay-manager/cn-relay-manager/internal/metrics"
	"github.com/cn-relay-manager/cn-relay-manager/internal/web"
	"github.com/cn-relay-manager/cn-relay-manager/jobs"
)

// HTTPApp builds the whole HTTP surface: the REST API, the web pages and asynqmon at
// /monitoring behind the same authentication (bearer token or UI session). The returned
// closer releases asynqmon's Redis connections. /metrics (Prometheus text format) needs
// the bearer token too.
func (a *App) HTTPApp(token string) (*fiber.App, io.Closer) {
	srv := a.APIServer(token)
	app := srv.NewApp()
	pages := &web.Handler{Store: a.Store, Actions: srv.Batches, Hosts: srv.Hosts, Token: token, Log: a.Log, Accounts: srv.Accounts}
	pages.Mount(app)
	// Payloads in the queue are IDs only, so asynqmon shows nothing secret.
	mon := asynqmon.New(asynqmon.Options{RootPath: "/monitoring", RedisConnOpt: a.Conn})
	h := adaptor.HTTPHandler(mon)
	app.All("/monitoring", pages.Protect, h)
	app.All("/monitoring/*", pages.Protect, h)
	// Item states and failure classes come from the database, queue depth from Redis, both
	// read at scrape time; step and HTTP-client families from this process's workers.
	var queue metrics.QueueInspector
	if a.Inspector != nil {
		queue = a.Inspector
	}
	a.Metrics.SetSources(a.Store, queue, jobs.QueueName, jobs.FinishQueue)
	a.Metrics.WatchAccounts(a.Store)
	app.Get("/metrics", srv.Auth, adaptor.HTTPHandler(a.Metrics.Handler()))
	app.Use(func(c *fiber.Ctx) error { return fiber.ErrNotFound })
	return app, mon
}
