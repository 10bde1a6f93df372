package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
)

func verifyFixture(t *testing.T, s *Store, n int) (*Host, []*Item) {
	t.Helper()
	ctx := context.Background()
	h := &Host{Name: "h", AdminURL: "http://x", PublicURL: "http://x", AuthKind: "api_key"}
	if err := s.CreateHost(ctx, h); err != nil {
		t.Fatal(err)
	}
	b := &Batch{HostID: h.ID, Mode: "self_service"}
	var items []*Item
	for i := 0; i < n; i++ {
		items = append(items, &Item{Name: fmt.Sprintf("i%d", i), BaseURL: "http://u", APIKeyEnc: "v1:x", KeyMasked: "m",
			KeyFingerprint: fmt.Sprintf("fp%d", i), Status: ItemReady})
	}
	if err := s.CreateBatch(ctx, b, items); err != nil {
		t.Fatal(err)
	}
	return h, items
}

// A periodic slot runs once however many schedulers start it; a slot that comes while the
// host's run is alive is recorded as skipped; a run asked for meanwhile is refused; a run
// past its deadline is ended incomplete, its pending checks skipped.
func TestVerifyRunSlotsAndDeadline(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		h, items := verifyFixture(t, s, 3)
		run, err := s.StartVerifyRun(ctx, h.ID, "202612071800", time.Now().Add(time.Hour), 48*time.Minute)
		if err != nil || run == nil {
			t.Fatalf("first slot: %v %v", run, err)
		}
		again, err := s.StartVerifyRun(ctx, h.ID, "202612071800", time.Now().Add(time.Hour), time.Minute)
		if err != nil || again != nil {
			t.Fatalf("same slot again: %v %v", again, err)
		}
		if _, err := s.StartVerifyRun(ctx, h.ID, "", time.Time{}, 0); !errors.Is(err, ErrRunActive) {
			t.Fatalf("run asked for while one runs: %v", err)
		}
		skipped, err := s.StartVerifyRun(ctx, h.ID, "202612071900", time.Now().Add(time.Hour), time.Minute)
		if err != nil || skipped != nil {
			t.Fatalf("next slot while running: %v %v", skipped, err)
		}
		runs, _ := s.ListVerifyRuns(ctx, h.ID, 10)
		if len(runs) != 2 || runs[0].Status != VerifySkipped && runs[1].Status != VerifySkipped {
			t.Fatalf("runs: %+v", runs)
		}
		var checks []*AccountCheck
		for _, it := range items {
			checks = append(checks, &AccountCheck{BatchID: it.BatchID, ItemID: it.ID, DueAt: time.Now(), AccountName: it.Name})
		}
		if err := s.AddChecks(ctx, run, checks); err != nil {
			t.Fatal(err)
		}
		if due, err := s.PendingChecks(ctx, time.Now().Add(time.Minute), 10); err != nil || len(due) != 3 {
			t.Fatalf("pending checks %d %v", len(due), err)
		}
		// One check finishes (twice: the second is a duplicate delivery and counts nothing).
		c := checks[0]
		c.Status, c.Class, c.Direct = HealthFailing, "no_quota", "failed"
		amount := 3.5
		c.BalanceAmount, c.BalanceCurrency = &amount, "CNY"
		c.Action, c.ActionDetail = ActionParked, CheckAction{Calls: []string{"set_unschedulable"}, Undo: "set_schedulable:true"}
		hl := &AccountHealth{ItemID: c.ItemID, HostID: h.ID, Status: HealthFailing, Class: "no_quota", Since: time.Now(), Recent: "hf",
			Parked: true, CheckedAt: time.Now(), BalanceAmount: &amount, BalanceCurrency: "CNY"}
		if _, won, err := s.FinishCheck(ctx, c, hl); err != nil || !won {
			t.Fatalf("finish: %v %v", won, err)
		}
		if _, won, err := s.FinishCheck(ctx, c, hl); err != nil || won {
			t.Fatalf("finish twice: %v %v", won, err)
		}
		got, _ := s.GetVerifyRun(ctx, run.ID)
		if got.AccountsChecked != 1 || got.Failing != 1 || got.Actions != 1 || got.Status != VerifyRunning {
			t.Fatalf("run progress %+v", got)
		}
		gh, err := s.GetAccountHealth(ctx, c.ItemID)
		if err != nil || !gh.Parked || gh.BalanceAmount == nil || *gh.BalanceAmount != 3.5 || gh.Recent != "hf" {
			t.Fatalf("health %+v %v", gh, err)
		}
		hist, _ := s.AccountHistory(ctx, c.ItemID, 10)
		if len(hist) != 1 || hist[0].ActionDetail.Undo != "set_schedulable:true" || hist[0].Class != "no_quota" {
			t.Fatalf("history %+v", hist)
		}
		if ok, _ := s.SetCheckUndo(ctx, c.ID, "", UndoQueued, ""); !ok {
			t.Fatal("undo not queued")
		}
		if ok, _ := s.SetCheckUndo(ctx, c.ID, "", UndoQueued, ""); ok {
			t.Fatal("a second undo was queued")
		}
		// The deadline passes: the next start ends the run incomplete and starts anew.
		past := time.Now().Add(-time.Second)
		if _, err := s.DB.NewUpdate().Model((*VerifyRun)(nil)).Set("deadline = ?", past).Where("id = ?", run.ID).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		if exp, err := s.ExpiredVerifyRuns(ctx); err != nil || len(exp) != 1 || exp[0].ID != run.ID {
			t.Fatalf("expired runs %+v %v", exp, err)
		}
		next, err := s.StartVerifyRun(ctx, h.ID, "202612072000", time.Now().Add(time.Hour), time.Minute)
		if err != nil || next == nil {
			t.Fatalf("slot after the deadline: %v %v", next, err)
		}
		ended, _ := s.GetVerifyRun(ctx, run.ID)
		if ended.Status != VerifyIncomplete || ended.AccountsChecked != 3 || ended.FinishedAt == nil {
			t.Fatalf("ended run %+v", ended)
		}
		rc, _ := s.RunChecks(ctx, run.ID)
		skippedN := 0
		for _, c := range rc {
			if c.State == CheckSkipped {
				skippedN++
			}
		}
		if skippedN != 2 {
			t.Fatalf("%d checks skipped, want 2", skippedN)
		}
		counts, err := s.AccountHealthCounts(ctx)
		if err != nil || counts[h.ID][HealthFailing] != 1 {
			t.Fatalf("counts %v %v", counts, err)
		}
		list, total, err := s.ListAccountHealth(ctx, HealthFilter{HostID: h.ID, Status: HealthFailing})
		if err != nil || total != 1 || len(list) != 1 {
			t.Fatalf("list %v %d %v", list, total, err)
		}
	})
}

