// Package pipeline decides what each step of an item does: it loads the item, calls the
// upstream and the host, writes the ledger and the attempt, and returns a Decision (next
// step, delay). It knows nothing about the queue that carries the decision out.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/backoff"
	"github.com/cn-relay-manager/cn-relay-manager/internal/catalog"
	"github.com/cn-relay-manager/cn-relay-manager/internal/evidence"
	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/step"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
	"github.com/cn-relay-manager/cn-relay-manager/internal/upstream"
)

// Access modes (product §6).
const (
	ModeSubscription = "subscription"
	ModeSelfService  = "self_service"
	ModeNone         = "none"
)

// Decision is what the queue must do after a step: run Next for the item at sequence Seq
// after Delay. An empty Next means nothing more to enqueue.
type Decision struct {
	ItemID string
	Next   string
	Seq    int
	Delay  time.Duration
}

// Prober is the direct upstream prober the pipeline needs.
type Prober interface {
	Probe(ctx context.Context, t upstream.Target) (*upstream.Capability, error)
	Chat(ctx context.Context, baseURL, apiKey, providerID, model string) error
}

// Settings are the process-wide defaults a batch may override.
type Settings struct {
	ManagedUserEmail string
	TopUpAmount      float64
	ValidityDays     int
	WindowDeadline   time.Duration
	WindowSchedule   []time.Duration
	MaxRetries       int           // transient-error retries per step
	RetryBase        time.Duration // first backoff delay
	// HostConcurrency caps the steps running against one sub2api host at once, across
	// every worker process (0 = unlimited); UpstreamConcurrency caps probes of one
	// upstream host.
	HostConcurrency     int
	UpstreamConcurrency int
	// HostTimeout bounds one host request (0 = the client's default, 30 s).
	HostTimeout time.Duration
}

// Limiter hands out cross-process concurrency slots (internal/limit on Redis). A queued
// step uses TryAcquire: when a cap is full it gets a *limit.Busy at once and gives its
// worker slot back (the queue runs it again shortly) instead of holding the slot while
// it waits. Acquire waits, for work that owns its goroutine.
type Limiter interface {
	Acquire(ctx context.Context, key string, limit int) (release func(), err error)
	TryAcquire(ctx context.Context, key string, limit int, waiter string) (release func(), err error)
}

// Engine runs pipeline steps.
type Engine struct {
	Store    *store.Store
	Box      *secret.Box
	Catalog  *catalog.Catalog
	Prober   Prober
	Settings Settings
	Limiter  Limiter // nil = no cross-process caps
	// Events, when set, is told of every step result stored (the metrics' counters).
	Events func(StepEvent)
	// NewHostClient builds a client for a registered host; nil uses host.New.
	NewHostClient func(h *store.Host, cfg host.Config) HostClient
	Now           func() time.Time

	mu      sync.Mutex
	clients map[string]HostClient
	batches map[string]*store.Batch // read-only copies for steps; see batchOf
	tokens  map[string]cachedToken  // managed users' JWTs by host and user ID
	users   userLocks
}

type cachedToken struct {
	token   string
	expires time.Time
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now().UTC()
	}
	return time.Now().UTC()
}

// stepContext is everything one step execution needs.
type stepContext struct {
	item    *store.Item
	batch   *store.Batch
	host    *store.Host
	client  HostClient
	profile host.Profile
	apiKey  string
	// releaseUpstream frees the upstream slot the import step holds for its probe, as
	// soon as the probe is done (the host calls after it do not need it).
	releaseUpstream func()
	// ledger holds the ledger rows the step has read or written (ledger.go).
	ledger map[string]store.Resource
}

// result is what a step decided.
type result struct {
	outcome  string // attempt outcome
	message  string
	class    failure.Class
	status   string // item status afterwards
	next     string // next step; "" when terminal
	delay    time.Duration
	sameStep bool // the next run repeats this step (waiting/retry)
}

