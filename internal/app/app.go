// Package app assembles a process from configuration: store, sealed-secret box, queue
// connection (real Redis or the embedded one), pipeline engine, worker and API server.
// cmd/api, cmd/worker, the demo and the end-to-end tests all build on it, so every mode
// runs the same wiring.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/cn-relay-manager/cn-relay-manager/internal/api"
	"github.com/cn-relay-manager/cn-relay-manager/internal/batch"
	"github.com/cn-relay-manager/cn-relay-manager/internal/catalog"
	"github.com/cn-relay-manager/cn-relay-manager/internal/config"
	"github.com/cn-relay-manager/cn-relay-manager/internal/egress"
	"github.com/cn-relay-manager/cn-relay-manager/internal/evidence"
	"github.com/cn-relay-manager/cn-relay-manager/internal/hostreg"
	"github.com/cn-relay-manager/cn-relay-manager/internal/limit"
	"github.com/cn-relay-manager/cn-relay-manager/internal/metrics"
	"github.com/cn-relay-manager/cn-relay-manager/internal/pipeline"
	"github.com/cn-relay-manager/cn-relay-manager/internal/redisconn"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
	"github.com/cn-relay-manager/cn-relay-manager/internal/upstream"
	"github.com/cn-relay-manager/cn-relay-manager/jobs"
)

// App is one assembled process.
type App struct {
	Cfg       config.Config
	Log       *slog.Logger
	Store     *store.Store
	Box       *secret.Box
	Catalog   *catalog.Catalog
	Conn      asynq.RedisConnOpt
	Client    *asynq.Client
	Inspector *asynq.Inspector
	Queue     *jobs.Queue
	Engine    *pipeline.Engine
	// Metrics is this process's metric set: the job handlers and the host/upstream
	// clients (through the evidence observer) record into it, /metrics serves it.
	Metrics *metrics.Metrics

	// Redis is the connection of every Redis user in this process (nil when embedded):
	// asynq's client, server, scheduler and inspector, asynqmon and the semaphores.
	Redis *redisconn.Conn

	mini       *miniredis.Miniredis
	limitRedis redis.UniversalClient
	probe      redis.UniversalClient // health checks: no retries, first failure reported
	stopTick   chan struct{}

	readyMu   sync.Mutex
	lastReady error // the last readiness verdict, to log changes only
}

// New opens the database (migrating it), the secret box and the queue connection.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (*App, error) {
	a := &App{Cfg: cfg, Log: log, Catalog: catalog.Default(), Metrics: metrics.New()}
	evidence.SetObserver(a.Metrics.ObserveExchange)
	key, created, err := secret.LoadOrCreateMasterKey(cfg.MasterKey, cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("CRM_MASTER_KEY: %w", err)
	}
	if created {
		log.Warn("CRM_MASTER_KEY is not set: generated a master key file in the data directory; every process sharing this database needs the same key", "dir", cfg.DataDir)
	}
	if a.Box, err = secret.NewBox(key); err != nil {
		return nil, fmt.Errorf("CRM_MASTER_KEY: %w", err)
	}
	if a.Store, err = store.Open(ctx, cfg.DatabaseURL); err != nil {
		return nil, err
	}
	if err := a.Store.Migrate(ctx); err != nil {
		a.Store.Close()
		return nil, err
	}
	if err := checkMasterKey(ctx, a.Store, a.Box, created, log); err != nil {
		a.Store.Close()
		if created {
			// A key generated for a database sealed with another one must not stay behind
			// as if it were this data directory's key.
			_ = os.Remove(filepath.Join(cfg.DataDir, "master.key"))
		}
		return nil, err
	}
	if cfg.Embedded() {
		a.startEmbeddedRedis()
		log.Warn("CRM_REDIS_URL (and CRM_REDIS_ADDR) is empty: running all-in-one with an in-memory queue; it is lost on exit and the recovery sweep rebuilds it from the database on the next start")
	} else {
		conn, err := cfg.Redis()
		if err != nil {
			a.Store.Close()
			return nil, err
		}
		a.Redis, a.Conn = conn, conn
		a.probe = conn.ProbeClient()
	}
	a.Client = asynq.NewClient(a.Conn)
	a.Inspector = asynq.NewInspector(a.Conn)
	a.Queue = &jobs.Queue{Client: a.Client, Inspector: a.Inspector, Log: log}
	a.Engine = &pipeline.Engine{
		Store: a.Store, Box: a.Box, Catalog: a.Catalog,
		Prober: upstream.NewProber(upstream.Options{Catalog: a.Catalog,
			HTTPClient: egress.Policy{AllowPrivate: cfg.AllowPrivateUpstreams}.Client(2 * time.Minute)}),
		Settings: pipeline.Settings{
			ManagedUserEmail: cfg.ManagedUserEmail, TopUpAmount: cfg.TopUpAmount, ValidityDays: cfg.ValidityDays,
			WindowDeadline: cfg.WindowDeadline, WindowSchedule: cfg.WindowSchedule,
			HostConcurrency: cfg.HostConcurrency, UpstreamConcurrency: cfg.UpstreamConcurrency,
			HostTimeout: cfg.HostTimeout,
		},
	}
	var providers []string
	for _, p := range a.Catalog.Providers() {
		providers = append(providers, p.ID)
	}
	a.Metrics.SetProviders(providers)
	a.Engine.Events = func(ev pipeline.StepEvent) {
		a.Metrics.ObserveStepResult(ev.Step, ev.Outcome, ev.Class, ev.Provider, ev.Host)
	}
	if rc, ok := a.Conn.MakeRedisClient().(redis.UniversalClient); ok {
		a.limitRedis = rc
		a.Engine.Limiter = &limit.Semaphore{Redis: rc, Wake: a.Queue.Wake}
	}
	return a, nil
}

