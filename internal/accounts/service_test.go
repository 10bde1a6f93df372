package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/batch"
	"github.com/cn-relay-manager/cn-relay-manager/internal/batch/request"
	"github.com/cn-relay-manager/cn-relay-manager/internal/notify"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

type fakeQueue struct {
	mu    sync.Mutex
	runs  []string
	undos []string
	fail  error
}

func (q *fakeQueue) EnqueueVerifyRun(_ context.Context, run *store.VerifyRun) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.runs = append(q.runs, run.ID)
	return q.fail
}

func (q *fakeQueue) EnqueueUndo(_ context.Context, id string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.undos = append(q.undos, id)
	return q.fail
}

func newService(t *testing.T) (*Service, *fakeQueue, *store.Host) {
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
	h := &store.Host{Name: "prod", AdminURL: "http://x", PublicURL: "http://x", AuthKind: "api_key"}
	if err := st.CreateHost(ctx, h); err != nil {
		t.Fatal(err)
	}
	box, _ := secret.NewBox("accounts-test-master-key")
	q := &fakeQueue{}
	return &Service{Store: st, Box: box, Queue: q}, q, h
}

func fieldOf(err error) string {
	var fe *request.FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}

// Webhook URLs and secrets are sealed at rest and never shown; bad webhooks are refused
// naming the field.
func TestAddWebhookSealsAndValidates(t *testing.T) {
	s, _, h := newService(t)
	ctx := context.Background()
	url := "https://oapi.dingtalk.com/robot/send?access_token=TOKENDING0123456789"
	w, err := s.AddWebhook(ctx, h.ID, WebhookRequest{Format: "dingtalk", URL: url, Secret: "SECdingsecret42", Events: []string{"account_failing", "account_failing"}})
	if err != nil {
		t.Fatal(err)
	}
	if w.URLShown != "https://oapi.dingtalk.com" || strings.Contains(w.URLEnc, "TOKENDING") || strings.Contains(w.SecretEnc, "SECding") ||
		len(w.Events) != 1 || w.Lang != "en" {
		t.Fatalf("webhook %+v", w)
	}
	b, _ := json.Marshal(w)
	if strings.Contains(string(b), "TOKENDING") || strings.Contains(string(b), "SECding") || !strings.Contains(string(b), `"signed":true`) {
		t.Fatalf("JSON %s", b)
	}
	var raw []string
	if err := s.Store.DB.NewSelect().TableExpr("webhooks").ColumnExpr("url_enc || secret_enc || url_shown").Scan(ctx, &raw); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(raw, ""), "TOKENDING") || strings.Contains(strings.Join(raw, ""), "SECding") {
		t.Fatal("the webhook URL or secret is stored in plain text")
	}
	if got, _ := s.Box.Open(w.URLEnc); got != url {
		t.Fatal("the sealed URL does not open to the URL")
	}
	for _, tc := range []struct {
		req   WebhookRequest
		field string
	}{
		{WebhookRequest{Format: "teams", URL: "https://x"}, "format"},
		{WebhookRequest{Format: "generic", URL: "ftp://x"}, "url"},
		{WebhookRequest{Format: "dingtalk", URL: "https://oapi.dingtalk.com/robot/send"}, "url"},
		{WebhookRequest{Format: "slack", URL: "https://hooks.slack.com/services/x", Secret: "s"}, "secret"},
		{WebhookRequest{Format: "generic", URL: "https://x", Lang: "fr"}, "lang"},
		{WebhookRequest{Format: "generic", URL: "https://x", Events: []string{"nope"}}, "events[0]"},
	} {
		if _, err := s.AddWebhook(ctx, h.ID, tc.req); fieldOf(err) != tc.field {
			t.Errorf("%+v: %v, want field %s", tc.req, err, tc.field)
		}
	}
	if _, err := s.AddWebhook(ctx, "nope", WebhookRequest{Format: "generic", URL: "https://x"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown host: %v", err)
	}
}

