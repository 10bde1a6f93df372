package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// DeleteHost refuses while items run and while the ledger holds objects (unless asked to
// forget them), changing nothing; a forgetting delete removes the host and every row
// recorded for it, and leaves other hosts' rows alone.
func TestDeleteHost(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		mk := func(name string) (*Host, *Batch, []*Item) {
			h := &Host{Name: name, AdminURL: "http://" + name, PublicURL: "http://" + name, AuthKind: "api_key"}
			if err := s.CreateHost(ctx, h); err != nil {
				t.Fatal(err)
			}
			b := &Batch{HostID: h.ID, Mode: "self_service"}
			items := []*Item{{Name: "a", BaseURL: "https://x", KeyMasked: "k", KeyFingerprint: name + "1"},
				{Name: "b", BaseURL: "https://y", KeyMasked: "k", KeyFingerprint: name + "2"}}
			if err := s.CreateBatch(ctx, b, items); err != nil {
				t.Fatal(err)
			}
			r, err := s.EnsureIntent(ctx, &Resource{HostID: h.ID, BatchID: b.ID, ItemID: items[0].ID, Type: TypeGroup, Name: "crm-group-" + name})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.MarkCreated(ctx, r, "7", ResourceCreated); err != nil {
				t.Fatal(err)
			}
			if err := s.AddUse(ctx, r.ID, b.ID, items[1].ID); err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			it := items[0]
			it.Status = ItemFailed
			if err := s.CompleteStep(ctx, it, it.Seq, &Attempt{Step: "import", Seq: it.Seq, Number: 1, Outcome: OutcomeFailed, StartedAt: now, FinishedAt: now}); err != nil {
				t.Fatal(err)
			}
			if err := s.CreateReconcileRun(ctx, &ReconcileRun{HostID: h.ID}); err != nil {
				t.Fatal(err)
			}
			// The work after the import keeps rows per host too.
			if err := s.PutHostSettings(ctx, &HostSettings{HostID: h.ID, AutoRecover: true}); err != nil {
				t.Fatal(err)
			}
			if err := s.CreateWebhook(ctx, &Webhook{HostID: h.ID, Format: "generic", URLEnc: "sealed", URLShown: "https://hooks.example"}); err != nil {
				t.Fatal(err)
			}
			run, err := s.StartVerifyRun(ctx, h.ID, "", now.Add(time.Hour), 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.EndVerifyRun(ctx, run); err != nil {
				t.Fatal(err)
			}
			return h, b, items
		}
		h, b, _ := mk("doomed")
		other, _, _ := mk("kept")

		if _, err := s.DeleteHost(ctx, "nope", true); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing host: %v", err)
		}
		u, err := s.DeleteHost(ctx, h.ID, true)
		if !errors.Is(err, ErrHostBusy) || u.RunningItems != 1 {
			t.Fatalf("running item: %v %+v", err, u)
		}
		if _, err := s.CancelBatch(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		u, err = s.DeleteHost(ctx, h.ID, false)
		if !errors.Is(err, ErrHostInUse) || u.LedgerTotal != 1 || u.Ledger[TypeGroup] != 1 {
			t.Fatalf("ledger objects: %v %+v", err, u)
		}
		if _, err := s.GetHost(ctx, h.ID); err != nil {
			t.Fatalf("a refused delete removed the host: %v", err)
		}
		u, err = s.DeleteHost(ctx, h.ID, true)
		if err != nil {
			t.Fatal(err)
		}
		if u.LedgerTotal != 1 || u.Batches != 1 || u.Items != 2 || u.Attempts != 1 || u.ReconcileRuns != 1 {
			t.Errorf("removed %+v", u)
		}
		if _, err := s.GetHost(ctx, h.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("host still there: %v", err)
		}
		for table, where := range map[string]string{"batches": "host_id = ?", "items": "host_id = ?", "managed_resources": "host_id = ?",
			"reconcile_runs": "host_id = ?", "resource_uses": "batch_id IN (SELECT id FROM batches WHERE host_id = ?)",
			"host_settings": "host_id = ?", "webhooks": "host_id = ?", "verify_runs": "host_id = ?"} {
			if n, err := s.DB.NewSelect().TableExpr(table).Where(where, h.ID).Count(ctx); err != nil || n != 0 {
				t.Errorf("%s of the deleted host: %d %v", table, n, err)
			}
		}
		ku, err := s.HostUsage(ctx, other.ID)
		if err != nil || ku.LedgerTotal != 1 || ku.Items != 2 || ku.Attempts != 1 || ku.ReconcileRuns != 1 || ku.Batches != 1 {
			t.Errorf("the other host: %+v %v", ku, err)
		}
		if n, _ := s.DB.NewSelect().TableExpr("resource_uses").Count(ctx); n != 1 {
			t.Errorf("resource uses left: %d, want the other host's 1", n)
		}

		// SaveHost writes every setting; a taken name is ErrConflict.
		other.Name, other.AuthKind, other.AdminEmail, other.AdminKeyEnc = "renamed", "password", "a@b.c", ""
		if err := s.SaveHost(ctx, other); err != nil {
			t.Fatal(err)
		}
		if g, _ := s.GetHost(ctx, other.ID); g.Name != "renamed" || g.AuthKind != "password" || g.AdminEmail != "a@b.c" {
			t.Errorf("saved %+v", g)
		}
		third := &Host{Name: "third", AdminURL: "http://t", PublicURL: "http://t", AuthKind: "api_key"}
		if err := s.CreateHost(ctx, third); err != nil {
			t.Fatal(err)
		}
		third.Name = "renamed"
		if err := s.SaveHost(ctx, third); !errors.Is(err, ErrConflict) {
			t.Errorf("taken name: %v", err)
		}
	})
}