// embeddedConn connects asynq to the in-process miniredis through net.Pipe: no port to
// collide with, nothing reachable from outside.
type embeddedConn struct{ m *miniredis.Miniredis }

func (e embeddedConn) MakeRedisClient() interface{} {
	return redis.NewClient(&redis.Options{Addr: "embedded-miniredis", PoolSize: 64,
		Dialer: func(ctx context.Context, _, _ string) (net.Conn, error) { return e.m.Dial() }})
}

func (a *App) startEmbeddedRedis() {
	a.mini = miniredis.NewMiniRedis()
	a.Conn = embeddedConn{a.mini}
	a.stopTick = make(chan struct{})
	// miniredis TTLs only move when told to; asynq's locks and leases need them to.
	go func(m *miniredis.Miniredis, stop chan struct{}) {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				m.FastForward(time.Second)
			}
		}
	}(a.mini, a.stopTick)
}

// PingQueue checks the queue's Redis. A failure is a *redisconn.Error naming the setting
// and the cause, never the password. Changes of the verdict are logged (with the masked
// URL), not every check.
func (a *App) PingQueue(ctx context.Context) error {
	var err error
	if a.Redis == nil {
		c, ok := a.Conn.MakeRedisClient().(redis.UniversalClient)
		if !ok {
			return errors.New("unexpected redis client type")
		}
		defer c.Close()
		err = c.Ping(ctx).Err()
	} else {
		err = a.Redis.Check(ctx, a.probe)
	}
	a.readyMu.Lock()
	defer a.readyMu.Unlock()
	switch {
	case err != nil && (a.lastReady == nil || a.lastReady.Error() != err.Error()):
		a.Log.Warn("queue Redis not usable", "error", err)
	case err == nil && a.lastReady != nil:
		a.Log.Info("queue Redis usable again")
	}
	a.lastReady = err
	return err
}

// Batches returns the batch service bound to this process's store and queue.
func (a *App) Batches() *batch.Service {
	return &batch.Service{Store: a.Store, Queue: a.Queue, Box: a.Box, Catalog: a.Catalog, Rollbacks: a.Engine,
		Egress: egress.Policy{AllowPrivate: a.Cfg.AllowPrivateUpstreams}}
}

// Hosts returns the host service bound to this process's store, secret box and prober.
func (a *App) Hosts() *hostreg.Service {
	return &hostreg.Service{Store: a.Store, Box: a.Box, Prober: a.Engine}
}

