package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/robfig/cron/v3"

	"github.com/cn-relay-manager/cn-relay-manager/internal/limit"
	"github.com/cn-relay-manager/cn-relay-manager/internal/metrics"
	"github.com/cn-relay-manager/cn-relay-manager/internal/notify"
	"github.com/cn-relay-manager/cn-relay-manager/internal/pipeline"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// Task types of the work after the import: scheduled re-verification, undo of an
// automatic action, notification deliveries and their upkeep.
const (
	// TypeVerifyTick is the periodic task of CRM_VERIFY_CRON: it fans out one verify-run
	// per host with a per-slot task ID.
	TypeVerifyTick = "verify-tick"
	// TypeVerifyRun plans one host's re-verification and schedules its checks.
	TypeVerifyRun = "verify-run"
	// TypeVerifyAccount runs one account's check.
	TypeVerifyAccount = "verify-account"
	// TypeAccountUndo reverses the host change of one check.
	TypeAccountUndo = "account-undo"
	// TypeNotify makes one delivery attempt of one outbox row.
	TypeNotify = "notify"
	// TypeUpkeep runs every UpkeepEvery: queues batch_finished events, re-enqueues due
	// deliveries and checks whose task was lost, ends runs past their deadline.
	TypeUpkeep = "accounts-upkeep"
)

// UpkeepEvery is the period of TypeUpkeep.
const UpkeepEvery = 30 * time.Second

// VerifyPayload identifies a re-verification task: a host slot (periodic run), a run, a
// check or an outbox row. IDs only.
type VerifyPayload struct {
	HostID string `json:"host_id,omitempty"`
	Slot   string `json:"slot,omitempty"`
	// PeriodS is the slot's period: the run's deadline is the next slot and its checks are
	// spread over the first SpreadFraction of it.
	PeriodS  int    `json:"period_s,omitempty"`
	RunID    string `json:"run_id,omitempty"`
	CheckID  string `json:"check_id,omitempty"`
	OutboxID string `json:"outbox_id,omitempty"`
}

// SpreadFraction is the part of the period over which a periodic run's checks are spread;
// the rest is left for the last checks (and their retries) to finish before the next slot.
const SpreadFraction = 0.8

func (q *Queue) enqueue(ctx context.Context, typ, taskID string, p VerifyPayload, at time.Time, retries int, timeout time.Duration) error {
	payload, err := json.Marshal(p)
	if err != nil {
		return err
	}
	opts := []asynq.Option{asynq.TaskID(taskID), asynq.Queue(QueueName), asynq.MaxRetry(retries), asynq.Timeout(timeout)}
	if time.Until(at) > 0 {
		opts = append(opts, asynq.ProcessAt(at))
	}
	_, err = q.Client.EnqueueContext(ctx, asynq.NewTask(typ, payload), opts...)
	if errors.Is(err, asynq.ErrTaskIDConflict) || errors.Is(err, asynq.ErrDuplicateTask) {
		return fmt.Errorf("%s: %w", taskID, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", typ, err)
	}
	return nil
}

// EnqueueVerifyRun queues the planning of a stored run (one asked for through the API).
func (q *Queue) EnqueueVerifyRun(ctx context.Context, run *store.VerifyRun) error {
	return q.enqueue(ctx, TypeVerifyRun, "verify-run:"+run.ID, VerifyPayload{HostID: run.HostID, RunID: run.ID}, time.Now(), 3, 10*time.Minute)
}

// EnqueueVerifySlot queues the periodic run of a host for the slot starting at slotAt
// (a UTC minute) with the given period; the task ID names host and slot, so every
// scheduler ticking for the slot queues it once.
func (q *Queue) EnqueueVerifySlot(ctx context.Context, hostID string, slotAt time.Time, period time.Duration) error {
	slot := slotAt.UTC().Truncate(time.Minute).Format("200601021504")
	return q.enqueue(ctx, TypeVerifyRun, "verify-run:"+hostID+":"+slot,
		VerifyPayload{HostID: hostID, Slot: slot, PeriodS: int(period / time.Second)}, time.Now(), 3, 10*time.Minute)
}

// EnqueueCheck schedules one account check at its due time.
func (q *Queue) EnqueueCheck(ctx context.Context, checkID string, at time.Time) error {
	return q.enqueue(ctx, TypeVerifyAccount, "verify:"+checkID, VerifyPayload{CheckID: checkID}, at, 3, 5*time.Minute)
}

// EnqueueUndo queues the undo of a check's action.
func (q *Queue) EnqueueUndo(ctx context.Context, checkID string) error {
	return q.enqueue(ctx, TypeAccountUndo, "undo:"+checkID, VerifyPayload{CheckID: checkID}, time.Now(), 5, 2*time.Minute)
}

// EnqueueDelivery schedules the next attempt of an outbox row; the task ID names the
// attempt, so a repeated enqueue of the same attempt collapses.
func (q *Queue) EnqueueDelivery(ctx context.Context, row *store.OutboxRow) error {
	return q.enqueue(ctx, TypeNotify, fmt.Sprintf("notify:%s:%d", row.ID, row.Attempts+1), VerifyPayload{OutboxID: row.ID},
		row.NextAt, 0, time.Minute)
}

// enqueueChecks schedules many checks with a few concurrent Redis round trips; what fails
// is left to the upkeep, which re-enqueues overdue pending checks.
func (q *Queue) enqueueChecks(ctx context.Context, checks []*store.AccountCheck) int {
	const workers = 8
	var mu sync.Mutex
	n := 0
	next := make(chan *store.AccountCheck)
	var wg sync.WaitGroup
	for w := 0; w < min(workers, len(checks)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range next {
				if err := q.EnqueueCheck(ctx, c.ID, c.DueAt); err != nil && !errors.Is(err, ErrExists) {
					q.log().Warn("enqueue check failed; the upkeep will retry", "check_id", c.ID, "error", err)
					continue
				}
				mu.Lock()
				n++
				mu.Unlock()
			}
		}()
	}
	for _, c := range checks {
		next <- c
	}
	close(next)
	wg.Wait()
	return n
}

