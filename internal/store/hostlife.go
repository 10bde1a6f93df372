package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/uptrace/bun"
)

// Refusals of DeleteHost; the returned *HostUsage says what the host still holds.
var (
	// ErrHostInUse: the ledger holds objects on the host (rows not deleted); deleting the
	// host would leave them on the host with nobody knowing them, unless asked to forget.
	ErrHostInUse = errors.New("the ledger holds objects on this host")
	// ErrHostBusy: items of the host are still running; cancel their batches first.
	ErrHostBusy = errors.New("items of this host are still running")
)

// HostUsage is what the database holds for one host.
type HostUsage struct {
	// Ledger counts the ledger's objects on the host by type (rows not deleted: intent,
	// created, adopted, deleting, missing); LedgerTotal is their sum.
	Ledger      map[string]int `json:"ledger"`
	LedgerTotal int            `json:"ledger_total"`
	// DeletedRows are ledger rows of objects a rollback deleted (history only).
	DeletedRows   int `json:"deleted_rows"`
	Batches       int `json:"batches"`
	Items         int `json:"items"`
	RunningItems  int `json:"running_items"`
	Attempts      int `json:"attempts"`
	ReconcileRuns int `json:"reconcile_runs"`
}

// SaveHost writes every setting of h (name, URLs, credentials) and its probe results. A
// name another host has is ErrConflict.
func (s *Store) SaveHost(ctx context.Context, h *Host) error {
	h.UpdatedAt = s.now()
	if h.Warnings == nil {
		h.Warnings = []string{}
	}
	if h.Flags == nil {
		h.Flags = map[string]bool{}
	}
	_, err := s.DB.NewUpdate().Model(h).
		Column("name", "admin_url", "public_url", "auth_kind", "admin_key_enc", "admin_key_masked", "admin_email", "admin_password_enc",
			"version", "profile", "status", "status_message", "warnings", "flags", "probed_at", "updated_at").
		WherePK().Exec(ctx)
	if err != nil {
		return writeError("update host "+h.ID, err)
	}
	return nil
}

// HostUsage counts what the database holds for the host.
func (s *Store) HostUsage(ctx context.Context, hostID string) (*HostUsage, error) {
	if _, err := s.GetHost(ctx, hostID); err != nil {
		return nil, err
	}
	return hostUsage(ctx, s.DB, hostID)
}

func hostUsage(ctx context.Context, db bun.IDB, hostID string) (*HostUsage, error) {
	u := &HostUsage{Ledger: map[string]int{}}
	var rows []struct {
		Type  string `bun:"resource_type"`
		State string `bun:"state"`
		N     int    `bun:"n"`
	}
	if err := db.NewSelect().TableExpr("managed_resources").ColumnExpr("resource_type, state, count(*) AS n").
		Where("host_id = ?", hostID).GroupExpr("resource_type, state").Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("count the ledger of host %s: %w", hostID, err)
	}
	for _, r := range rows {
		if r.State == ResourceDeleted {
			u.DeletedRows += r.N
			continue
		}
		u.Ledger[r.Type] += r.N
		u.LedgerTotal += r.N
	}
	counts := []struct {
		dst   *int
		table string
		where string
		args  []any
	}{
		{&u.Batches, "batches", "host_id = ?", []any{hostID}},
		{&u.Items, "items", "host_id = ?", []any{hostID}},
		{&u.RunningItems, "items", "host_id = ? AND status NOT IN (?)", []any{hostID, bun.In(TerminalItemStatuses)}},
		{&u.Attempts, "attempts", "item_id IN (SELECT id FROM items WHERE host_id = ?)", []any{hostID}},
		{&u.ReconcileRuns, "reconcile_runs", "host_id = ?", []any{hostID}},
	}
	for _, c := range counts {
		n, err := db.NewSelect().TableExpr(c.table).Where(c.where, c.args...).Count(ctx)
		if err != nil {
			return nil, fmt.Errorf("count %s of host %s: %w", c.table, hostID, err)
		}
		*c.dst = int(n)
	}
	return u, nil
}

// DeleteHost removes the host and everything recorded for it (ledger rows and their uses,
// batches, items, attempts, reconcile runs) in one transaction, and returns what it
// removed. It refuses, changing nothing, with ErrHostBusy while items of the host are
// running, and with ErrHostInUse while the ledger holds objects on the host unless forget
// is set: the objects then stay on the host and this product no longer knows them.
func (s *Store) DeleteHost(ctx context.Context, hostID string, forget bool) (*HostUsage, error) {
	var usage *HostUsage
	err := s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		exists, err := tx.NewSelect().Model((*Host)(nil)).Where("id = ?", hostID).Exists(ctx)
		if err != nil {
			return fmt.Errorf("read host %s: %w", hostID, err)
		}
		if !exists {
			return fmt.Errorf("host %s: %w", hostID, ErrNotFound)
		}
		if usage, err = hostUsage(ctx, tx, hostID); err != nil {
			return err
		}
		switch {
		case usage.RunningItems > 0:
			return ErrHostBusy
		case usage.LedgerTotal > 0 && !forget:
			return ErrHostInUse
		}
		deletes := []struct {
			table, where string
		}{
			{"resource_uses", "resource_id IN (SELECT id FROM managed_resources WHERE host_id = ?) OR batch_id IN (SELECT id FROM batches WHERE host_id = ?)"},
			{"managed_resources", "host_id = ?"},
			{"attempts", "item_id IN (SELECT id FROM items WHERE host_id = ?)"},
			{"items", "host_id = ?"},
			{"batches", "host_id = ?"},
			{"reconcile_runs", "host_id = ?"},
			// The work after the import: re-verification runs and checks, the accounts'
			// latest verdicts, the host's settings, its webhooks and their deliveries.
			{"notification_outbox", "host_id = ?"},
			{"webhooks", "host_id = ?"},
			{"account_checks", "host_id = ?"},
			{"account_health", "host_id = ?"},
			{"verify_runs", "host_id = ?"},
			{"host_settings", "host_id = ?"},
			{"hosts", "id = ?"},
		}
		for _, d := range deletes {
			args := []any{hostID}
			if d.table == "resource_uses" {
				args = append(args, hostID)
			}
			if _, err := tx.NewDelete().TableExpr(d.table).Where(d.where, args...).Exec(ctx); err != nil {
				return fmt.Errorf("delete %s of host %s: %w", d.table, hostID, err)
			}
		}
		return nil
	})
	return usage, err
}
