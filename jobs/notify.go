package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cn-relay-manager/cn-relay-manager/internal/notify"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// deliveryLease is how long one worker holds an outbox row for one attempt: longer than
// an attempt (notify.DefaultTimeout) so two workers never send a row at once, short enough
// that a row whose worker died goes out again soon.
const deliveryLease = 2 * time.Minute

// batchLookback is how far back the upkeep looks for finished batches: a batch that
// finished while no worker ran is still announced when one comes back within it.
const batchLookback = 24 * time.Hour

func (h *AccountHandlers) handleNotify(ctx context.Context, t *asynq.Task) error {
	p, err := payloadOf(t)
	if err != nil || p.OutboxID == "" {
		return fmt.Errorf("bad notify payload: %w", asynq.SkipRetry)
	}
	return h.Deliver(ctx, p.OutboxID)
}

// Deliver makes one attempt of an outbox row: it claims the row (one worker at a time,
// and only when due), formats the event for the webhook's platform with a fresh
// signature, sends it, and stores the outcome: delivered, failed for good, or pending
// with the next attempt scheduled by the retry policy. A row that is not due or is
// claimed elsewhere is left alone.
func (h *AccountHandlers) Deliver(ctx context.Context, outboxID string) error {
	row, ok, err := h.Store.ClaimOutbox(ctx, outboxID, deliveryLease)
	if err != nil || !ok {
		return err
	}
	fail := func(why string) error { return h.Store.SettleOutbox(ctx, row, store.OutboxFailed, time.Time{}, why) }
	w, err := h.Store.GetWebhook(ctx, row.WebhookID)
	if errors.Is(err, store.ErrNotFound) {
		return fail("the webhook was deleted")
	}
	if err != nil {
		return err
	}
	target, err := h.target(w)
	if err != nil {
		return fail(err.Error())
	}
	var ev notify.Event
	if err := json.Unmarshal([]byte(row.Payload), &ev); err != nil {
		return fail("the stored event cannot be read: " + err.Error())
	}
	req, err := notify.Format(ev, target, h.now())
	if err != nil {
		return fail(err.Error())
	}
	sender := h.Sender
	if sender == nil {
		sender = &notify.Sender{}
	}
	err = sender.Send(ctx, req)
	if err == nil {
		return h.Store.SettleOutbox(ctx, row, store.OutboxDelivered, time.Time{}, "")
	}
	if ctx.Err() != nil {
		return ctx.Err() // shutting down: the lease runs out and the upkeep sends it again
	}
	wait, again := h.Policy.Next(row.Attempts, err)
	if !again {
		return fail(fmt.Sprintf("attempt %d: %v", row.Attempts, err))
	}
	if err := h.Store.SettleOutbox(ctx, row, store.OutboxPending, h.now().Add(wait), fmt.Sprintf("attempt %d: %v", row.Attempts, err)); err != nil {
		return err
	}
	if err := h.Queue.EnqueueDelivery(ctx, row); err != nil && !errors.Is(err, ErrExists) {
		h.log().Warn("enqueue delivery retry failed; the upkeep will retry", "outbox_id", row.ID, "error", err)
	}
	return nil
}

// target opens a webhook's sealed URL and secret.
func (h *AccountHandlers) target(w *store.Webhook) (notify.Target, error) {
	u, err := h.Box.Open(w.URLEnc)
	if err != nil {
		return notify.Target{}, errors.New("the webhook URL cannot be opened (master key changed?)")
	}
	sec := ""
	if w.SecretEnc != "" {
		if sec, err = h.Box.Open(w.SecretEnc); err != nil {
			return notify.Target{}, errors.New("the webhook secret cannot be opened (master key changed?)")
		}
	}
	return notify.Target{Kind: notify.Kind(w.Format), URL: u, Secret: sec, Lang: w.Lang}, nil
}

// handleUpkeep is the periodic housekeeping of the work after the import; every step is
// safe to repeat and to run in several workers at once.
func (h *AccountHandlers) handleUpkeep(ctx context.Context, _ *asynq.Task) error {
	return h.Upkeep(ctx)
}

