package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/evidence"
	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
	"github.com/cn-relay-manager/cn-relay-manager/internal/health"
	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/notify"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
	"github.com/cn-relay-manager/cn-relay-manager/internal/upstream"
)

// Verifier is the part of the upstream prober the re-verification needs: the cheap check
// (models and a 1-token chat) and the balance reading. *upstream.Prober satisfies it.
type Verifier interface {
	Check(ctx context.Context, baseURL, apiKey, providerID, model string) error
	Balance(ctx context.Context, baseURL, apiKey, providerID string) (*upstream.Balance, error)
}

// verifiableItem reports whether the account of an item in this status is re-verified:
// the imports that ended ready. A failed item is the import's concern (retry the batch);
// a running one is owned by its step.
func verifiableItem(status string) bool {
	return status == store.ItemReady || status == store.ItemReadyWithWarnings
}

// PlanVerifyRun plans a re-verification of the run's host: it reads the host's view of
// the accounts with the paged listing reconcile uses (a few list calls, not one GET per
// account), streams the ledger's accounts, and stores one pending check per account of a
// ready item, their due times spread evenly over spread from the run's start so that a
// host with thousands of accounts is not checked at once. It returns the checks to
// schedule.
func (e *Engine) PlanVerifyRun(ctx context.Context, run *store.VerifyRun, spread time.Duration) ([]*store.AccountCheck, error) {
	h, client, err := e.clientFor(ctx, run.HostID)
	if err != nil {
		return nil, err
	}
	release, err := e.waitHostSlot(ctx, h.ID, h.Name)
	if err != nil {
		return nil, err
	}
	listed, err := client.ListAccounts(ctx, ProvenancePrefix)
	release()
	if err != nil {
		return nil, fmt.Errorf("list accounts of host %s: %w", h.Name, err)
	}
	readAt := e.now()
	byID := make(map[int64]*host.Account, len(listed))
	for i := range listed {
		byID[listed[i].ID] = &listed[i]
	}
	var checks []*store.AccountCheck
	err = e.Store.EachResource(ctx, store.ResourceFilter{HostID: h.ID, Type: store.TypeAccount, Limit: ledgerPage}, func(page []store.Resource) error {
		var ids []string
		for i := range page {
			if page[i].ItemID != "" {
				ids = append(ids, page[i].ItemID)
			}
		}
		items, err := e.Store.ItemsByID(ctx, ids)
		if err != nil {
			return err
		}
		for i := range page {
			r := &page[i]
			it := items[r.ItemID]
			id, ok := hostID(r)
			if it == nil || !ok || !comparableState(r.State) || !verifiableItem(it.Status) {
				continue
			}
			c := &store.AccountCheck{BatchID: it.BatchID, ItemID: it.ID, ResourceID: r.ID, HostAccountID: idString(id),
				AccountName: r.Name, Provider: it.Provider}
			key, _ := e.Box.Open(it.APIKeyEnc)
			c.HostView = viewOf(byID[id], readAt, key)
			checks = append(checks, c)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	start := run.StartedAt
	for i, c := range checks {
		c.DueAt = start
		if len(checks) > 1 && spread > 0 {
			c.DueAt = start.Add(time.Duration(int64(spread) * int64(i) / int64(len(checks))))
		}
	}
	if err := e.Store.AddChecks(ctx, run, checks); err != nil {
		return nil, err
	}
	return checks, nil
}

// viewOf is what the host shows of an account, with the upstream key redacted from the
// error texts the host quotes.
func viewOf(a *host.Account, at time.Time, key string) store.HostAccountView {
	v := store.HostAccountView{ReadAt: at}
	if a == nil {
		return v
	}
	v.Present, v.Status, v.Schedulable, v.Platform = true, a.Status, a.Schedulable, a.Platform
	v.ErrorMessage = evidence.Redact(a.ErrorMessage, key)
	v.RateLimitResetAt, v.TempUnschedulableUntil = a.RateLimitResetAt, a.TempUnschedulableUntil
	v.TempUnschedulableReason = evidence.Redact(a.TempUnschedulableReason, key)
	if a.Platform != "" {
		for k, x := range a.Extra {
			if strings.HasPrefix(k, a.Platform+"_balance") {
				if v.Extra == nil {
					v.Extra = map[string]any{}
				}
				v.Extra[k] = x
			}
		}
	}
	return v
}

// accountOf turns a stored view back into the host's account for internal/health.
func accountOf(v store.HostAccountView) *host.Account {
	if !v.Present {
		return nil
	}
	return &host.Account{Status: v.Status, ErrorMessage: v.ErrorMessage, Schedulable: v.Schedulable, Platform: v.Platform,
		RateLimitResetAt: v.RateLimitResetAt, TempUnschedulableUntil: v.TempUnschedulableUntil,
		TempUnschedulableReason: v.TempUnschedulableReason, Extra: v.Extra}
}

// VerifyOutcome is what one account check did.
type VerifyOutcome struct {
	Check *store.AccountCheck
	// Queued are the notifications the check raised (outbox rows to deliver).
	Queued []store.OutboxRow
	// Ran is false when the check was not pending any more (a repeated task) or was
	// skipped.
	Ran bool
}

// ledger details keys of an account row (the ledger's record of health actions).
const (
	detailHealth   = "health"
	healthParkedBy = "parked_by" // the check that set the account unschedulable
	healthHoldBy   = "hold_by"   // the check whose action an operator undid
	healthActions  = "actions"   // the last actions, newest last
	keptActions    = 20
)

// VerifyAccount runs one planned check: the product's direct upstream check and balance
// reading (under the per-upstream cap), the host's view (from the run's listing; a single
// GET confirms it before any action, or when the listing lacked the account), the verdict
// of internal/health, and, when the host opted in, safe auto-recovery or parking with its
// evidence, recorded in the check and the ledger. It stores the verdict, the account's
// latest health and the notifications it raises in one transaction.
func (e *Engine) VerifyAccount(ctx context.Context, checkID string) (*VerifyOutcome, error) {
	c, err := e.Store.GetAccountCheck(ctx, checkID)
	if errors.Is(err, store.ErrNotFound) {
		return &VerifyOutcome{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := &VerifyOutcome{Check: c}
	if c.State != store.CheckPending {
		return out, nil
	}
	run, err := e.Store.GetVerifyRun(ctx, c.RunID)
	if err != nil {
		return nil, err
	}
	if run.Status != store.VerifyRunning {
		return out, nil // the run ended; its pending checks were skipped with it
	}
	it, err := e.Store.GetItem(ctx, c.ItemID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	row, rerr := e.Store.GetResource(ctx, c.ResourceID)
	if rerr != nil && !errors.Is(rerr, store.ErrNotFound) {
		return nil, rerr
	}
	switch {
	case it == nil || row == nil:
		return e.skipCheck(ctx, out, "the item or its ledger row is gone")
	case !verifiableItem(it.Status):
		return e.skipCheck(ctx, out, fmt.Sprintf("the item is %s now (an operation owns it)", it.Status))
	case !comparableState(row.State):
		return e.skipCheck(ctx, out, fmt.Sprintf("the ledger row is %s (an operation owns it)", row.State))
	}
	settings, err := e.Store.GetHostSettings(ctx, c.HostID)
	if err != nil {
		return nil, err
	}
	prev, err := e.Store.GetAccountHealth(ctx, c.ItemID)
	if errors.Is(err, store.ErrNotFound) {
		prev, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	sc, err := e.load(ctx, it)
	if err != nil {
		return nil, err
	}
	rec := &evidence.Recorder{}
	vctx := evidence.WithRecorder(ctx, rec)
	a := &accountCheck{e: e, sc: sc, c: c, row: row, prev: prev, settings: settings}
	if err := a.direct(vctx); err != nil {
		return nil, err
	}
	if err := a.decide(vctx); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("check %s interrupted: %w", c.ID, ctx.Err())
	}
	if c.Status == store.HealthHealthy && a.hold {
		// Seen healthy: the operator's hold ends, automatic actions may act again.
		if err := e.releaseHold(ctx, row); err != nil {
			return nil, err
		}
		a.hold = false
	}
	c.Evidence = toExchanges(rec.Exchanges())
	c.Reason = evidence.Redact(c.Reason, sc.apiKey)
	queued, won, err := e.Store.FinishCheck(ctx, c, a.health(), a.events()...)
	if err != nil {
		return nil, err
	}
	out.Queued, out.Ran = queued, won
	return out, nil
}

func (e *Engine) skipCheck(ctx context.Context, out *VerifyOutcome, why string) (*VerifyOutcome, error) {
	out.Check.State, out.Check.Reason = store.CheckSkipped, why
	if _, _, err := e.Store.FinishCheck(ctx, out.Check, nil); err != nil {
		return nil, err
	}
	return out, nil
}

// accountCheck is one account's check in progress.
type accountCheck struct {
	e        *Engine
	sc       *stepContext
	c        *store.AccountCheck
	row      *store.Resource
	prev     *store.AccountHealth
	settings *store.HostSettings

	directErr error
	directRan bool
	balance   *upstream.Balance
	verdict   health.Verdict
	parked    bool // the ledger says auto-recovery parked the account (after this check's action)
	hold      bool
}

// direct runs the product's own check of the upstream and reads the balance, holding one
// slot of the upstream's cap.
func (a *accountCheck) direct(ctx context.Context) error {
	it, e := a.sc.item, a.e
	v, ok := e.Prober.(Verifier)
	if !ok {
		return errors.New("the prober cannot re-verify keys (no Check/Balance)")
	}
	upHost := it.NormalizedURL
	if n, err := e.Catalog.NormalizeURL(it.NormalizedURL); err == nil {
		upHost = n.Host
	}
	release, err := e.waitUpstreamSlot(ctx, upHost)
	if err != nil {
		return err
	}
	defer release()
	a.directRan = true
	a.directErr = v.Check(ctx, it.NormalizedURL, a.sc.apiKey, it.Provider, it.SmokeModel)
	if upstream.BalanceSupported(it.Provider) {
		b, berr := v.Balance(ctx, it.NormalizedURL, a.sc.apiKey, it.Provider)
		if berr == nil {
			a.balance = b
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

func (a *accountCheck) input(view store.HostAccountView) health.Input {
	it := a.sc.item
	in := health.Input{ProviderID: it.Provider, Host: accountOf(view), LowBalance: a.settings.LowBalance,
		ParkedByUs: a.parked, Now: a.e.now()}
	if a.directRan {
		in.Direct = &health.Direct{Err: a.directErr, At: a.e.now()}
	}
	in.Balance = a.balance
	if in.Balance == nil {
		in.Balance = health.HostBalance(in.Host)
	}
	in.Confirmations = 1
	if a.directErr != nil && a.prev != nil && a.prev.FailStreak > 0 && a.prev.Class == string(failure.ClassOf(a.directErr)) {
		in.Confirmations = a.prev.FailStreak + 1
	}
	return in
}

// decide assesses the account and, when the host opted in and nothing holds it, makes the
// safe host calls. The host's view is confirmed by a GET before any action and when the
// run's listing lacked the account.
func (a *accountCheck) decide(ctx context.Context) error {
	c := a.c
	a.parked, a.hold = ledgerHealth(a.row)
	if a.prev != nil && a.prev.Hold {
		a.hold = true
	}
	in := a.input(c.HostView)
	a.verdict = health.Assess(in, health.Policy{})
	wantRecover := a.verdict.MayRecover() && a.settings.AutoRecover
	wantPark := a.verdict.Park && a.settings.ParkFailing
	if !c.HostView.Present || ((wantRecover || wantPark) && !a.hold) {
		view, err := a.fresh(ctx)
		if err != nil {
			return err
		}
		c.HostView = view
		in = a.input(view)
		a.verdict = health.Assess(in, health.Policy{})
		wantRecover = a.verdict.MayRecover() && a.settings.AutoRecover
		wantPark = a.verdict.Park && a.settings.ParkFailing
	}
	v := a.verdict
	c.Status, c.Class, c.Reason = string(v.Status), string(v.Class), v.Reason
	c.Direct = "not_run"
	if a.directRan {
		c.Direct = "ok"
		if a.directErr != nil {
			c.Direct = "failed"
		}
	}
	a.recordBalance(in.Balance, v.BalanceLow)
	switch {
	case (wantRecover || wantPark) && a.hold:
		c.Reason = joinReason(c.Reason, "on hold after an operator undid an automatic action: left alone until it is healthy again")
	case wantRecover:
		return a.recover(ctx, v.Recover)
	case wantPark:
		return a.park(ctx)
	case v.MayRecover():
		c.Reason = joinReason(c.Reason, "auto-recovery is off for this host")
	}
	return nil
}

// fresh reads the account from the host (one GET) under the host's cap.
func (a *accountCheck) fresh(ctx context.Context) (store.HostAccountView, error) {
	id, err := parseID(a.c.HostAccountID)
	if err != nil {
		return store.HostAccountView{}, fmt.Errorf("account check %s: bad host id %q", a.c.ID, a.c.HostAccountID)
	}
	release, err := a.e.waitHostSlot(ctx, a.c.HostID, a.sc.host.Name)
	if err != nil {
		return store.HostAccountView{}, err
	}
	defer release()
	acc, err := a.sc.client.GetAccount(ctx, id)
	if host.IsNotFound(err) {
		return store.HostAccountView{ReadAt: a.e.now()}, nil
	}
	if err != nil {
		return store.HostAccountView{}, fmt.Errorf("read account %d: %w", id, err)
	}
	return viewOf(acc, a.e.now(), a.sc.apiKey), nil
}

func (a *accountCheck) recordBalance(b *upstream.Balance, low bool) {
	c := a.c
	c.BalanceLow = low
	if b == nil {
		return
	}
	amount := b.Amount
	c.BalanceAmount, c.BalanceCurrency, c.BalanceSource = &amount, b.Currency, b.Endpoint
	if !b.ReadAt.IsZero() {
		at := b.ReadAt.UTC()
		c.BalanceAt = &at
	}
}

func joinReason(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// health is the account's latest verdict after this check.
func (a *accountCheck) health() *store.AccountHealth {
	c, it, now := a.c, a.sc.item, a.e.now()
	h := &store.AccountHealth{ItemID: c.ItemID, HostID: c.HostID, BatchID: c.BatchID, ResourceID: c.ResourceID,
		HostAccountID: c.HostAccountID, AccountName: c.AccountName, Provider: c.Provider, KeyMasked: it.KeyMasked,
		Status: c.Status, Class: c.Class, Reason: c.Reason, Since: now, Parked: a.parked, Hold: a.hold,
		BalanceAmount: c.BalanceAmount, BalanceCurrency: c.BalanceCurrency, BalanceAt: c.BalanceAt, BalanceLow: c.BalanceLow,
		LastCheckID: c.ID, LastAction: c.Action, CheckedAt: now}
	if c.Status == store.HealthHealthy {
		h.Hold = false // seen healthy: automatic actions may act again
	}
	recent := ""
	if p := a.prev; p != nil {
		if p.Status == c.Status {
			h.Since = p.Since
		}
		if h.LastAction == "" {
			h.LastAction = p.LastAction
		}
		if h.BalanceAmount == nil && p.BalanceAmount != nil {
			// A check that could not read the balance keeps the last reading (with its time).
			h.BalanceAmount, h.BalanceCurrency, h.BalanceAt = p.BalanceAmount, p.BalanceCurrency, p.BalanceAt
		}
		recent = p.Recent
	}
	if a.directErr != nil {
		h.FailStreak = 1
		if p := a.prev; p != nil && p.FailStreak > 0 && p.Class == string(failure.ClassOf(a.directErr)) {
			h.FailStreak = p.FailStreak + 1
		}
	}
	if c.Status != "" {
		recent += c.Status[:1]
	}
	if len(recent) > store.RecentLen {
		recent = recent[len(recent)-store.RecentLen:]
	}
	h.Recent = recent
	return h
}

// events are the notifications this check raises: an account that starts failing (or is
// parked now), a balance that falls under the threshold, a recovery. Each event's ID
// names the check, so it is queued once whatever happens to the task.
func (a *accountCheck) events() []store.Event {
	c, it, sc, now := a.c, a.sc.item, a.sc, a.e.now()
	acct := func() *notify.Account {
		id, _ := parseID(c.HostAccountID)
		return &notify.Account{HostAccountID: id, Name: c.AccountName, BatchID: c.BatchID, ItemID: c.ItemID,
			Provider: c.Provider, KeyMasked: it.KeyMasked, Health: c.Status, Class: c.Class, Reason: c.Reason,
			Parked: c.Action == store.ActionParked || c.Action == store.ActionRecoverReverted}
	}
	var out []store.Event
	add := func(ev notify.Event) {
		ev.At, ev.Host = now, sc.host.Name
		b, err := json.Marshal(ev)
		if err != nil {
			return
		}
		out = append(out, store.Event{ID: ev.ID, Type: string(ev.Type), Payload: b})
	}
	p := a.prev
	if c.Status == store.HealthFailing && (p == nil || p.Status != store.HealthFailing || p.Class != c.Class ||
		c.Action == store.ActionParked || c.Action == store.ActionRecoverReverted) {
		acc := acct()
		since := now
		if p != nil && p.Status == store.HealthFailing {
			since = p.Since
		}
		acc.Since = &since
		add(notify.Event{ID: "account_failing:" + c.ID, Type: notify.AccountFailing, Account: acc})
	}
	if c.BalanceLow && c.BalanceAmount != nil && (p == nil || !p.BalanceLow) {
		at := now
		if c.BalanceAt != nil {
			at = *c.BalanceAt
		}
		add(notify.Event{ID: "balance_low:" + c.ID, Type: notify.BalanceLow, Account: acct(),
			Balance: &notify.Balance{Amount: *c.BalanceAmount, Currency: c.BalanceCurrency, Threshold: a.settings.LowBalance, ReadAt: at}})
	}
	if c.Action == store.ActionRecovered {
		proven := c.ActionDetail.Proven != nil && *c.ActionDetail.Proven
		add(notify.Event{ID: "recovery_done:" + c.ID, Type: notify.RecoveryDone, Account: acct(),
			Recovery: &notify.Recovery{Actions: c.ActionDetail.Calls, Proven: proven, Detail: c.ActionDetail.Detail}})
	}
	return out
}

// ledgerHealth reads the health marks the ledger keeps on an account row.
func ledgerHealth(r *store.Resource) (parked, hold bool) {
	m, _ := r.Details[detailHealth].(map[string]any)
	if m == nil {
		return false, false
	}
	p, _ := m[healthParkedBy].(string)
	h, _ := m[healthHoldBy].(string)
	return p != "", h != ""
}
