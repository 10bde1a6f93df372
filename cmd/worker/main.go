// Command worker runs the asynq task handlers, the recovery sweep and the periodic
// scheduler against a shared Redis and database.
package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/app"
	"github.com/cn-relay-manager/cn-relay-manager/internal/config"
	"github.com/cn-relay-manager/cn-relay-manager/internal/redisconn"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, args := run, os.Args[1:]
	if len(args) > 0 && args[0] == "healthcheck" {
		cmd, args = healthcheck, args[1:]
	}
	if err := cmd(ctx, args); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	cfg, _, err := config.Load("worker", args, os.Getenv)
	if err != nil {
		return err
	}
	if cfg.Embedded() {
		return errors.New("CRM_REDIS_URL: required for the worker (an embedded queue would be private to this process); for a single process run the api without it")
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	redisconn.RouteLogs(log)
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	// Fail fast: a worker that cannot use its Redis (wrong password, TLS verification,
	// no sentinel, unknown master) exits with the cause instead of retrying in silence.
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err = a.PingQueue(cctx)
	cancel()
	if err != nil {
		return err
	}
	pp, err := app.ServePprof(cfg.PprofAddr, log)
	if err != nil {
		return err
	}
	defer pp.Close()
	log.Info("worker started", "redis", a.Redis.String(), "concurrency", cfg.WorkerConcurrency)
	if cfg.MetricsAddr != "" {
		// Step durations and HTTP-client figures of this process; item and queue figures
		// are served by the api from the shared database and Redis.
		srv := &http.Server{Addr: cfg.MetricsAddr, Handler: requireToken(cfg.APIToken, a.Metrics.Handler()), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics listener failed", "addr", cfg.MetricsAddr, "error", err)
			}
		}()
		defer srv.Close()
	}
	return a.RunWorker(ctx)
}

// healthcheck checks that the worker's Redis (CRM_REDIS_URL) is usable, with the same
// connection and the same explanation as at start: the container health check of an
// image without a shell.
func healthcheck(ctx context.Context, args []string) error {
	cfg, _, err := config.Load("worker healthcheck", args, os.Getenv)
	if err != nil {
		return err
	}
	conn, err := cfg.Redis()
	if err != nil {
		return err
	}
	if conn == nil {
		return errors.New("CRM_REDIS_URL: not set")
	}
	c := conn.ProbeClient()
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return conn.Check(ctx, c)
}

// requireToken guards /metrics with the API bearer token when one is configured.
func requireToken(token string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+token)) != 1 {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
