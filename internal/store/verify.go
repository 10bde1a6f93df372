package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Re-verification run statuses.
const (
	VerifyRunning = "running" // checks are scheduled across the period; accounts_checked moves
	// VerifyCompleted: every planned account was checked (or skipped with a reason).
	VerifyCompleted = "completed"
	// VerifyIncomplete: the run's deadline (the next slot) came before every check ran; the
	// ones left were skipped and the next run checks them.
	VerifyIncomplete = "incomplete"
	VerifySkipped    = "skipped" // a periodic slot came while the host's previous run was still running
	VerifyFailed     = "failed"  // planning failed (summary says why)
)

// Account check states.
const (
	CheckPending = "pending" // scheduled, not run yet
	CheckDone    = "done"    // verdict recorded
	CheckSkipped = "skipped" // not run: the item or its ledger row is owned by an operation, or the run ended
)

// Account health statuses as stored (the values of internal/health's Status).
const (
	HealthHealthy  = "healthy"
	HealthDegraded = "degraded"
	HealthFailing  = "failing"
)

// Actions a check records (AccountCheck.Action).
const (
	ActionRecovered = "recovered" // auto-recovery re-enabled the account (see ActionDetail.Proven)
	// ActionRecoverReverted: re-enabled, but the proof through the gateway failed, so it
	// was set unschedulable again.
	ActionRecoverReverted = "recover_reverted"
	ActionParked          = "parked"        // set unschedulable: the key itself fails
	ActionActionFailed    = "action_failed" // a host call of the recovery or parking failed
)

// Undo states of a check's action.
const (
	UndoQueued = "queued"
	UndoDone   = "done"
	UndoFailed = "failed"
)

// VerifyRun is one re-verification of the accounts of a host.
type VerifyRun struct {
	bun.BaseModel `bun:"table:verify_runs"`

	ID     string `bun:"id,pk" json:"id"`
	HostID string `bun:"host_id" json:"host_id"`
	// Slot is the periodic slot (UTC minute, "200601021504"); "" for a run asked for.
	Slot            string `bun:"slot" json:"slot,omitempty"`
	Status          string `bun:"status" json:"status"`
	AccountsTotal   int    `bun:"accounts_total" json:"accounts_total"`
	AccountsChecked int    `bun:"accounts_checked" json:"accounts_checked"`
	Healthy         int    `bun:"healthy" json:"healthy"`
	Degraded        int    `bun:"degraded" json:"degraded"`
	Failing         int    `bun:"failing" json:"failing"`
	// Actions counts the recoveries and parkings the run made.
	Actions int `bun:"actions" json:"actions"`
	// SpreadS is the time over which the run's checks are spread (seconds from the start).
	SpreadS int    `bun:"spread_s" json:"spread_s"`
	Summary string `bun:"summary" json:"summary"`
	// Deadline is when the run must be over (the next slot); checks still pending then
	// are skipped and the run ends incomplete.
	Deadline   *time.Time `bun:"deadline" json:"deadline,omitempty"`
	StartedAt  time.Time  `bun:"started_at" json:"started_at"`
	FinishedAt *time.Time `bun:"finished_at" json:"finished_at,omitempty"`
}

// HostAccountView is the host's own view of an account at one moment, as the check read
// it: from the run's paged listing, or from a GET right before an action.
type HostAccountView struct {
	Present                 bool   `json:"present"`
	Status                  string `json:"status,omitempty"`
	ErrorMessage            string `json:"error_message,omitempty"`
	Schedulable             bool   `json:"schedulable"`
	RateLimitResetAt        string `json:"rate_limit_reset_at,omitempty"`
	TempUnschedulableUntil  string `json:"temp_unschedulable_until,omitempty"`
	TempUnschedulableReason string `json:"temp_unschedulable_reason,omitempty"`
	Platform                string `json:"platform,omitempty"`
	// Extra holds the host's own balance fields of the account (<platform>_balance…).
	Extra  map[string]any `json:"extra,omitempty"`
	ReadAt time.Time      `json:"read_at"`
}