// The last check completes the run.
func TestVerifyRunCompletesWithLastCheck(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		h, items := verifyFixture(t, s, 2)
		run, err := s.StartVerifyRun(ctx, h.ID, "", time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		var checks []*AccountCheck
		for _, it := range items {
			checks = append(checks, &AccountCheck{BatchID: it.BatchID, ItemID: it.ID, DueAt: time.Now()})
		}
		if err := s.AddChecks(ctx, run, checks); err != nil {
			t.Fatal(err)
		}
		for i, c := range checks {
			c.Status = HealthHealthy
			if i == 1 {
				c.State, c.Status, c.Reason = CheckSkipped, "", "item being retried"
			}
			if _, _, err := s.FinishCheck(ctx, c, nil); err != nil {
				t.Fatal(err)
			}
		}
		got, _ := s.GetVerifyRun(ctx, run.ID)
		if got.Status != VerifyCompleted || got.Healthy != 1 || got.AccountsChecked != 2 || got.Summary == "" {
			t.Fatalf("run %+v", got)
		}
		if r, _ := s.RunningVerify(ctx, h.ID); r != nil {
			t.Fatalf("still running: %+v", r)
		}
		// An empty run completes at once.
		empty, err := s.StartVerifyRun(ctx, h.ID, "", time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AddChecks(ctx, empty, nil); err != nil || empty.Status != VerifyCompleted {
			t.Fatalf("empty run %+v %v", empty, err)
		}
	})
}

