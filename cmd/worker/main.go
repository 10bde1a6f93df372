// Command worker runs the asynq task handlers, the recovery sweep and the periodic
// scheduler against a shared Redis and database.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/cn-relay-manager/cn-relay-manager/internal/app"
	"github.com/cn-relay-manager/cn-relay-manager/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil && !errors.Is(err, flag.ErrHelp) {
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
		return errors.New("CRM_REDIS_ADDR: required for the worker (an embedded queue would be private to this process); for a single process run the api without it")
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	log.Info("worker started", "redis", cfg.RedisAddr, "concurrency", cfg.WorkerConcurrency)
	return a.RunWorker(ctx)
}