// CheckAction is what a check did on the host, and how to reverse it.
type CheckAction struct {
	// Calls are the host calls made, in order (clear_error, set_schedulable, …).
	Calls []string `json:"calls,omitempty"`
	// Proven: after a recovery, an end-user call through the gateway reached this account
	// and passed (nil when no proof was attempted).
	Proven *bool  `json:"proven,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Undo is the host call that reverses the action: "set_schedulable:false" after a
	// recovery, "set_schedulable:true" after parking.
	Undo  string `json:"undo,omitempty"`
	Error string `json:"error,omitempty"`
}

// AccountCheck is one re-verification of one imported account: a history row.
type AccountCheck struct {
	bun.BaseModel `bun:"table:account_checks"`

	ID            string `bun:"id,pk" json:"id"`
	RunID         string `bun:"run_id" json:"run_id"`
	HostID        string `bun:"host_id" json:"host_id"`
	BatchID       string `bun:"batch_id" json:"batch_id"`
	ItemID        string `bun:"item_id" json:"item_id"`
	ResourceID    string `bun:"resource_id" json:"resource_id,omitempty"`
	HostAccountID string `bun:"host_account_id" json:"host_account_id"`
	AccountName   string `bun:"account_name" json:"account_name"`
	Provider      string `bun:"provider" json:"provider"`
	State         string `bun:"state" json:"state"`
	// DueAt is when the check is scheduled to run (spread over the run's period).
	DueAt  time.Time `bun:"due_at" json:"due_at"`
	Status string    `bun:"status" json:"status,omitempty"`
	Class  string    `bun:"class" json:"class,omitempty"`
	Reason string    `bun:"reason" json:"reason,omitempty"`
	// Direct is the product's own upstream check: ok, failed or not_run.
	Direct   string          `bun:"direct" json:"direct,omitempty"`
	HostView HostAccountView `bun:"host_view,type:text" json:"host_view"`
	// The balance reading: the provider's endpoint, or the host's own reading
	// (BalanceSource "host:…"); BalanceAmount is nil when none was read.
	BalanceAmount   *float64    `bun:"balance_amount" json:"balance_amount,omitempty"`
	BalanceCurrency string      `bun:"balance_currency" json:"balance_currency,omitempty"`
	BalanceAt       *time.Time  `bun:"balance_at" json:"balance_at,omitempty"`
	BalanceSource   string      `bun:"balance_source" json:"balance_source,omitempty"`
	BalanceLow      bool        `bun:"balance_low" json:"balance_low"`
	Action          string      `bun:"action" json:"action,omitempty"`
	ActionDetail    CheckAction `bun:"action_detail,type:text" json:"action_detail"`
	UndoState       string      `bun:"undo_state" json:"undo_state,omitempty"`
	UndoDetail      string      `bun:"undo_detail" json:"undo_detail,omitempty"`
	Evidence        []Exchange  `bun:"evidence,type:text" json:"evidence"`
	CheckedAt       *time.Time  `bun:"checked_at" json:"checked_at,omitempty"`
	CreatedAt       time.Time   `bun:"created_at" json:"created_at"`
}

// AccountHealth is the latest verdict on one imported account (one row per item), kept
// beside the history so that lists and filters need no scan of it.
type AccountHealth struct {
	bun.BaseModel `bun:"table:account_health"`

	ItemID        string `bun:"item_id,pk" json:"item_id"`
	HostID        string `bun:"host_id" json:"host_id"`
	BatchID       string `bun:"batch_id" json:"batch_id"`
	ResourceID    string `bun:"resource_id" json:"-"`
	HostAccountID string `bun:"host_account_id" json:"host_account_id"`
	AccountName   string `bun:"account_name" json:"account_name"`
	Provider      string `bun:"provider" json:"provider"`
	KeyMasked     string `bun:"key_masked" json:"key_masked"`
	Status        string `bun:"status" json:"status"`
	Class         string `bun:"class" json:"class,omitempty"`
	Reason        string `bun:"reason" json:"reason,omitempty"`
	// Since is when the account entered its current status.
	Since time.Time `bun:"since" json:"since"`
	// FailStreak counts consecutive checks whose direct check failed with Class.
	FailStreak int `bun:"fail_streak" json:"fail_streak"`
	// Parked: auto-recovery set the account unschedulable (the ledger says so too).
	Parked bool `bun:"parked" json:"parked"`
	// Hold: an operator undid an automatic action; automatic actions leave the account
	// alone until it is seen healthy again.
	Hold            bool       `bun:"hold" json:"hold"`
	BalanceAmount   *float64   `bun:"balance_amount" json:"balance_amount,omitempty"`
	BalanceCurrency string     `bun:"balance_currency" json:"balance_currency,omitempty"`
	BalanceAt       *time.Time `bun:"balance_at" json:"balance_at,omitempty"`
	BalanceLow      bool       `bun:"balance_low" json:"balance_low"`
	// Recent is the status of the latest checks, oldest first, one letter each
	// (h healthy, d degraded, f failing): the history sparkline.
	Recent      string    `bun:"recent" json:"recent"`
	LastCheckID string    `bun:"last_check_id" json:"last_check_id"`
	LastAction  string    `bun:"last_action" json:"last_action,omitempty"`
	CheckedAt   time.Time `bun:"checked_at" json:"checked_at"`
}

// RecentLen is how many statuses AccountHealth.Recent keeps.
const RecentLen = 30

// ErrRunActive is returned (wrapped) when a host already has a re-verification running.
var ErrRunActive = errors.New("a re-verification of this host is running")

// StartVerifyRun starts a re-verification of a host: for a periodic slot (slot != "") at
// most once per (host, slot) however many schedulers tick, and for a run asked for (slot
// "") at once. A host runs one re-verification at a time (a partial unique index): a
// slot that comes while the previous run is still running and before its deadline gets a
// run in status skipped naming it; asked for, it is ErrRunActive. A running run past its
// deadline is ended first (incomplete: its pending checks are skipped).
func (s *Store) StartVerifyRun(ctx context.Context, hostID, slot string, deadline time.Time, spread time.Duration) (*VerifyRun, error) {
	prev, err := s.RunningVerify(ctx, hostID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if prev != nil && prev.Deadline != nil && !now.Before(*prev.Deadline) {
		if err := s.EndVerifyRun(ctx, prev); err != nil {
			return nil, err
		}
		prev = nil
	}
	if prev == nil {
		run := &VerifyRun{ID: NewID(), HostID: hostID, Slot: slot, Status: VerifyRunning, StartedAt: now,
			SpreadS: int(spread / time.Second)}
		if !deadline.IsZero() {
			d := deadline.UTC()
			run.Deadline = &d
		}
		_, err := s.DB.NewInsert().Model(run).Exec(ctx)
		if err == nil {
			return run, nil
		}
		if !isUniqueViolation(err) {
			return nil, fmt.Errorf("insert verify run: %w", err)
		}
		if slot != "" {
			n, cerr := s.DB.NewSelect().Model((*VerifyRun)(nil)).Where("host_id = ?", hostID).Where("slot = ?", slot).Count(ctx)
			if cerr != nil || n > 0 {
				return nil, cerr // this slot already ran (or runs): nothing to do
			}
		}
		if prev, err = s.RunningVerify(ctx, hostID); err != nil {
			return nil, err
		}
	}
	if slot == "" {
		if prev != nil {
			return nil, fmt.Errorf("run %s (started %s, %d of %d accounts checked): %w", prev.ID,
				prev.StartedAt.UTC().Format(time.RFC3339), prev.AccountsChecked, prev.AccountsTotal, ErrRunActive)
		}
		return nil, ErrRunActive
	}
	skipped := &VerifyRun{ID: NewID(), HostID: hostID, Slot: slot, Status: VerifySkipped, StartedAt: now, FinishedAt: &now,
		Summary: "skipped: the previous re-verification of this host is still running"}
	if prev != nil {
		skipped.Summary = fmt.Sprintf("skipped: re-verification %s (started %s) is still running, %d of %d accounts checked",
			prev.ID, prev.StartedAt.UTC().Format(time.RFC3339), prev.AccountsChecked, prev.AccountsTotal)
	}
	if _, err := s.DB.NewInsert().Model(skipped).Exec(ctx); err != nil && !isUniqueViolation(err) {
		return nil, fmt.Errorf("insert skipped verify run: %w", err)
	}
	return nil, nil
}

// RunningVerify returns the host's running re-verification, or nil.
func (s *Store) RunningVerify(ctx context.Context, hostID string) (*VerifyRun, error) {
	r := new(VerifyRun)
	err := s.DB.NewSelect().Model(r).Where("host_id = ?", hostID).Where("status = ?", VerifyRunning).Limit(1).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("running verify run of host %s: %w", hostID, err)
	}
	return r, nil
}

// ExpiredVerifyRuns returns the running runs whose deadline has passed.
func (s *Store) ExpiredVerifyRuns(ctx context.Context) ([]VerifyRun, error) {
	var out []VerifyRun
	if err := s.DB.NewSelect().Model(&out).Where("status = ?", VerifyRunning).Where("deadline IS NOT NULL").
		Where("deadline <= ?", s.now()).Scan(ctx); err != nil {
		return nil, fmt.Errorf("expired verify runs: %w", err)
	}
	return out, nil
}

// EndVerifyRun ends a running run whose time is up: its pending checks are skipped and the
// run is incomplete (or completed, when nothing was pending after all).
func (s *Store) EndVerifyRun(ctx context.Context, run *VerifyRun) error {
	return s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		now := s.now()
		res, err := tx.NewUpdate().Model((*AccountCheck)(nil)).Set("state = ?", CheckSkipped).
			Set("reason = ?", "not checked before the run's deadline (the next run checks it)").Set("checked_at = ?", now).
			Where("run_id = ?", run.ID).Where("state = ?", CheckPending).Exec(ctx)
		if err != nil {
			return fmt.Errorf("skip pending checks of run %s: %w", run.ID, err)
		}
		left, _ := res.RowsAffected()
		if err := tx.NewSelect().Model(run).WherePK().Scan(ctx); err != nil {
			return fmt.Errorf("read verify run %s: %w", run.ID, err)
		}
		if run.Status != VerifyRunning {
			return nil
		}
		run.AccountsChecked += int(left)
		run.Status = VerifyCompleted
		if left > 0 {
			run.Status = VerifyIncomplete
		}
		run.Summary = runSummary(run, int(left))
		run.FinishedAt = &now
		_, err = tx.NewUpdate().Model(run).Column("status", "accounts_checked", "summary", "finished_at").
			WherePK().Where("status = ?", VerifyRunning).Exec(ctx)
		return err
	})
}

// FailVerifyRun ends a run whose planning failed.
func (s *Store) FailVerifyRun(ctx context.Context, run *VerifyRun, why string) error {
	now := s.now()
	run.Status, run.Summary, run.FinishedAt = VerifyFailed, why, &now
	if _, err := s.DB.NewUpdate().Model(run).Column("status", "summary", "finished_at").WherePK().Exec(ctx); err != nil {
		return fmt.Errorf("fail verify run %s: %w", run.ID, err)
	}
	return nil
}

// AddChecks stores the planned checks of a run (pending, each with its due time) and the
// run's total. A run without checks completes at once.
func (s *Store) AddChecks(ctx context.Context, run *VerifyRun, checks []*AccountCheck) error {
	now := s.now()
	for _, c := range checks {
		if c.ID == "" {
			c.ID = NewID()
		}
		c.RunID, c.HostID, c.State, c.CreatedAt = run.ID, run.HostID, CheckPending, now
		if c.Evidence == nil {
			c.Evidence = []Exchange{}
		}
	}
	return s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		const chunk = 200 // SQLite limits bound parameters per statement
		for i := 0; i < len(checks); i += chunk {
			part := checks[i:min(i+chunk, len(checks))]
			if _, err := tx.NewInsert().Model(&part).On("CONFLICT (run_id, item_id) DO NOTHING").Exec(ctx); err != nil {
				return fmt.Errorf("insert checks of run %s: %w", run.ID, err)
			}
		}
		run.AccountsTotal = len(checks)
		cols := []string{"accounts_total"}
		if len(checks) == 0 {
			run.Status, run.FinishedAt, run.Summary = VerifyCompleted, &now, "no imported account to check"
			cols = append(cols, "status", "finished_at", "summary")
		}
		_, err := tx.NewUpdate().Model(run).Column(cols...).WherePK().Exec(ctx)
		return err
	})
}

// GetAccountCheck loads one check.
func (s *Store) GetAccountCheck(ctx context.Context, id string) (*AccountCheck, error) {
	c := new(AccountCheck)
	if err := s.DB.NewSelect().Model(c).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, notFound(err, "account check "+id)
	}
	return c, nil
}

// VerifyRunBySlot returns the run of a host's periodic slot.
func (s *Store) VerifyRunBySlot(ctx context.Context, hostID, slot string) (*VerifyRun, error) {
	r := new(VerifyRun)
	if err := s.DB.NewSelect().Model(r).Where("host_id = ?", hostID).Where("slot = ?", slot).Scan(ctx); err != nil {
		return nil, notFound(err, "verify run of slot "+slot)
	}
	return r, nil
}

// GetVerifyRun loads one run.
func (s *Store) GetVerifyRun(ctx context.Context, id string) (*VerifyRun, error) {
	r := new(VerifyRun)
	if err := s.DB.NewSelect().Model(r).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, notFound(err, "verify run "+id)
	}
	return r, nil
}

// ListVerifyRuns returns the newest runs (of a host, when given) first.
func (s *Store) ListVerifyRuns(ctx context.Context, hostID string, limit int) ([]VerifyRun, error) {
	out := []VerifyRun{}
	q := s.DB.NewSelect().Model(&out).Order("started_at DESC", "id DESC")
	if hostID != "" {
		q = q.Where("host_id = ?", hostID)
	}
	if limit <= 0 {
		limit = 20
	}
	if err := q.Limit(int64(limit)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("list verify runs: %w", err)
	}
	return out, nil
}

// PendingChecks returns the pending checks of running runs due before t (a lost task's
// check, for the sweep), oldest due first.
func (s *Store) PendingChecks(ctx context.Context, t time.Time, limit int) ([]AccountCheck, error) {
	var out []AccountCheck
	q := s.DB.NewSelect().Model(&out).Where("state = ?", CheckPending).Where("due_at <= ?", t).
		Where("run_id IN (?)", s.DB.NewSelect().Model((*VerifyRun)(nil)).Column("id").Where("status = ?", VerifyRunning)).
		Order("due_at ASC")
	if limit > 0 {
		q = q.Limit(int64(limit))
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("pending checks: %w", err)
	}
	return out, nil
}

// RunChecks returns the checks of a run in due order.
func (s *Store) RunChecks(ctx context.Context, runID string) ([]AccountCheck, error) {
	var out []AccountCheck
	if err := s.DB.NewSelect().Model(&out).Where("run_id = ?", runID).Order("due_at ASC", "id ASC").Scan(ctx); err != nil {
		return nil, fmt.Errorf("checks of run %s: %w", runID, err)
	}
	return out, nil
}

// FinishCheck records a check's verdict, the account's latest health, the events it
// raised (queued in the outbox for the host's webhooks) and the run's progress in one
// transaction; the run completes with its last check. A check that is no longer pending
// (a second delivery, or the run ended meanwhile) changes nothing and FinishCheck reports
// false. h is nil for a skipped check. It returns the outbox rows it queued.
func (s *Store) FinishCheck(ctx context.Context, c *AccountCheck, h *AccountHealth, events ...Event) ([]OutboxRow, bool, error) {
	now := s.now()
	if c.CheckedAt == nil {
		c.CheckedAt = &now
	}
	if c.Evidence == nil {
		c.Evidence = []Exchange{}
	}
	if c.State == CheckPending || c.State == "" {
		c.State = CheckDone
	}
	won := false
	var queued []OutboxRow
	err := s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if tx.Dialect().Name() == dialect.PG {
			// Two checks finishing together must not both see themselves as not last.
			if _, err := tx.NewSelect().TableExpr("verify_runs").ColumnExpr("1").Where("id = ?", c.RunID).For("UPDATE").Exec(ctx); err != nil {
				return err
			}
		}
		res, err := tx.NewUpdate().Model(c).Column("state", "status", "class", "reason", "direct", "host_view", "host_account_id",
			"balance_amount", "balance_currency", "balance_at", "balance_source", "balance_low", "action", "action_detail",
			"evidence", "checked_at").WherePK().Where("state = ?", CheckPending).Exec(ctx)
		if err != nil {
			return fmt.Errorf("finish check %s: %w", c.ID, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil
		}
		won = true
		if h != nil {
			if _, err := tx.NewInsert().Model(h).On("CONFLICT (item_id) DO UPDATE").
				Set("host_id = EXCLUDED.host_id, batch_id = EXCLUDED.batch_id, resource_id = EXCLUDED.resource_id").
				Set("host_account_id = EXCLUDED.host_account_id, account_name = EXCLUDED.account_name, provider = EXCLUDED.provider").
				Set("key_masked = EXCLUDED.key_masked, status = EXCLUDED.status, class = EXCLUDED.class, reason = EXCLUDED.reason").
				Set("since = EXCLUDED.since, fail_streak = EXCLUDED.fail_streak, parked = EXCLUDED.parked, hold = EXCLUDED.hold").
				Set("balance_amount = EXCLUDED.balance_amount, balance_currency = EXCLUDED.balance_currency").
				Set("balance_at = EXCLUDED.balance_at, balance_low = EXCLUDED.balance_low, recent = EXCLUDED.recent").
				Set("last_check_id = EXCLUDED.last_check_id, last_action = EXCLUDED.last_action, checked_at = EXCLUDED.checked_at").
				Exec(ctx); err != nil {
				return fmt.Errorf("account health of item %s: %w", h.ItemID, err)
			}
		}
		var err2 error
		if queued, err2 = s.addEvents(ctx, tx, c.HostID, events); err2 != nil {
			return err2
		}
		q := tx.NewUpdate().Model((*VerifyRun)(nil)).Set("accounts_checked = accounts_checked + 1").Where("id = ?", c.RunID)
		switch c.Status {
		case HealthHealthy:
			q = q.Set("healthy = healthy + 1")
		case HealthDegraded:
			q = q.Set("degraded = degraded + 1")
		case HealthFailing:
			q = q.Set("failing = failing + 1")
		}
		if c.Action != "" {
			q = q.Set("actions = actions + 1")
		}
		if _, err := q.Exec(ctx); err != nil {
			return fmt.Errorf("progress of run %s: %w", c.RunID, err)
		}
		run := new(VerifyRun)
		if err := tx.NewSelect().Model(run).Where("id = ?", c.RunID).Scan(ctx); err != nil {
			return fmt.Errorf("read run %s: %w", c.RunID, err)
		}
		if run.Status != VerifyRunning || run.AccountsChecked < run.AccountsTotal {
			return nil
		}
		run.Status, run.FinishedAt = VerifyCompleted, &now
		run.Summary = runSummary(run, 0)
		_, err = tx.NewUpdate().Model(run).Column("status", "summary", "finished_at").WherePK().Where("status = ?", VerifyRunning).Exec(ctx)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return queued, won, nil
}

func runSummary(r *VerifyRun, notChecked int) string {
	skipped := r.AccountsChecked - r.Healthy - r.Degraded - r.Failing - notChecked
	parts := []string{fmt.Sprintf("%d healthy, %d degraded, %d failing", r.Healthy, r.Degraded, r.Failing)}
	if skipped > 0 {
		parts = append(parts, fmt.Sprintf("%d skipped", skipped))
	}
	if notChecked > 0 {
		parts = append(parts, fmt.Sprintf("%d not checked before the deadline", notChecked))
	}
	if r.Actions > 0 {
		parts = append(parts, fmt.Sprintf("%d action(s)", r.Actions))
	}
	return fmt.Sprintf("%s (of %d accounts)", strings.Join(parts, ", "), r.AccountsTotal)
}

// GetAccountHealth returns the latest verdict on an item's account.
func (s *Store) GetAccountHealth(ctx context.Context, itemID string) (*AccountHealth, error) {
	h := new(AccountHealth)
	if err := s.DB.NewSelect().Model(h).Where("item_id = ?", itemID).Scan(ctx); err != nil {
		return nil, notFound(err, "account health of item "+itemID)
	}
	return h, nil
}

// SetAccountMarks changes the parked and hold marks of an account's latest verdict (an
// undo, or an action outside a check).
func (s *Store) SetAccountMarks(ctx context.Context, itemID string, parked, hold bool) error {
	if _, err := s.DB.NewUpdate().Model((*AccountHealth)(nil)).Set("parked = ?", parked).Set("hold = ?", hold).
		Where("item_id = ?", itemID).Exec(ctx); err != nil {
		return fmt.Errorf("account marks of item %s: %w", itemID, err)
	}
	return nil
}

// HealthFilter selects account health rows.
type HealthFilter struct {
	HostID string
	// Status is healthy, degraded or failing; "" = any.
	Status        string
	Limit, Offset int
}

// ListAccountHealth returns one page of accounts with their latest verdict, failing first
// then by name, and the total.
func (s *Store) ListAccountHealth(ctx context.Context, f HealthFilter) ([]AccountHealth, int, error) {
	out := []AccountHealth{}
	q := s.DB.NewSelect().Model(&out)
	if f.HostID != "" {
		q = q.Where("host_id = ?", f.HostID)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q = q.OrderExpr("CASE status WHEN ? THEN 0 WHEN ? THEN 1 ELSE 2 END", HealthFailing, HealthDegraded).
		Order("account_name ASC", "item_id ASC")
	total, err := q.Limit(int64(f.Limit)).Offset(int64(f.Offset)).ScanAndCount(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("list account health: %w", err)
	}
	return out, int(total), nil
}

// AccountHistory returns an item's checks that ran, newest first.
func (s *Store) AccountHistory(ctx context.Context, itemID string, limit int) ([]AccountCheck, error) {
	out := []AccountCheck{}
	if limit <= 0 {
		limit = 50
	}
	if err := s.DB.NewSelect().Model(&out).Where("item_id = ?", itemID).Where("state = ?", CheckDone).
		Order("checked_at DESC", "id DESC").Limit(int64(limit)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("history of item %s: %w", itemID, err)
	}
	return out, nil
}

// AccountHealthCounts returns, per host, the number of accounts in each status.
func (s *Store) AccountHealthCounts(ctx context.Context) (map[string]map[string]int, error) {
	var rows []struct {
		HostID string `bun:"host_id"`
		Status string `bun:"status"`
		N      int    `bun:"n"`
	}
	if err := s.DB.NewSelect().Model((*AccountHealth)(nil)).Column("host_id", "status").ColumnExpr("COUNT(*) AS n").
		Group("host_id", "status").Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("account health counts: %w", err)
	}
	out := map[string]map[string]int{}
	for _, r := range rows {
		if out[r.HostID] == nil {
			out[r.HostID] = map[string]int{}
		}
		out[r.HostID][r.Status] = r.N
	}
	return out, nil
}

// SetCheckUndo moves a check's undo from state from to state to with detail (a
// compare-and-set: a second undo of the same action is refused). It reports whether it won.
func (s *Store) SetCheckUndo(ctx context.Context, id, from, to, detail string) (bool, error) {
	res, err := s.DB.NewUpdate().Model((*AccountCheck)(nil)).Set("undo_state = ?", to).Set("undo_detail = ?", detail).
		Where("id = ?", id).Where("undo_state = ?", from).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("undo of check %s: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// ItemsByID returns the items with the given ids (missing ids are left out).
func (s *Store) ItemsByID(ctx context.Context, ids []string) (map[string]*Item, error) {
	out := make(map[string]*Item, len(ids))
	const chunk = 500
	for i := 0; i < len(ids); i += chunk {
		var rows []Item
		if err := s.DB.NewSelect().Model(&rows).Where("id IN (?)", bun.In(ids[i:min(i+chunk, len(ids))])).Scan(ctx); err != nil {
			return nil, fmt.Errorf("items by id: %w", err)
		}
		for j := range rows {
			out[rows[j].ID] = &rows[j]
		}
	}
	return out, nil
}

// ItemKey returns the ledger row of the managed user's key that an item uses (the key of
// its group), or ErrNotFound when the item has none (access mode none, or not recorded).
func (s *Store) ItemKey(ctx context.Context, itemID string) (*Resource, error) {
	r := new(Resource)
	err := s.DB.NewSelect().Model(r).Where("resource_type = ?", TypeKey).
		Where("state IN (?)", bun.In([]string{ResourceCreated, ResourceAdopted})).
		Where("id IN (?)", s.DB.NewSelect().Model((*Use)(nil)).Column("resource_id").Where("item_id = ?", itemID)).
		Order("updated_at DESC").Limit(1).Scan(ctx)
	if err != nil {
		return nil, notFound(err, "end-user key of item "+itemID)
	}
	return r, nil
}