// An event is queued once per webhook that takes it; a claimed row cannot be claimed again
// until its lease runs out; settled rows are never due again.
func TestOutboxOncePerWebhook(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		h, _ := verifyFixture(t, s, 0)
		all := &Webhook{HostID: h.ID, Format: "generic", URLEnc: "v1:a", URLShown: "https://a"}
		onlyBatches := &Webhook{HostID: h.ID, Format: "slack", URLEnc: "v1:b", URLShown: "https://b", Events: []string{"batch_finished"}}
		for _, w := range []*Webhook{all, onlyBatches} {
			if err := s.CreateWebhook(ctx, w); err != nil {
				t.Fatal(err)
			}
		}
		at := time.Now()
		added, err := s.AddEvent(ctx, h.ID, Event{ID: "account_failing:i1:1", Type: "account_failing", At: at, Payload: []byte(`{}`)})
		if err != nil || len(added) != 1 || added[0].WebhookID != all.ID {
			t.Fatalf("added %+v %v", added, err)
		}
		again, err := s.AddEvent(ctx, h.ID, Event{ID: "account_failing:i1:1", Type: "account_failing", At: at, Payload: []byte(`{}`)})
		if err != nil || len(again) != 0 {
			t.Fatalf("added again %+v %v", again, err)
		}
		if old, _ := s.AddEvent(ctx, h.ID, Event{ID: "batch_finished:b:1", Type: "batch_finished", At: at.Add(-time.Hour), Payload: []byte(`{}`)}); len(old) != 0 {
			t.Fatalf("an event older than the webhooks was queued: %+v", old)
		}
		row, ok, err := s.ClaimOutbox(ctx, added[0].ID, time.Minute)
		if err != nil || !ok || row.Attempts != 1 {
			t.Fatalf("claim %+v %v %v", row, ok, err)
		}
		if _, ok, _ := s.ClaimOutbox(ctx, added[0].ID, time.Minute); ok {
			t.Fatal("claimed twice")
		}
		if due, _ := s.DueOutbox(ctx, time.Now(), 10); len(due) != 0 {
			t.Fatalf("a leased row is due: %+v", due)
		}
		if err := s.SettleOutbox(ctx, row, OutboxPending, time.Now().Add(-time.Second), "HTTP 503"); err != nil {
			t.Fatal(err)
		}
		if due, _ := s.DueOutbox(ctx, time.Now(), 10); len(due) != 1 {
			t.Fatalf("retry not due: %+v", due)
		}
		row, ok, _ = s.ClaimOutbox(ctx, added[0].ID, time.Minute)
		if !ok || row.Attempts != 2 {
			t.Fatalf("second claim %+v", row)
		}
		if err := s.SettleOutbox(ctx, row, OutboxDelivered, time.Time{}, ""); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.ClaimOutbox(ctx, added[0].ID, time.Minute); ok {
			t.Fatal("a delivered row was claimed")
		}
		counts, _ := s.OutboxCounts(ctx)
		if counts[OutboxDelivered] != 1 {
			t.Fatalf("counts %v", counts)
		}
		// Deleting a webhook drops what is pending for it.
		pend, _ := s.AddEvent(ctx, h.ID, Event{ID: "batch_finished:b:2", Type: "batch_finished", At: time.Now(), Payload: []byte(`{}`)})
		if len(pend) != 2 {
			t.Fatalf("pending %+v", pend)
		}
		if err := s.DeleteWebhook(ctx, onlyBatches.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteWebhook(ctx, onlyBatches.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("delete twice: %v", err)
		}
		if due, _ := s.DueOutbox(ctx, time.Now(), 10); len(due) != 1 || due[0].WebhookID != all.ID {
			t.Fatalf("due after delete %+v", due)
		}
		// Settings default to off and round-trip.
		hs, err := s.GetHostSettings(ctx, h.ID)
		if err != nil || hs.AutoRecover || hs.ParkFailing || hs.LowBalance != 0 {
			t.Fatalf("default settings %+v %v", hs, err)
		}
		hs.AutoRecover, hs.LowBalance = true, 12.5
		if err := s.PutHostSettings(ctx, hs); err != nil {
			t.Fatal(err)
		}
		hs.ParkFailing = true
		if err := s.PutHostSettings(ctx, hs); err != nil {
			t.Fatal(err)
		}
		got, _ := s.GetHostSettings(ctx, h.ID)
		if !got.AutoRecover || !got.ParkFailing || got.LowBalance != 12.5 {
			t.Fatalf("settings %+v", got)
		}
	})
}

// Webhook URLs and secrets move to the new master key with everything else.
func TestRotateSecretsReseals(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	oldBox, _ := secret.NewBox("old-master-key-0000000")
	newBox, _ := secret.NewBox("new-master-key-1111111")
	h, _ := verifyFixture(t, s, 0)
	u, _ := oldBox.Seal("https://hooks.example.com/T/B/token")
	sec, _ := oldBox.Seal("signing-secret")
	w := &Webhook{HostID: h.ID, Format: "generic", URLEnc: u, SecretEnc: sec, URLShown: "https://hooks.example.com"}
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RotateSecrets(ctx, secret.Rotation{Old: oldBox, New: newBox}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.GetWebhook(ctx, w.ID)
	if v, err := newBox.Open(got.URLEnc); err != nil || v != "https://hooks.example.com/T/B/token" {
		t.Fatalf("URL after rotation: %v", err)
	}
	if v, err := newBox.Open(got.SecretEnc); err != nil || v != "signing-secret" {
		t.Fatalf("secret after rotation: %v", err)
	}
}