// Run executes step for the item at sequence seq and persists the outcome. A task for a
// step the item has already moved past (duplicate delivery, stale schedule) does nothing.
func (e *Engine) Run(ctx context.Context, name, itemID string, seq int) (Decision, error) {
	it, err := e.Store.GetItem(ctx, itemID)
	if errors.Is(err, store.ErrNotFound) {
		return Decision{}, nil
	}
	if err != nil {
		return Decision{}, err
	}
	if it.Seq != seq || it.Step != name || store.IsTerminal(it.Status) {
		return Decision{}, nil
	}
	release, releaseUpstream, err := e.takeSlots(ctx, it, name, seq)
	if err != nil {
		return Decision{}, fmt.Errorf("step %s for item %s: %w", name, itemID, err)
	}
	defer release()
	defer releaseUpstream()
	sc, err := e.load(ctx, it)
	if res, ok := unreadable(err); ok && sc != nil {
		return e.persistAndTell(ctx, sc, name, seq, e.now(), res, &evidence.Recorder{})
	}
	if err != nil {
		return Decision{}, err
	}
	sc.releaseUpstream = releaseUpstream
	rec := &evidence.Recorder{}
	started := e.now()
	var res result
	func() {
		defer func() {
			if p := recover(); p != nil {
				res = result{outcome: store.OutcomeFailed, class: failure.Internal, status: store.ItemFailed,
					message: fmt.Sprintf("internal error in step %s: %v", name, p)}
			}
		}()
		sctx := evidence.WithRecorder(ctx, rec)
		if run, ok := handlers[name]; ok {
			res = run(e, sctx, sc)
		} else {
			res = result{outcome: store.OutcomeFailed, class: failure.Internal, status: store.ItemFailed, message: "unknown step " + name}
		}
	}()
	if ctx.Err() != nil && res.outcome != store.OutcomeOK {
		// Shutting down mid-step: leave the item at this sequence; the queue or the
		// recovery sweep runs the step again.
		return Decision{}, fmt.Errorf("step %s for item %s interrupted: %w", name, itemID, ctx.Err())
	}
	return e.persistAndTell(ctx, sc, name, seq, started, res, rec)
}

func (e *Engine) persist(ctx context.Context, sc *stepContext, step string, seq int, started time.Time, res result, rec *evidence.Recorder) (Decision, error) {
	it := sc.item
	number := 1
	if res.sameStep || it.Step == step {
		number = it.StepAttempts + 1
	}
	att := &store.Attempt{Step: step, Seq: seq, Number: number, Outcome: res.outcome, Message: e.redact(sc, res.message),
		FailureClass: string(res.class), Evidence: toExchanges(rec.Exchanges()), StartedAt: started, FinishedAt: e.now()}
	it.Seq = seq + 1
	it.Status = res.status
	if res.next != "" {
		if res.next == step && res.sameStep {
			it.StepAttempts++
			if res.outcome == store.OutcomeRetry {
				it.StepRetries++
			}
		} else {
			it.StepAttempts, it.StepRetries = 0, 0
		}
		it.Step = res.next
		at := e.now().Add(res.delay)
		it.NextRunAt = &at
	} else {
		it.NextRunAt = nil
	}
	if res.class != "" && res.outcome == store.OutcomeFailed {
		it.FailureClass = string(res.class)
		it.FailureMessage = e.redact(sc, res.message)
	}
	if err := e.Store.CompleteStep(ctx, it, seq, att); err != nil {
		if errors.Is(err, store.ErrStale) {
			return Decision{}, nil
		}
		return Decision{}, err
	}
	if res.next == "" {
		return Decision{}, nil
	}
	return Decision{ItemID: it.ID, Next: res.next, Seq: it.Seq, Delay: res.delay}, nil
}

func (e *Engine) redact(sc *stepContext, s string) string {
	return evidence.Redact(s, sc.apiKey)
}

func toExchanges(ex []evidence.Exchange) []store.Exchange {
	out := make([]store.Exchange, 0, len(ex))
	for _, x := range ex {
		out = append(out, store.Exchange{Target: x.Target, Method: x.Method, Path: x.Path, Status: x.Status,
			LatencyMS: x.LatencyMS, Preview: x.Preview, Error: x.Error, At: x.At})
	}
	return out
}

func (e *Engine) load(ctx context.Context, it *store.Item) (*stepContext, error) {
	b, err := e.batchOf(ctx, it.BatchID)
	if err != nil {
		return nil, fmt.Errorf("load batch of item %s: %w", it.ID, err)
	}
	h, err := e.Store.GetHost(ctx, it.HostID)
	if err != nil {
		return nil, fmt.Errorf("load host of item %s: %w", it.ID, err)
	}
	sc := &stepContext{item: it, batch: b, host: h}
	if sc.apiKey, err = e.Box.Open(it.APIKeyEnc); err != nil {
		return sc, &sealedError{what: fmt.Sprintf("the API key of item %d (%s)", it.Idx+1, it.Name), err: err}
	}
	if sc.client, err = e.hostClient(h); err != nil {
		return sc, err
	}
	prof, ok := host.ProfileByName(h.Profile)
	if !ok {
		prof, _ = host.ProfileByName("0.1.179")
	}
	sc.profile = prof
	return sc, nil
}