// APIServer returns the REST API bound to this process's store and batch service.
func (a *App) APIServer(token string) *api.Server {
	return &api.Server{Store: a.Store, Batches: a.Batches(), Hosts: a.Hosts(),
		Token: token, Log: a.Log, Ready: a.PingQueue, Metrics: a.Metrics, Accounts: a.Accounts()}
}

// RunWorker serves the queue and runs the recovery sweep until ctx ends, then shuts down
// gracefully: in-flight steps get the shutdown timeout to finish, the rest stays queued
// (or is rebuilt by the next sweep).
func (a *App) RunWorker(ctx context.Context) error {
	srv := asynq.NewServer(a.Conn, asynq.Config{
		Concurrency:              a.Cfg.WorkerConcurrency,
		Queues:                   jobs.Queues,
		StrictPriority:           true, // steps that finish items first (jobs.FinishQueue)
		DelayedTaskCheckInterval: time.Second,
		TaskCheckInterval:        50 * time.Millisecond, // an idle slot picks up a woken or newly queued step within 50 ms
		ShutdownTimeout:          20 * time.Second,
		RetryDelayFunc:           jobs.RetryDelay,
		IsFailure:                jobs.IsFailure,
		Logger:                   slogAdapter{a.Log},
		LogLevel:                 asynq.WarnLevel,
	})
	h := &jobs.Handlers{Runner: a.Engine, Queue: a.Queue, Log: a.Log, Metrics: a.Metrics}
	mux := h.Mux()
	(&jobs.OperationHandlers{Ops: a.Engine, Store: a.Store, Queue: a.Queue, Metrics: a.Metrics}).Register(mux)
	a.AccountHandlers().Register(mux)
	var sched *asynq.Scheduler
	if a.Cfg.ReconcileCron != "" {
		var err error
		if sched, err = jobs.NewScheduler(a.Conn, a.Cfg.ReconcileCron, slogAdapter{a.Log}); err != nil {
			return err
		}
	}
	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	if sched != nil {
		if err := sched.Start(); err != nil {
			srv.Shutdown()
			return fmt.Errorf("start scheduler: %w", err)
		}
		defer sched.Shutdown()
	}
	stopAccounts, err := a.startAccountsScheduler()
	if err != nil {
		srv.Shutdown()
		return fmt.Errorf("start accounts scheduler: %w", err)
	}
	defer stopAccounts()
	sweeper := &jobs.Sweeper{Store: a.Store, Queue: a.Queue, Log: a.Log, Lookahead: a.Cfg.SweepInterval}
	sweepCtx, stopSweep := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); sweeper.Run(sweepCtx, a.Cfg.SweepInterval) }()
	<-ctx.Done()
	stopSweep()
	<-done
	srv.Shutdown()
	return nil
}

// Close releases everything New opened.
func (a *App) Close() {
	if a.Client != nil {
		a.Client.Close()
	}
	if a.Inspector != nil {
		a.Inspector.Close()
	}
	if a.limitRedis != nil {
		a.limitRedis.Close()
	}
	if a.probe != nil {
		a.probe.Close()
	}
	if a.stopTick != nil {
		close(a.stopTick)
	}
	if a.mini != nil {
		a.mini.Close()
	}
	if a.Store != nil {
		a.Store.Close()
	}
}

// slogAdapter routes asynq's logs into slog.
type slogAdapter struct{ l *slog.Logger }

func (s slogAdapter) Debug(args ...interface{}) { s.l.Debug(fmt.Sprint(args...), "component", "asynq") }
func (s slogAdapter) Info(args ...interface{})  { s.l.Info(fmt.Sprint(args...), "component", "asynq") }
func (s slogAdapter) Warn(args ...interface{})  { s.l.Warn(fmt.Sprint(args...), "component", "asynq") }
func (s slogAdapter) Error(args ...interface{}) { s.l.Error(fmt.Sprint(args...), "component", "asynq") }
func (s slogAdapter) Fatal(args ...interface{}) {
	s.l.Error(fmt.Sprint(args...), "component", "asynq", "fatal", true)
}