// The test message goes out once, signed, and the answer says what happened without the
// token.
func TestTestWebhook(t *testing.T) {
	s, _, h := newService(t)
	ctx := context.Background()
	var got []*http.Request
	var mu sync.Mutex
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
	}))
	defer ok.Close()
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(403) }))
	defer refusing.Close()
	w, _ := s.AddWebhook(ctx, h.ID, WebhookRequest{Format: "generic", URL: ok.URL + "/TOKENPATH", Secret: "sig"})
	res, err := s.TestWebhook(ctx, w.ID, "recovery_done")
	if err != nil || !res.Delivered || res.Attempts != 1 || len(got) != 1 || got[0].Header.Get(notify.HeaderEvent) != "recovery_done" ||
		got[0].Header.Get(notify.HeaderSignature) == "" {
		t.Fatalf("test: %+v %v (%d requests)", res, err, len(got))
	}
	bad, _ := s.AddWebhook(ctx, h.ID, WebhookRequest{Format: "generic", URL: refusing.URL + "/TOKENPATH"})
	res, err = s.TestWebhook(ctx, bad.ID, "")
	if err != nil || res.Delivered || !strings.Contains(res.Error, "HTTP 403") || strings.Contains(res.Error, "TOKENPATH") {
		t.Fatalf("refused test: %+v %v", res, err)
	}
	if _, err := s.TestWebhook(ctx, w.ID, "nope"); fieldOf(err) != "event" {
		t.Fatalf("bad event: %v", err)
	}
}

// Settings change field by field; a run asked for is queued, a second one refused while
// it runs; only the latest host change of an account can be undone, once.
func TestSettingsRunNowAndUndo(t *testing.T) {
	s, q, h := newService(t)
	ctx := context.Background()
	on, low := true, 25.0
	st, err := s.PutSettings(ctx, h.ID, SettingsRequest{AutoRecover: &on})
	if err != nil || !st.AutoRecover || st.ParkFailing {
		t.Fatalf("settings %+v %v", st, err)
	}
	if st, _ = s.PutSettings(ctx, h.ID, SettingsRequest{LowBalance: &low}); !st.AutoRecover || st.LowBalance != 25 {
		t.Fatalf("settings kept %+v", st)
	}
	neg := -1.0
	if _, err := s.PutSettings(ctx, h.ID, SettingsRequest{LowBalance: &neg}); fieldOf(err) != "low_balance" {
		t.Fatalf("negative threshold: %v", err)
	}
	run, err := s.RunNow(ctx, h.ID, time.Minute)
	if err != nil || run.SpreadS != 60 || len(q.runs) != 1 {
		t.Fatalf("run now: %+v %v", run, err)
	}
	var se *batch.StateError
	if _, err := s.RunNow(ctx, h.ID, 0); !errors.As(err, &se) || se.Code != "run_active" {
		t.Fatalf("second run: %v", err)
	}
	if _, err := s.RunNow(ctx, h.ID, 48*time.Hour); fieldOf(err) != "spread_s" {
		t.Fatalf("too long a spread: %v", err)
	}

	b := &store.Batch{HostID: h.ID, Mode: "none"}
	it := &store.Item{Name: "i", BaseURL: "http://u", APIKeyEnc: "v1:x", KeyMasked: "m", KeyFingerprint: "f", Status: store.ItemReady}
	if err := s.Store.CreateBatch(ctx, b, []*store.Item{it}); err != nil {
		t.Fatal(err)
	}
	// Two runs of one account: the first parked it, the second recovered it.
	var checks []*store.AccountCheck
	for i, act := range []store.CheckAction{{Calls: []string{"set_unschedulable"}, Undo: "set_schedulable:true"},
		{Calls: []string{"set_schedulable"}, Undo: "set_schedulable:false"}} {
		r := run
		if i == 1 {
			r, _ = s.Store.StartVerifyRun(ctx, h.ID, "202612071900", time.Now().Add(time.Hour), 0)
		}
		c := &store.AccountCheck{BatchID: b.ID, ItemID: it.ID, DueAt: time.Now()}
		if err := s.Store.AddChecks(ctx, r, []*store.AccountCheck{c}); err != nil {
			t.Fatal(err)
		}
		c.Status, c.Action, c.ActionDetail = store.HealthFailing, store.ActionParked, act
		if _, _, err := s.Store.FinishCheck(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
		checks = append(checks, c)
		if i == 0 {
			if err := s.Store.EndVerifyRun(ctx, run); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := s.Undo(ctx, checks[0].ID); !errors.As(err, &se) || se.Code != "not_latest" {
		t.Fatalf("undo of an older change: %v", err)
	}
	c, err := s.Undo(ctx, checks[1].ID)
	if err != nil || c.UndoState != store.UndoQueued || len(q.undos) != 1 {
		t.Fatalf("undo: %+v %v", c, err)
	}
	if _, err := s.Undo(ctx, checks[1].ID); !errors.As(err, &se) || se.Code != "already_undone" {
		t.Fatalf("second undo: %v", err)
	}
	if _, err := s.Undo(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown check: %v", err)
	}
}