// batchOf returns the batch a step runs in. What a step reads of it (mode, options,
// force, dry run) is fixed at submit, so it is read once per process and shared
// read-only by the steps of its items, instead of once per step.
func (e *Engine) batchOf(ctx context.Context, id string) (*store.Batch, error) {
	e.mu.Lock()
	b, ok := e.batches[id]
	e.mu.Unlock()
	if ok {
		return b, nil
	}
	b, err := e.Store.GetBatch(ctx, id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.batches == nil || len(e.batches) >= 1024 {
		e.batches = map[string]*store.Batch{} // bounded: the batches running now come back in one read each
	}
	e.batches[id] = b
	return b, nil
}

// HostConfig builds the client configuration of a registered host (secrets opened).
func HostConfig(box *secret.Box, h *store.Host) (host.Config, error) {
	cfg := host.Config{AdminURL: h.AdminURL, PublicURL: h.PublicURL, AdminEmail: h.AdminEmail}
	var err error
	if cfg.AdminAPIKey, err = box.Open(h.AdminKeyEnc); err != nil {
		return cfg, &sealedError{what: "the admin key of host " + h.Name, err: err}
	}
	if cfg.AdminPassword, err = box.Open(h.AdminPasswordEnc); err != nil {
		return cfg, &sealedError{what: "the admin password of host " + h.Name, err: err}
	}
	return cfg, nil
}

// clientFor loads a registered host and its client.
func (e *Engine) clientFor(ctx context.Context, hostID string) (*store.Host, HostClient, error) {
	h, err := e.Store.GetHost(ctx, hostID)
	if err != nil {
		return nil, nil, err
	}
	c, err := e.hostClient(h)
	return h, c, err
}

func (e *Engine) hostClient(h *store.Host) (HostClient, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.clients[h.ID+h.UpdatedAt.String()]; ok {
		return c, nil
	}
	cfg, err := HostConfig(e.Box, h)
	if err != nil {
		return nil, err
	}
	cfg.Timeout = e.Settings.HostTimeout
	var c HostClient
	if e.NewHostClient != nil {
		c = e.NewHostClient(h, cfg)
	} else {
		c = host.New(cfg)
	}
	if e.clients == nil {
		e.clients = map[string]HostClient{}
	}
	e.clients[h.ID+h.UpdatedAt.String()] = c
	return c, nil
}

// window returns the batch's confirmation window settings.
func (e *Engine) window(b *store.Batch) (time.Duration, []time.Duration) {
	deadline := e.Settings.WindowDeadline
	if b.Options.WindowDeadlineS > 0 {
		deadline = time.Duration(b.Options.WindowDeadlineS * float64(time.Second))
	}
	sched := e.Settings.WindowSchedule
	if len(b.Options.WindowScheduleS) > 0 {
		sched = nil
		for _, s := range b.Options.WindowScheduleS {
			sched = append(sched, time.Duration(s*float64(time.Second)))
		}
	}
	if len(sched) == 0 {
		sched = []time.Duration{2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, 60 * time.Second}
	}
	return deadline, sched
}

// waitOrTimeout reschedules the step inside the confirmation window, or fails the item
// with class when the window has closed.
func (e *Engine) waitOrTimeout(sc *stepContext, step, status, why string, class failure.Class) result {
	_, sched := e.window(sc.batch)
	now := e.now()
	if sc.item.WindowDeadline == nil || !now.Before(*sc.item.WindowDeadline) {
		return result{outcome: store.OutcomeFailed, class: class, status: store.ItemFailed,
			message: "confirmation window closed: " + why}
	}
	waits := sc.item.StepAttempts - sc.item.StepRetries
	delay := sched[min(max(waits, 0), len(sched)-1)]
	if left := sc.item.WindowDeadline.Sub(now); delay > left {
		delay = left
	}
	if delay < time.Second {
		delay = time.Second
	}
	return result{outcome: store.OutcomeWaiting, status: status, next: step, sameStep: true, delay: delay,
		message: fmt.Sprintf("%s; next check in %s", why, delay.Round(time.Second))}
}

// retryOrFail retries a transient error with backoff, bounded, or fails the item.
func (e *Engine) retryOrFail(sc *stepContext, step, status string, err error) result {
	fe := classify(err)
	maxRetries := e.Settings.MaxRetries
	if maxRetries <= 0 {
		maxRetries = 6
	}
	if fe.Retryable && sc.item.StepRetries < maxRetries {
		delay := backoff.Step(e.Settings.RetryBase).Delay(sc.item.StepRetries, fe.RetryAfter)
		return result{outcome: store.OutcomeRetry, class: fe.Class, status: status, next: step, sameStep: true, delay: delay,
			message: fmt.Sprintf("%s (retry %d/%d in %s)", fe.Error(), sc.item.StepRetries+1, maxRetries, delay)}
	}
	return result{outcome: store.OutcomeFailed, class: fe.Class, status: store.ItemFailed, message: fe.Error()}
}

// classify turns any error into a classified one; host errors are classified by the host
// package at the edge where the answer arrived.
func classify(err error) *failure.Error {
	var fe *failure.Error
	if errors.As(err, &fe) {
		return fe
	}
	if _, ok := host.AsError(err); ok {
		return host.Failure(err)
	}
	return &failure.Error{Class: failure.Internal, Message: err.Error(), Err: err}
}

// takeSlots takes, without waiting, the slots a step needs: one of its host's cap and,
// for the import step (the only one that calls the upstream directly), one of its
// upstream's. When a cap is full it holds nothing and returns the *limit.Busy: the step
// has joined the cap's wait list under its task ID and is queued again when a slot
// frees. Both releases are idempotent.
func (e *Engine) takeSlots(ctx context.Context, it *store.Item, name string, seq int) (release, releaseUpstream func(), err error) {
	none := func() {}
	if e.Limiter == nil {
		return none, none, nil
	}
	release, releaseUpstream = none, none
	if e.Settings.HostConcurrency > 0 {
		if release, err = e.Limiter.TryAcquire(ctx, hostCapKey(it.HostID), e.Settings.HostConcurrency, step.TaskID(name, it.ID, seq)); err != nil {
			return nil, nil, err
		}
	}
	if name == step.Import && e.Settings.UpstreamConcurrency > 0 {
		if n, nerr := e.Catalog.NormalizeURL(it.BaseURL); nerr == nil {
			if releaseUpstream, err = e.Limiter.TryAcquire(ctx, upstreamCapKey(n.Host), e.Settings.UpstreamConcurrency, step.TaskID(name, it.ID, seq)); err != nil {
				release()
				return nil, nil, err
			}
		}
	}
	return release, once(releaseUpstream), nil
}

func once(f func()) func() {
	var o sync.Once
	return func() { o.Do(f) }
}

// hostCapKey and upstreamCapKey name the concurrency caps in the limiter.
func hostCapKey(hostID string) string   { return "host:" + hostID }
func upstreamCapKey(host string) string { return "upstream:" + host }

// waiterKey carries the queue's name for the task a context runs (WithWaiter).
type waiterKey struct{}

// WithWaiter tells the engine the queue's name for the task ctx runs (its asynq task
// ID). A cap that is full then does not keep the task waiting in its worker slot:
// waitHostSlot and waitUpstreamSlot answer the cap's *limit.Busy at once, the task joins
// the cap's wait list under that name, and the queue parks it until a slot frees, as it
// does item steps.
func WithWaiter(ctx context.Context, taskID string) context.Context {
	return context.WithValue(ctx, waiterKey{}, taskID)
}

// waitHostSlot takes a slot of the host's cap (hostName is for the error) for the
// re-verification of accounts (a run, its checks, their undos): under a task named by
// WithWaiter without waiting (a full cap answers *limit.Busy), else waiting for it. Item
// steps take their slots with takeSlots.
func (e *Engine) waitHostSlot(ctx context.Context, hostID, hostName string) (func(), error) {
	release, err := e.acquire(ctx, hostCapKey(hostID), e.Settings.HostConcurrency)
	if err != nil {
		return nil, fmt.Errorf("wait for a slot on host %s: %w", hostName, err)
	}
	return release, nil
}

// waitUpstreamSlot is waitHostSlot for the cap of an upstream host name.
func (e *Engine) waitUpstreamSlot(ctx context.Context, host string) (func(), error) {
	release, err := e.acquire(ctx, upstreamCapKey(host), e.Settings.UpstreamConcurrency)
	if err != nil {
		return nil, fmt.Errorf("wait for a slot on upstream %s: %w", host, err)
	}
	return release, nil
}

func (e *Engine) acquire(ctx context.Context, key string, limit int) (func(), error) {
	if e.Limiter == nil || limit <= 0 {
		return func() {}, nil
	}
	if waiter, _ := ctx.Value(waiterKey{}).(string); waiter != "" {
		return e.Limiter.TryAcquire(ctx, key, limit, waiter)
	}
	return e.Limiter.Acquire(ctx, key, limit)
}
