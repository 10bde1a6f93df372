// Command crmctl is the operator CLI of cn-relay-manager: it registers hosts and submits,
// follows, retries, cancels, rolls back and reconciles batches through the REST API.
// See docs/cli.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/cn-relay-manager/cn-relay-manager/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
