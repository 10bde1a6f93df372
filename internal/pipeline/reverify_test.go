package pipeline

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/notify"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/hostsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/upstreamsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// verifyNow runs one whole re-verification of the harness's host synchronously: plan,
// then every check in due order. It returns the run and its checks by item.
func (h *harness) verifyNow(t *testing.T) (*store.VerifyRun, map[string]*store.AccountCheck) {
	t.Helper()
	ctx := context.Background()
	run, err := h.store.StartVerifyRun(ctx, h.host.ID, "", time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	checks, err := h.eng.PlanVerifyRun(ctx, run, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		if _, err := h.eng.VerifyAccount(ctx, c.ID); err != nil {
			t.Fatalf("check %s: %v", c.AccountName, err)
		}
	}
	run, _ = h.store.GetVerifyRun(ctx, run.ID)
	all, _ := h.store.RunChecks(ctx, run.ID)
	byItem := map[string]*store.AccountCheck{}
	for i := range all {
		byItem[all[i].ItemID] = &all[i]
	}
	return run, byItem
}

// hostAccount reads an item's account from the simulated host.
func (h *harness) hostAccount(t *testing.T, c *store.AccountCheck) *host.Account {
	t.Helper()
	_, client, err := h.eng.clientFor(context.Background(), h.host.ID)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := parseID(c.HostAccountID)
	a, err := client.GetAccount(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// outboxEvents returns the queued notification events by type, decoded.
func (h *harness) outboxEvents(t *testing.T) map[string][]notify.Event {
	t.Helper()
	var rows []store.OutboxRow
	if err := h.store.DB.NewSelect().Model(&rows).Order("created_at ASC").Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := map[string][]notify.Event{}
	for _, r := range rows {
		var e notify.Event
		if err := json.Unmarshal([]byte(r.Payload), &e); err != nil {
			t.Fatal(err)
		}
		if e.ID != r.EventID || string(e.Type) != r.EventType {
			t.Fatalf("outbox row %s carries event %s %s", r.EventID, e.ID, e.Type)
		}
		out[r.EventType] = append(out[r.EventType], e)
	}
	return out
}

func (h *harness) settings(t *testing.T, autoRecover, park bool, low float64) {
	t.Helper()
	if err := h.store.PutHostSettings(context.Background(), &store.HostSettings{HostID: h.host.ID, AutoRecover: autoRecover,
		ParkFailing: park, LowBalance: low}); err != nil {
		t.Fatal(err)
	}
	w := &store.Webhook{HostID: h.host.ID, Format: "generic", URLEnc: "v1:unused", URLShown: "https://hooks.example.com"}
	if err := h.store.CreateWebhook(context.Background(), w); err != nil {
		t.Fatal(err)
	}
}

// The case on a pooled import: a key whose upstream starts answering 402 is
// reported failing with class no_quota at the next run and (opt-in) set unschedulable;
// once its upstream recovers it is made schedulable again and proven through the gateway
// with a call routed only to it; a key that still fails is never re-enabled; balances are
// read and shown; each transition raises its notification once.
func TestReverifyParksNoQuotaAndRecovers(t *testing.T) {
	h := newHarness(t, harnessOpts{profile: hostsim.Profile179})
	specs := []itemSpec{
		{provider: "kimi", key: "sk-rv-recovers-0000000000abcd", mode: upstreamsim.ModeOK, models: []string{"kimi-k2.6"}},
		{provider: "kimi", key: "sk-rv-stillbad-0000000000abcd", mode: upstreamsim.ModeOK, models: []string{"kimi-k2.6"}},
		{provider: "deepseek", key: "sk-rv-healthy-00000000000abcd", mode: upstreamsim.ModeOK, models: []string{"deepseek-flash"}},
	}
	_, items := h.submitWith(store.BatchOptions{TargetGroup: store.TargetGroup{Mode: store.GroupPerProvider}}, ModeSelfService, specs...)
	items = h.driveReady(t, items)
	recovers, stillBad, healthy := items[0], items[1], items[2]
	h.settings(t, true, true, 20)

	// Everything answers: every account healthy, balances read with currency and time.
	run, checks := h.verifyNow(t)
	if run.Status != store.VerifyCompleted || run.Healthy != 3 || run.AccountsTotal != 3 {
		t.Fatalf("first run %+v", run)
	}
	for _, it := range items {
		c := checks[it.ID]
		if c.Status != store.HealthHealthy || c.Direct != "ok" || c.BalanceAmount == nil || *c.BalanceAmount != 100 ||
			c.BalanceCurrency != "CNY" || c.BalanceAt == nil || c.BalanceSource == "" {
			t.Fatalf("%s: %+v", it.Name, c)
		}
	}

	// The two kimi keys run out of money.
	h.up.SetMode(specs[0].key, upstreamsim.ModeNoQuota)
	h.up.SetMode(specs[1].key, upstreamsim.ModeNoQuota)
	run, checks = h.verifyNow(t)
	for _, it := range []*store.Item{recovers, stillBad} {
		c := checks[it.ID]
		if c.Status != store.HealthFailing || c.Class != "no_quota" || c.Action != store.ActionParked ||
			c.ActionDetail.Undo != "set_schedulable:true" || len(c.Evidence) == 0 {
			t.Fatalf("%s after 402: %+v", it.Name, c)
		}
		if a := h.hostAccount(t, c); a.Schedulable {
			t.Fatalf("%s: still schedulable on the host after parking", it.Name)
		}
		if c.BalanceAmount == nil || *c.BalanceAmount != 0 || !c.BalanceLow {
			t.Fatalf("%s: balance %v low=%v", it.Name, c.BalanceAmount, c.BalanceLow)
		}
		row, _ := h.store.GetResource(context.Background(), c.ResourceID)
		if parked, _ := ledgerHealth(row); !parked {
			t.Fatalf("%s: the ledger does not record the parking: %v", it.Name, row.Details)
		}
	}
	if c := checks[healthy.ID]; c.Status != store.HealthHealthy {
		t.Fatalf("healthy key: %+v", c)
	}
	if run.Failing != 2 || run.Actions != 2 {
		t.Fatalf("run %+v", run)
	}

	// One key's upstream recovers; the other still fails.
	h.up.SetMode(specs[0].key, upstreamsim.ModeOK)
	_, checks = h.verifyNow(t)
	c := checks[recovers.ID]
	if c.Action != store.ActionRecovered || c.ActionDetail.Proven == nil || !*c.ActionDetail.Proven || c.Status != store.HealthHealthy {
		t.Fatalf("recovered key: %+v", c)
	}
	if !strings.Contains(c.ActionDetail.Detail, "crm-proof-") {
		t.Fatalf("the proof was not routed to the account alone: %s", c.ActionDetail.Detail)
	}
	if a := h.hostAccount(t, c); !a.Schedulable || a.Status != "active" {
		t.Fatalf("recovered account on the host: %+v", a)
	}
	for m := range h.hostAccount(t, c).ModelMapping() {
		if strings.HasPrefix(m, "crm-proof-") {
			t.Fatalf("the proof alias stayed on the account")
		}
	}
	bad := checks[stillBad.ID]
	if bad.Action != "" || bad.Status != store.HealthFailing || bad.Class != "no_quota" {
		t.Fatalf("still failing key: %+v", bad)
	}
	if a := h.hostAccount(t, bad); a.Schedulable {
		t.Fatal("a key that still fails was re-enabled")
	}
	hl, _ := h.store.GetAccountHealth(context.Background(), stillBad.ID)
	if hl.Recent != "hff" || !hl.Parked || hl.FailStreak != 2 {
		t.Fatalf("history of the failing key: %+v", hl)
	}
	hist, _ := h.store.AccountHistory(context.Background(), recovers.ID, 10)
	if len(hist) != 3 || hist[0].Action != store.ActionRecovered || hist[1].Action != store.ActionParked {
		t.Fatalf("history %+v", hist)
	}

	// Each transition raised one event: two keys failing (parked), their balances low,
	// one recovery; nothing for the key that stayed failing.
	ev := h.outboxEvents(t)
	if len(ev["account_failing"]) != 2 || len(ev["balance_low"]) != 2 || len(ev["recovery_done"]) != 1 {
		t.Fatalf("events: %d failing, %d balance, %d recovery", len(ev["account_failing"]), len(ev["balance_low"]), len(ev["recovery_done"]))
	}
	for _, e := range ev["account_failing"] {
		if e.Account.Class != "no_quota" || !e.Account.Parked || e.Account.KeyMasked == "" || strings.Contains(e.Account.KeyMasked, "recovers-00") {
			t.Fatalf("failing event %+v", e.Account)
		}
	}
	if r := ev["recovery_done"][0]; !r.Recovery.Proven || r.Account.ItemID != recovers.ID {
		t.Fatalf("recovery event %+v %+v", r.Account, r.Recovery)
	}

	// Undo the recovery: the account is parked again and left alone afterwards.
	ctx := context.Background()
	if ok, _ := h.store.SetCheckUndo(ctx, c.ID, "", store.UndoQueued, ""); !ok {
		t.Fatal("undo not queued")
	}
	if err := h.eng.UndoCheck(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	undone, _ := h.store.GetAccountCheck(ctx, c.ID)
	if undone.UndoState != store.UndoDone {
		t.Fatalf("undo: %s %s", undone.UndoState, undone.UndoDetail)
	}
	if a := h.hostAccount(t, c); a.Schedulable {
		t.Fatal("undoing the recovery left the account schedulable")
	}
	_, checks = h.verifyNow(t)
	if c := checks[recovers.ID]; c.Action != "" || !strings.Contains(c.Reason, "paused on the host by someone else") {
		t.Fatalf("after the undo the account was touched again: %+v", c)
	}
}

// An account the host itself marked errored (the gateway saw the upstream's 402) is not
// re-enabled while the direct check still fails, and is cleared (error, then schedulable,
// as 0.1.179 needs) and proven once the upstream answers again. Parking is off here.
func TestReverifyClearsHostErrorOnlyWhenGreen(t *testing.T) {
	h := newHarness(t, harnessOpts{profile: hostsim.Profile179})
	key := "sk-rv-hosterror-000000000abcd"
	_, items := h.submit(ModeSelfService, itemSpec{provider: "stepfun", key: key, mode: upstreamsim.ModeOK, models: []string{"step-3.5-flash"}})
	it := h.driveReady(t, items)[0]
	h.settings(t, true, false, 0)
	ctx := context.Background()

	// Traffic through the gateway meets the 402: the host marks the account errored.
	h.up.SetMode(key, upstreamsim.ModeNoQuota)
	keyRow, err := h.store.ItemKey(ctx, it.ID)
	if err != nil {
		t.Fatal(err)
	}
	endUser, _ := h.box.Open(keyRow.SecretEnc)
	_, client, _ := h.eng.clientFor(ctx, h.host.ID)
	if _, err := client.GatewayChat(ctx, endUser, host.ChatRequest{Model: it.SmokeModel, Prompt: "hi", MaxTokens: 1}); err == nil {
		t.Fatal("the gateway answered with a key out of quota")
	}
	_, checks := h.verifyNow(t)
	c := checks[it.ID]
	if a := h.hostAccount(t, c); a.Status != "error" || a.Schedulable {
		t.Fatalf("host account after the gateway's 402: %+v", a)
	}
	if c.Status != store.HealthFailing || c.Class != "no_quota" || c.Action != "" || c.HostView.Status != "error" {
		t.Fatalf("check while failing: %+v", c)
	}
	if a := h.hostAccount(t, c); a.Status != "error" {
		t.Fatal("an account whose key still fails was re-enabled")
	}

	h.up.SetMode(key, upstreamsim.ModeOK)
	_, checks = h.verifyNow(t)
	c = checks[it.ID]
	if c.Action != store.ActionRecovered || strings.Join(c.ActionDetail.Calls, ",") != "clear_error,set_schedulable" ||
		c.ActionDetail.Proven == nil || !*c.ActionDetail.Proven {
		t.Fatalf("recovery: %+v", c)
	}
	if a := h.hostAccount(t, c); a.Status != "active" || !a.Schedulable {
		t.Fatalf("host account after recovery: %+v", a)
	}
	row, _ := h.store.GetResource(ctx, c.ResourceID)
	if acts, _ := row.Details["health"].(map[string]any)["actions"].([]any); len(acts) != 1 {
		t.Fatalf("ledger actions: %v", row.Details)
	}
}

// Without the opt-ins nothing is changed on the host; the verdict and the reason say what
// would be safe.
func TestReverifyChangesNothingWithoutOptIn(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	key := "sk-rv-optout-0000000000000abcd"
	_, items := h.submit(ModeSelfService, itemSpec{provider: "kimi", key: key, mode: upstreamsim.ModeOK, models: []string{"kimi-k2.6"}})
	it := h.driveReady(t, items)[0]
	h.up.SetMode(key, upstreamsim.ModeInvalid)
	_, checks := h.verifyNow(t)
	c := checks[it.ID]
	if c.Status != store.HealthFailing || c.Class != "invalid_key" || c.Action != "" {
		t.Fatalf("check: %+v", c)
	}
	if a := h.hostAccount(t, c); !a.Schedulable {
		t.Fatal("parked without the opt-in")
	}
}

// A check that is delivered twice records once; an account whose item is being retried is
// skipped, not checked.
func TestReverifyCheckIsIdempotent(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	_, items := h.submit(ModeSelfService, specs("idem", 2)...)
	items = h.driveReady(t, items)
	ctx := context.Background()
	run, err := h.store.StartVerifyRun(ctx, h.host.ID, "", time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	checks, err := h.eng.PlanVerifyRun(ctx, run, 10*time.Minute)
	if err != nil || len(checks) != 2 {
		t.Fatalf("plan: %d %v", len(checks), err)
	}
	if !checks[1].DueAt.After(checks[0].DueAt) || checks[1].DueAt.Sub(run.StartedAt) != 5*time.Minute {
		t.Fatalf("due times not spread: %v %v", checks[0].DueAt, checks[1].DueAt)
	}
	// The second item is retried meanwhile.
	if _, err := h.store.DB.NewUpdate().Model((*store.Item)(nil)).Set("status = ?", store.ItemProbing).Where("id = ?", items[1].ID).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		for _, c := range checks {
			if _, err := h.eng.VerifyAccount(ctx, c.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, _ := h.store.GetVerifyRun(ctx, run.ID)
	if got.Status != store.VerifyCompleted || got.AccountsChecked != 2 || got.Healthy != 1 || !strings.Contains(got.Summary, "1 skipped") {
		t.Fatalf("run %+v", got)
	}
	if hist, _ := h.store.AccountHistory(ctx, items[0].ID, 10); len(hist) != 1 {
		t.Fatalf("history after a repeated check: %d rows", len(hist))
	}
}

// The host's view comes from the paged listing: planning a run of n accounts costs a few
// list calls, not one GET per account.
func TestReverifyPlansByListing(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	_, items := h.submit(ModeSelfService, specs("lst", 30)...)
	h.driveAll(items, 4)
	ctx := context.Background()
	run, err := h.store.StartVerifyRun(ctx, h.host.ID, "", time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	h.hs.ResetRequests()
	checks, err := h.eng.PlanVerifyRun(ctx, run, 0)
	if err != nil || len(checks) != 30 {
		t.Fatalf("plan: %d %v", len(checks), err)
	}
	if _, admin := h.hs.Requests(); admin > 3 {
		t.Fatalf("planning 30 accounts took %d admin calls", admin)
	}
	for _, c := range checks {
		if !c.HostView.Present || c.HostView.Status != "active" {
			t.Fatalf("host view %+v", c.HostView)
		}
	}
}

// An operator who undoes a parking keeps the key enabled: the next runs leave it alone
// while it still fails, until it is seen healthy; after that, parking applies again.
func TestReverifyUndoParkHoldsUntilHealthy(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	key := "sk-rv-undopark-00000000000abcd"
	_, items := h.submit(ModeSelfService, itemSpec{provider: "kimi", key: key, mode: upstreamsim.ModeOK, models: []string{"kimi-k2.6"}})
	it := h.driveReady(t, items)[0]
	h.settings(t, true, true, 0)
	ctx := context.Background()
	h.up.SetMode(key, upstreamsim.ModeInvalid)
	_, checks := h.verifyNow(t)
	parked := checks[it.ID]
	if parked.Action != store.ActionParked {
		t.Fatalf("not parked: %+v", parked)
	}
	if ok, _ := h.store.SetCheckUndo(ctx, parked.ID, "", store.UndoQueued, ""); !ok {
		t.Fatal("undo not queued")
	}
	if err := h.eng.UndoCheck(ctx, parked.ID); err != nil {
		t.Fatal(err)
	}
	if a := h.hostAccount(t, parked); !a.Schedulable {
		t.Fatal("undoing the parking left the account unschedulable")
	}
	_, checks = h.verifyNow(t)
	if c := checks[it.ID]; c.Action != "" || !strings.Contains(c.Reason, "on hold") || c.Status != store.HealthFailing {
		t.Fatalf("a held account was touched: %+v", c)
	}
	if hl, _ := h.store.GetAccountHealth(ctx, it.ID); !hl.Hold || hl.Parked {
		t.Fatalf("marks %+v", hl)
	}
	h.up.SetMode(key, upstreamsim.ModeOK)
	_, checks = h.verifyNow(t)
	if c := checks[it.ID]; c.Status != store.HealthHealthy {
		t.Fatalf("healthy again: %+v", c)
	}
	if hl, _ := h.store.GetAccountHealth(ctx, it.ID); hl.Hold {
		t.Fatal("the hold outlived a healthy check")
	}
	h.up.SetMode(key, upstreamsim.ModeInvalid)
	_, checks = h.verifyNow(t)
	if c := checks[it.ID]; c.Action != store.ActionParked {
		t.Fatalf("parking did not apply again after the hold: %+v", c)
	}
}
