package jobs

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cn-relay-manager/cn-relay-manager/internal/notify"
	"github.com/cn-relay-manager/cn-relay-manager/internal/pipeline"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// receiver is a webhook endpoint that counts deliveries per delivery ID and answers with
// the statuses it is given, in turn (then 200).
type receiver struct {
	mu       sync.Mutex
	answers  []int
	got      map[string]int
	bodies   []string
	srv      *httptest.Server
	verified int
	secret   string
}

func newReceiver(t *testing.T, secret string, answers ...int) *receiver {
	r := &receiver{answers: answers, got: map[string]int{}, secret: secret}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		status := 200
		if len(r.answers) > 0 {
			status, r.answers = r.answers[0], r.answers[1:]
		}
		if status == 200 {
			r.got[req.Header.Get(notify.HeaderDelivery)]++
			r.bodies = append(r.bodies, string(body))
			if r.secret != "" && notify.VerifyGeneric(r.secret, req.Header, body, time.Now(), time.Minute) == nil {
				r.verified++
			}
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, v := range r.got {
		out[k] = v
	}
	return out
}

type accountsFixture struct {
	h    *AccountHandlers
	st   *store.Store
	box  *secret.Box
	host *store.Host
	ins  *asynq.Inspector
}

func newAccountsFixture(t *testing.T) *accountsFixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "acc.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	host := &store.Host{Name: "prod", AdminURL: "http://x", PublicURL: "http://x", AuthKind: "api_key"}
	if err := st.CreateHost(ctx, host); err != nil {
		t.Fatal(err)
	}
	box, _ := secret.NewBox("jobs-test-master-key-00")
	q, ins := newQueue(t)
	h := &AccountHandlers{Store: st, Queue: q, Box: box,
		Policy: notify.Policy{Initial: time.Millisecond, MaxDelay: time.Millisecond, Rand: func() float64 { return 0 }}}
	return &accountsFixture{h: h, st: st, box: box, host: host, ins: ins}
}