// Upkeep queues batch_finished events for batches that finished recently, ends
// re-verification runs past their deadline, re-enqueues checks whose task was lost and
// schedules due deliveries.
func (h *AccountHandlers) Upkeep(ctx context.Context) error {
	var errs []error
	if err := h.batchEvents(ctx); err != nil {
		errs = append(errs, err)
	}
	expired, err := h.Store.ExpiredVerifyRuns(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	for i := range expired {
		if err := h.Store.EndVerifyRun(ctx, &expired[i]); err != nil {
			errs = append(errs, err)
		}
	}
	lost, err := h.Store.PendingChecks(ctx, h.now().Add(-time.Minute), 2000)
	if err != nil {
		errs = append(errs, err)
	}
	checks := make([]*store.AccountCheck, len(lost))
	for i := range lost {
		checks[i] = &lost[i]
	}
	h.Queue.enqueueChecks(ctx, checks)
	due, err := h.Store.DueOutbox(ctx, h.now(), 1000)
	if err != nil {
		errs = append(errs, err)
	}
	h.deliverSoon(ctx, due)
	return errors.Join(errs...)
}

// batchEvents queues a batch_finished event per batch that finished within batchLookback
// on a host with webhooks. The event ID names the batch and the moment it finished (a
// batch retried and finished again is announced again); a webhook created after the
// batch finished does not get it.
func (h *AccountHandlers) batchEvents(ctx context.Context) error {
	hosts, err := h.Store.ListHosts(ctx)
	if err != nil {
		return err
	}
	for _, host := range hosts {
		hooks, err := h.Store.ListWebhooks(ctx, host.ID)
		if err != nil || len(hooks) == 0 {
			if err != nil {
				return err
			}
			continue
		}
		since := h.now().Add(-batchLookback)
		batches, err := h.Store.FinishedBatches(ctx, host.ID, since)
		if err != nil {
			return err
		}
		for i := range batches {
			b := &batches[i]
			ev, err := h.batchEvent(ctx, host.Name, b)
			if err != nil {
				return err
			}
			payload, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			rows, err := h.Store.AddEvent(ctx, host.ID, store.Event{ID: ev.ID, Type: string(ev.Type), At: *b.FinishedAt, Payload: payload})
			if err != nil {
				return err
			}
			h.deliverSoon(ctx, rows)
		}
	}
	return nil
}

func (h *AccountHandlers) batchEvent(ctx context.Context, hostName string, b *store.Batch) (notify.Event, error) {
	counts, err := h.Store.StatusCounts(ctx, b.ID)
	if err != nil {
		return notify.Event{}, err
	}
	classes, err := h.Store.BatchFailureClasses(ctx, b.ID)
	if err != nil {
		return notify.Event{}, err
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	return notify.Event{
		ID:   "batch_finished:" + b.ID + ":" + strconv.FormatInt(b.FinishedAt.UnixMilli(), 10),
		Type: notify.BatchFinished, At: b.FinishedAt.UTC(), Host: hostName,
		Batch: &notify.Batch{ID: b.ID, Name: b.Name, Status: b.Status, Total: total,
			Ready: counts[store.ItemReady] + counts[store.ItemReadyWithWarnings], Failed: counts[store.ItemFailed],
			Cancelled: counts[store.ItemCancelled], Classes: classes},
	}, nil
}

// NewAccountsScheduler returns the asynq scheduler of the work after the import: the
// upkeep every UpkeepEvery, and the re-verification tick on verifySpec (a five-field cron
// spec or "@every 1h"; "" = no scheduled re-verification). Ticks are Unique for less than
// their period, so several worker processes ticking together enqueue them once.
func NewAccountsScheduler(conn asynq.RedisConnOpt, verifySpec string, logger asynq.Logger) (*asynq.Scheduler, error) {
	s := asynq.NewScheduler(conn, &asynq.SchedulerOpts{HeartbeatInterval: time.Second, Location: time.UTC, Logger: logger, LogLevel: asynq.WarnLevel})
	if _, err := s.Register("@every "+UpkeepEvery.String(), asynq.NewTask(TypeUpkeep, nil), asynq.Queue(QueueName),
		asynq.Unique(UpkeepEvery-5*time.Second), asynq.MaxRetry(0)); err != nil {
		return nil, fmt.Errorf("accounts upkeep: %w", err)
	}
	if verifySpec != "" {
		if _, err := Period(verifySpec, time.Now().UTC().Truncate(time.Minute)); err != nil {
			return nil, err
		}
		if _, err := s.Register(verifySpec, asynq.NewTask(TypeVerifyTick, nil), asynq.Queue(QueueName),
			asynq.Unique(50*time.Second), asynq.MaxRetry(1)); err != nil {
			return nil, fmt.Errorf("CRM_VERIFY_CRON: %w", err)
		}
	}
	return s, nil
}