// AccountVerifier runs the re-verification work; *pipeline.Engine satisfies it.
type AccountVerifier interface {
	PlanVerifyRun(ctx context.Context, run *store.VerifyRun, spread time.Duration) ([]*store.AccountCheck, error)
	VerifyAccount(ctx context.Context, checkID string) (*pipeline.VerifyOutcome, error)
	UndoCheck(ctx context.Context, checkID string) error
}

// AccountHandlers serve the re-verification, undo, notification and upkeep tasks.
type AccountHandlers struct {
	Verifier AccountVerifier
	Store    *store.Store
	Queue    *Queue
	// Box opens the sealed webhook URLs and secrets.
	Box *secret.Box
	// Sender delivers a formatted notification (nil: an HTTP notify.Sender).
	Sender notify.Poster
	// Policy is the retry schedule of deliveries.
	Policy notify.Policy
	// Spec is CRM_VERIFY_CRON, for the period of a slot ("" = none).
	Spec    string
	Now     func() time.Time
	Metrics *metrics.Metrics
	Log     *slog.Logger
}

// Register adds the handlers to mux; each run is timed under its task type.
func (h *AccountHandlers) Register(mux *asynq.ServeMux) {
	for typ, fn := range map[string]func(context.Context, *asynq.Task) error{
		TypeVerifyTick: h.handleTick, TypeVerifyRun: h.handleRun, TypeVerifyAccount: h.handleCheck,
		TypeAccountUndo: h.handleUndo, TypeNotify: h.handleNotify, TypeUpkeep: h.handleUpkeep,
	} {
		mux.HandleFunc(typ, h.timed(fn))
	}
}

func (h *AccountHandlers) timed(fn func(context.Context, *asynq.Task) error) func(context.Context, *asynq.Task) error {
	return func(ctx context.Context, t *asynq.Task) error {
		start := time.Now()
		err := fn(ctx, t)
		outcome := metrics.OutcomeFinished
		if _, busy := limit.IsBusy(err); busy {
			outcome = metrics.OutcomeDeferred
		} else if err != nil {
			outcome = metrics.OutcomeError
		}
		h.Metrics.ObserveStep(t.Type(), outcome, time.Since(start))
		return err
	}
}

func (h *AccountHandlers) now() time.Time {
	if h.Now != nil {
		return h.Now().UTC()
	}
	return time.Now().UTC()
}

func (h *AccountHandlers) log() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.Default()
}

func payloadOf(t *asynq.Task) (VerifyPayload, error) {
	var p VerifyPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return p, fmt.Errorf("bad %s payload: %w", t.Type(), asynq.SkipRetry)
	}
	return p, nil
}

// Period returns the time from slot to the next run of spec (a five-field cron spec or
// "@every 10m", UTC).
func Period(spec string, slot time.Time) (time.Duration, error) {
	sched, err := cron.ParseStandard(spec)
	if err != nil {
		return 0, fmt.Errorf("CRM_VERIFY_CRON: %w", err)
	}
	d := sched.Next(slot).Sub(slot)
	if d <= 0 {
		return 0, fmt.Errorf("CRM_VERIFY_CRON %q has no next run after %s", spec, slot.Format(time.RFC3339))
	}
	return d, nil
}

// handleTick enqueues one verify-run per registered host with imported accounts for the
// current slot (the UTC minute): several schedulers ticking in the same minute produce the same task IDs, and
// the run's unique (host, slot) keeps one run per slot whatever gets through.
func (h *AccountHandlers) handleTick(ctx context.Context, _ *asynq.Task) error {
	slotAt := h.now().Truncate(time.Minute)
	period, err := Period(h.Spec, slotAt)
	if err != nil {
		return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
	}
	hosts, err := h.Store.ListHosts(ctx)
	if err != nil {
		return err
	}
	for _, host := range hosts {
		// A host nothing was imported into has nothing to re-verify (and no run to list).
		if n, err := h.Store.CountResources(ctx, store.ResourceFilter{HostID: host.ID, Type: store.TypeAccount}); err != nil || n == 0 {
			if err != nil {
				return err
			}
			continue
		}
		if err := h.Queue.EnqueueVerifySlot(ctx, host.ID, slotAt, period); err != nil && !errors.Is(err, ErrExists) {
			return err
		}
	}
	return nil
}