func (f *accountsFixture) webhook(t *testing.T, url, secretValue string, events ...string) *store.Webhook {
	t.Helper()
	u, _ := f.box.Seal(url)
	w := &store.Webhook{HostID: f.host.ID, Format: "generic", URLEnc: u, URLShown: notify.RedactURL(url), Events: events}
	if secretValue != "" {
		w.SecretEnc, _ = f.box.Seal(secretValue)
	}
	if err := f.st.CreateWebhook(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	return w
}

func failingEvent(id string) store.Event {
	ev := notify.Event{ID: id, Type: notify.AccountFailing, At: time.Now(), Host: "prod",
		Account: &notify.Account{Name: "kimi-…abcd crm-x", Class: "no_quota", Health: "failing"}}
	b, _ := json.Marshal(ev)
	return store.Event{ID: id, Type: string(ev.Type), Payload: b}
}

// A delivery the receiver refuses for a while is retried by the policy and arrives once;
// a second attempt task for a delivered row sends nothing; the signature verifies.
func TestDeliverRetriesThenOnce(t *testing.T) {
	f := newAccountsFixture(t)
	ctx := context.Background()
	rcv := newReceiver(t, "sign-me-0123456789", 503, 429)
	f.webhook(t, rcv.srv.URL+"/hooks/TOKEN123", "sign-me-0123456789")
	rows, err := f.st.AddEvent(ctx, f.host.ID, failingEvent("account_failing:c1"))
	if err != nil || len(rows) != 1 {
		t.Fatalf("queued %v %v", rows, err)
	}
	id := rows[0].ID
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := f.h.Deliver(ctx, id); err != nil {
			t.Fatal(err)
		}
		if rcv.counts()["account_failing:c1"] == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond) // the policy's next attempt is a millisecond away
	}
	for i := 0; i < 3; i++ {
		if err := f.h.Deliver(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if got := rcv.counts(); got["account_failing:c1"] != 1 || len(got) != 1 {
		t.Fatalf("receiver got %v", got)
	}
	if rcv.verified != 1 {
		t.Fatal("the signature did not verify")
	}
	var row store.OutboxRow
	if err := f.st.DB.NewSelect().Model(&row).Where("id = ?", id).Scan(ctx); err != nil {
		t.Fatal(err)
	}
	if row.State != store.OutboxDelivered || row.Attempts != 3 {
		t.Fatalf("row %+v", row)
	}
	if strings.Contains(row.LastError, "TOKEN123") {
		t.Fatalf("the error names the webhook's token: %s", row.LastError)
	}
	// Each failed attempt scheduled the next one as its own task.
	scheduled, _ := f.ins.ListScheduledTasks(QueueName)
	pending, _ := f.ins.ListPendingTasks(QueueName)
	if len(scheduled)+len(pending) < 2 {
		t.Fatalf("retries were not enqueued: %d scheduled, %d pending", len(scheduled), len(pending))
	}
}

// A receiver that refuses for good (a 4xx) gets one attempt; the row is failed.
func TestDeliverPermanentFailure(t *testing.T) {
	f := newAccountsFixture(t)
	ctx := context.Background()
	rcv := newReceiver(t, "", 400)
	f.webhook(t, rcv.srv.URL+"/hooks/x", "")
	rows, _ := f.st.AddEvent(ctx, f.host.ID, failingEvent("account_failing:c2"))
	if err := f.h.Deliver(ctx, rows[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := f.h.Deliver(ctx, rows[0].ID); err != nil {
		t.Fatal(err)
	}
	counts, _ := f.st.OutboxCounts(ctx)
	if counts[store.OutboxFailed] != 1 {
		t.Fatalf("counts %v", counts)
	}
}

// The upkeep announces each finished batch once, to the webhooks that take it, however
// often it runs.
func TestUpkeepAnnouncesFinishedBatchOnce(t *testing.T) {
	f := newAccountsFixture(t)
	ctx := context.Background()
	rcv := newReceiver(t, "")
	f.webhook(t, rcv.srv.URL+"/all", "")
	f.webhook(t, rcv.srv.URL+"/recoveries", "", "recovery_done")
	b := &store.Batch{HostID: f.host.ID, Mode: "self_service", Name: "october"}
	items := []*store.Item{{Name: "a", BaseURL: "http://u", APIKeyEnc: "v1:x", KeyMasked: "m", KeyFingerprint: "f1", Status: store.ItemReady},
		{Name: "b", BaseURL: "http://u", APIKeyEnc: "v1:x", KeyMasked: "m", KeyFingerprint: "f2", Status: store.ItemFailed, FailureClass: "no_quota"}}
	if err := f.st.CreateBatch(ctx, b, items); err != nil {
		t.Fatal(err)
	}
	if err := f.st.RefreshBatchStatus(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := f.h.Upkeep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var rows []store.OutboxRow
	if err := f.st.DB.NewSelect().Model(&rows).Scan(ctx); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].EventType != "batch_finished" {
		t.Fatalf("outbox %+v", rows)
	}
	if err := f.h.Deliver(ctx, rows[0].ID); err != nil {
		t.Fatal(err)
	}
	var ev notify.Event
	if err := json.Unmarshal([]byte(rcv.bodies[0]), &ev); err != nil || ev.Batch == nil || ev.Batch.Ready != 1 || ev.Batch.Failed != 1 ||
		ev.Batch.Classes["no_quota"] != 1 || ev.Host != "prod" {
		t.Fatalf("delivered %s (%v)", rcv.bodies[0], err)
	}
}

// Period is the time to the next run of the spec.
func TestPeriod(t *testing.T) {
	at := time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC)
	for spec, want := range map[string]time.Duration{"@every 10m": 10 * time.Minute, "0 * * * *": time.Hour, "*/5 * * * *": 5 * time.Minute} {
		if got, err := Period(spec, at); err != nil || got != want {
			t.Errorf("%s: %v %v, want %v", spec, got, err, want)
		}
	}
	if _, err := Period("every hour", at); err == nil {
		t.Error("a bad spec was accepted")
	}
}

// fakeVerifier records what the handlers asked for.
type fakeVerifier struct {
	mu      sync.Mutex
	planned []string
	checks  []*store.AccountCheck
	st      *store.Store
}

func (v *fakeVerifier) PlanVerifyRun(ctx context.Context, run *store.VerifyRun, spread time.Duration) ([]*store.AccountCheck, error) {
	v.mu.Lock()
	v.planned = append(v.planned, run.ID)
	v.mu.Unlock()
	var out []*store.AccountCheck
	for i, c := range v.checks {
		cc := *c
		cc.ID = ""
		cc.DueAt = run.StartedAt.Add(time.Duration(int64(spread) * int64(i) / int64(len(v.checks))))
		out = append(out, &cc)
	}
	return out, v.st.AddChecks(ctx, run, out)
}

func (v *fakeVerifier) VerifyAccount(context.Context, string) (*pipeline.VerifyOutcome, error) {
	return &pipeline.VerifyOutcome{}, nil
}
func (v *fakeVerifier) UndoCheck(context.Context, string) error { return nil }

// A periodic slot plans one run per host however often its task comes, schedules the
// checks across the period, and a slot task delivered again only re-schedules.
func TestVerifySlotPlansOnce(t *testing.T) {
	f := newAccountsFixture(t)
	ctx := context.Background()
	b := &store.Batch{HostID: f.host.ID, Mode: "self_service"}
	var items []*store.Item
	for i := 0; i < 4; i++ {
		items = append(items, &store.Item{Name: "i", BaseURL: "http://u", APIKeyEnc: "v1:x", KeyMasked: "m", KeyFingerprint: "f" + string(rune('a'+i)), Status: store.ItemReady})
	}
	if err := f.st.CreateBatch(ctx, b, items); err != nil {
		t.Fatal(err)
	}
	v := &fakeVerifier{st: f.st}
	for _, it := range items {
		v.checks = append(v.checks, &store.AccountCheck{BatchID: b.ID, ItemID: it.ID})
	}
	f.h.Verifier, f.h.Spec = v, "@every 10m"
	f.h.Now = func() time.Time { return time.Now().UTC() }
	slot := time.Now().UTC().Truncate(time.Minute).Format("200601021504")
	task := func() *asynq.Task {
		p, _ := json.Marshal(VerifyPayload{HostID: f.host.ID, Slot: slot, PeriodS: 600})
		return asynq.NewTask(TypeVerifyRun, p)
	}
	for i := 0; i < 3; i++ {
		if err := f.h.handleRun(ctx, task()); err != nil {
			t.Fatal(err)
		}
	}
	if len(v.planned) != 1 {
		t.Fatalf("planned %d times", len(v.planned))
	}
	scheduled, _ := f.ins.ListScheduledTasks(QueueName)
	pending, _ := f.ins.ListPendingTasks(QueueName)
	if len(scheduled)+len(pending) != 4 {
		t.Fatalf("%d scheduled + %d pending checks, want 4", len(scheduled), len(pending))
	}
	var last time.Time
	for _, s := range scheduled {
		if s.NextProcessAt.After(last) {
			last = s.NextProcessAt
		}
	}
	// Spread over 80 % of the 10-minute period: the last of 4 is due 6 minutes in.
	if d := time.Until(last); d < 5*time.Minute || d > 7*time.Minute {
		t.Fatalf("the last check is due in %s", d)
	}
	// The tick enqueues one verify-run per host with accounts per slot.
	other := &store.Host{Name: "empty", AdminURL: "http://y", PublicURL: "http://y", AuthKind: "api_key"}
	if err := f.st.CreateHost(ctx, other); err != nil {
		t.Fatal(err)
	}
	id := "1"
	if _, err := f.st.EnsureIntent(ctx, &store.Resource{HostID: f.host.ID, BatchID: b.ID, ItemID: items[0].ID, Type: store.TypeAccount,
		Name: "crm-a", HostResourceID: &id, State: store.ResourceCreated}); err != nil {
		t.Fatal(err)
	}
	if err := f.h.handleTick(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.h.handleTick(ctx, nil); err != nil {
		t.Fatal(err)
	}
	pending, _ = f.ins.ListPendingTasks(QueueName)
	runs := 0
	for _, p := range pending {
		if p.Type == TypeVerifyRun {
			runs++
		}
	}
	if runs != 1 {
		t.Fatalf("%d verify-run tasks after two ticks", runs)
	}
}
