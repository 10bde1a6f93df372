// Command api serves the REST API and asynqmon. With no Redis configured it runs
// all-in-one (embedded queue, worker and scheduler in process). "api demo" runs the
// product's main job against the built-in simulators.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/api"
	"github.com/cn-relay-manager/cn-relay-manager/internal/app"
	"github.com/cn-relay-manager/cn-relay-manager/internal/config"
	"github.com/cn-relay-manager/cn-relay-manager/internal/demo"
	"github.com/cn-relay-manager/cn-relay-manager/internal/redisconn"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "demo" {
		err = runDemo(ctx, os.Args[2:])
	} else if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		err = healthcheck(ctx, os.Args[2:])
	} else if len(os.Args) > 1 && os.Args[1] == "rotate-master-key" {
		err = rotateMasterKey(ctx, os.Args[2:])
	} else {
		err = serve(ctx, os.Args[1:])
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func runDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	exit := fs.Bool("exit", false, "exit after printing the summary")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	profile := fs.String("host-profile", "0.1.179", "simulated host profile: 0.1.129, 0.1.179, 0.2.15, fork-0.1.321")
	mode := fs.String("mode", "self_service", "access mode: self_service, subscription, none")
	listen := fs.String("listen", envOr("CRM_LISTEN_ADDR", "127.0.0.1:8080"), "API listen address")
	verbose := fs.Bool("v", false, "show the process log")
	rollback := fs.Bool("rollback", false, "roll the batch back at the end and show the host is back to its starting state")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o := demo.Options{HostProfile: *profile, Mode: *mode, Exit: *exit, JSON: *asJSON, ListenAddr: *listen, Rollback: *rollback}
	if *verbose {
		o.Log = logger()
	}
	_, err := demo.Run(ctx, o)
	return err
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func serve(ctx context.Context, args []string) error {
	cfg, _, err := config.Load("api", args, os.Getenv)
	if err != nil {
		return err
	}
	log := logger()
	redisconn.RouteLogs(log)
	token := cfg.APIToken
	if token == "" {
		if !cfg.Embedded() {
			return errors.New("CRM_API_TOKEN: required when the api runs against a shared Redis (CRM_REDIS_URL)")
		}
		token = secret.RandomToken(24)
		// Printed once, to the terminal only, never into the structured log.
		fmt.Fprintf(os.Stderr, "CRM_API_TOKEN was not set; generated one for this run: %s\n", token)
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	pp, err := app.ServePprof(cfg.PprofAddr, log)
	if err != nil {
		return err
	}
	defer pp.Close()

	if a.Redis != nil {
		// The api keeps serving while its Redis is unusable; /readyz answers 503 with
		// the cause, and the first failure is logged here.
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := a.PingQueue(cctx); err == nil {
			log.Info("queue Redis reachable", "redis", a.Redis.String())
		}
		cancel()
	}

	var workerDone chan error
	wctx, stopWorker := context.WithCancel(context.Background())
	defer stopWorker()
	if cfg.Embedded() {
		log.Info("all-in-one mode: worker, recovery sweep and scheduler run in this process")
		workerDone = make(chan error, 1)
		go func() { workerDone <- a.RunWorker(wctx) }()
	}

	web, closer := a.HTTPApp(token)
	defer closer.Close()

	errc := make(chan error, 1)
	go func() { errc <- api.Serve(web, cfg.ListenAddr) }()
	log.Info("api listening", "addr", cfg.ListenAddr, "embedded_queue", cfg.Embedded())
	select {
	case err := <-errc:
		return fmt.Errorf("CRM_LISTEN_ADDR %s: %w", cfg.ListenAddr, err)
	case <-ctx.Done():
	}
	log.Info("shutting down: intake stopped, letting in-flight steps finish")
	_ = web.ShutdownWithTimeout(10 * time.Second)
	if workerDone != nil {
		stopWorker()
		<-workerDone
	}
	return nil
}

// healthcheck asks the api on CRM_LISTEN_ADDR for /readyz and fails unless it answers
// 200: the container health check of an image without a shell or curl.
func healthcheck(ctx context.Context, args []string) error {
	cfg, _, err := config.Load("healthcheck", args, os.Getenv)
	if err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(cfg.ListenAddr)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+net.JoinHostPort(host, port)+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("readyz: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz: %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// rotateMasterKey re-encrypts every stored secret from CRM_MASTER_KEY (or the generated
// key file) to CRM_NEW_MASTER_KEY in one transaction. Stop api and workers first.
func rotateMasterKey(ctx context.Context, args []string) error {
	cfg, _, err := config.Load("rotate-master-key", args, os.Getenv)
	if err != nil {
		return err
	}
	newKey := os.Getenv("CRM_NEW_MASTER_KEY")
	if newKey == "" {
		return errors.New("CRM_NEW_MASTER_KEY: required (the key to re-encrypt every secret with)")
	}
	oldKey, created, err := secret.LoadOrCreateMasterKey(cfg.MasterKey, cfg.DataDir)
	if err != nil || created {
		return fmt.Errorf("CRM_MASTER_KEY: no current master key found (%v)", err)
	}
	oldBox, err := secret.NewBox(oldKey)
	if err != nil {
		return fmt.Errorf("CRM_MASTER_KEY: %w", err)
	}
	newBox, err := secret.NewBox(newKey)
	if err != nil {
		return fmt.Errorf("CRM_NEW_MASTER_KEY: %w", err)
	}
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	n, err := st.RotateSecrets(ctx, secret.Rotation{Old: oldBox, New: newBox})
	if err != nil {
		return err
	}
	if cfg.MasterKey == "" {
		if err := os.WriteFile(filepath.Join(cfg.DataDir, "master.key"), []byte(newKey+"\n"), 0o600); err != nil {
			return fmt.Errorf("secrets re-encrypted but the key file could not be updated (set CRM_MASTER_KEY to the new key): %w", err)
		}
	}
	fmt.Fprintf(os.Stderr, "re-encrypted %d secrets; start every process with the new CRM_MASTER_KEY\n", n)
	return nil
}