// handleRun plans a run and schedules its checks: a periodic slot's run is started here
// (its deadline the next slot, its checks spread over SpreadFraction of what is left of
// the period); a
// run asked for was started by the API. A run that was planned already (the task was
// delivered again) only has its pending checks scheduled again.
func (h *AccountHandlers) handleRun(ctx context.Context, t *asynq.Task) error {
	p, err := payloadOf(t)
	if err != nil {
		return err
	}
	var run *store.VerifyRun
	spread := time.Duration(0)
	switch {
	case p.RunID != "":
		if run, err = h.Store.GetVerifyRun(ctx, p.RunID); err != nil {
			return fmt.Errorf("verify run %s: %v: %w", p.RunID, err, asynq.SkipRetry)
		}
		spread = time.Duration(run.SpreadS) * time.Second
	case p.HostID != "" && p.Slot != "":
		slotAt, perr := time.Parse("200601021504", p.Slot)
		if perr != nil || p.PeriodS <= 0 {
			return fmt.Errorf("bad verify slot %q: %w", p.Slot, asynq.SkipRetry)
		}
		period := time.Duration(p.PeriodS) * time.Second
		// Spread over SpreadFraction of what is left of the slot (the task may start late:
		// a busy queue, a worker that came up mid-slot), so the last check is due well
		// before the next slot.
		left := min(period, slotAt.Add(period).Sub(h.now()))
		spread = max(time.Duration(float64(left)*SpreadFraction), 0)
		if run, err = h.Store.StartVerifyRun(ctx, p.HostID, p.Slot, slotAt.Add(period), spread); err != nil {
			return err
		}
		if run == nil {
			// The slot ran or runs elsewhere, or was skipped. A run of this slot that was
			// started but never planned (its worker died) is planned now.
			if run, err = h.Store.VerifyRunBySlot(ctx, p.HostID, p.Slot); err != nil || run.Status != store.VerifyRunning {
				return nil
			}
		}
	default:
		return fmt.Errorf("verify-run without run or slot: %w", asynq.SkipRetry)
	}
	if run.Status != store.VerifyRunning {
		return nil
	}
	existing, err := h.Store.RunChecks(ctx, run.ID)
	if err != nil {
		return err
	}
	var checks []*store.AccountCheck
	if len(existing) > 0 {
		for i := range existing {
			if existing[i].State == store.CheckPending {
				checks = append(checks, &existing[i])
			}
		}
	} else {
		checks, err = h.Verifier.PlanVerifyRun(ctx, run, spread)
		if err != nil {
			if ctx.Err() == nil {
				_ = h.Store.FailVerifyRun(ctx, run, "planning failed: "+err.Error())
			}
			return err
		}
	}
	n := h.Queue.enqueueChecks(ctx, checks)
	h.log().Info("re-verification scheduled", "host_id", run.HostID, "run_id", run.ID, "accounts", len(checks), "enqueued", n, "spread", spread.String())
	return nil
}

// handleCheck runs one account check and sends the notifications it raised on their way.
func (h *AccountHandlers) handleCheck(ctx context.Context, t *asynq.Task) error {
	p, err := payloadOf(t)
	if err != nil || p.CheckID == "" {
		return fmt.Errorf("bad verify-account payload: %w", asynq.SkipRetry)
	}
	out, err := h.Verifier.VerifyAccount(waiting(ctx), p.CheckID)
	if err != nil {
		return err // a full cap's *limit.Busy parks the check (IsFailure, RetryDelay)
	}
	h.deliverSoon(ctx, out.Queued)
	return nil
}

// waiting names the running task to the engine, so that a check or an undo that meets a
// full cap is parked until a slot frees instead of waiting in its worker slot.
func waiting(ctx context.Context) context.Context {
	if id, ok := asynq.GetTaskID(ctx); ok {
		return pipeline.WithWaiter(ctx, id)
	}
	return ctx
}

func (h *AccountHandlers) deliverSoon(ctx context.Context, rows []store.OutboxRow) {
	for i := range rows {
		if err := h.Queue.EnqueueDelivery(ctx, &rows[i]); err != nil && !errors.Is(err, ErrExists) {
			h.log().Warn("enqueue delivery failed; the upkeep will retry", "outbox_id", rows[i].ID, "error", err)
		}
	}
}

func (h *AccountHandlers) handleUndo(ctx context.Context, t *asynq.Task) error {
	p, err := payloadOf(t)
	if err != nil || p.CheckID == "" {
		return fmt.Errorf("bad account-undo payload: %w", asynq.SkipRetry)
	}
	err = h.Verifier.UndoCheck(waiting(ctx), p.CheckID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("undo %s: %v: %w", p.CheckID, err, asynq.SkipRetry)
	}
	return err
}
