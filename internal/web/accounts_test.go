package web

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/cn-relay-manager/cn-relay-manager/internal/accounts"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

type fakeAccountActions struct {
	f        *fakeActions
	st       *store.Store
	settings []accounts.SettingsRequest
	hooks    []accounts.WebhookRequest
}

func (a *fakeAccountActions) RunNow(_ context.Context, hostID string, _ time.Duration) (*store.VerifyRun, error) {
	a.f.rec("verify", hostID)
	return &store.VerifyRun{ID: "run", HostID: hostID, Status: store.VerifyRunning}, nil
}
func (a *fakeAccountActions) Undo(_ context.Context, checkID string) (*store.AccountCheck, error) {
	a.f.rec("undo", checkID)
	return &store.AccountCheck{ID: checkID, UndoState: store.UndoQueued}, nil
}
func (a *fakeAccountActions) PutSettings(_ context.Context, hostID string, req accounts.SettingsRequest) (*accounts.Settings, error) {
	a.f.rec("settings", hostID)
	a.settings = append(a.settings, req)
	return &accounts.Settings{}, nil
}
func (a *fakeAccountActions) AddWebhook(ctx context.Context, hostID string, req accounts.WebhookRequest) (*store.Webhook, error) {
	a.f.rec("webhook", hostID)
	a.hooks = append(a.hooks, req)
	return &store.Webhook{ID: "w", HostID: hostID, Format: req.Format, URLShown: "https://hooks.example.com"}, nil
}
func (a *fakeAccountActions) DeleteWebhook(_ context.Context, id string) error {
	a.f.rec("webhookdelete", id)
	return nil
}
func (a *fakeAccountActions) TestWebhook(_ context.Context, id, _ string) (*accounts.TestResult, error) {
	a.f.rec("webhooktest", id)
	return &accounts.TestResult{Delivered: true, Attempts: 1}, nil
}

// The accounts page of a host: health with class, balance with currency and time, last
// check, the history sparkline (inline SVG), runs, settings and webhooks (the URL's token
// never shown); its forms need the session's CSRF token, destructive ones a confirmation.
func TestAccountsPages(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	acts := &fakeAccountActions{f: f.acts, st: f.st}
	h := &Handler{Store: f.st, Actions: f.acts, Accounts: acts, Token: testToken, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	f.app = fiber.New()
	h.Mount(f.app)

	run, err := f.st.StartVerifyRun(ctx, f.host.ID, "", time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	chk := &store.AccountCheck{BatchID: f.done.ID, ItemID: f.items[0].ID, HostAccountID: "9", AccountName: "kimi-…wxyz crm-june", Provider: "kimi", DueAt: time.Now()}
	if err := f.st.AddChecks(ctx, run, []*store.AccountCheck{chk}); err != nil {
		t.Fatal(err)
	}
	amount, now := 3.25, time.Now().UTC()
	chk.Status, chk.Class, chk.Direct, chk.Reason = store.HealthFailing, "no_quota", "failed", "direct check: no_quota: 402 <b>Insufficient</b>"
	chk.HostView = store.HostAccountView{Present: true, Status: "active", Schedulable: true, ReadAt: now}
	chk.BalanceAmount, chk.BalanceCurrency, chk.BalanceAt, chk.BalanceLow = &amount, "CNY", &now, true
	chk.Action, chk.ActionDetail = store.ActionParked, store.CheckAction{Calls: []string{"set_unschedulable"}, Undo: "set_schedulable:true"}
	hl := &store.AccountHealth{ItemID: chk.ItemID, HostID: f.host.ID, BatchID: f.done.ID, HostAccountID: "9", AccountName: chk.AccountName,
		Provider: "kimi", KeyMasked: "sk-abc...wxyz", Status: store.HealthFailing, Class: "no_quota", Reason: chk.Reason, Since: now,
		Parked: true, Recent: "hhdf", BalanceAmount: &amount, BalanceCurrency: "CNY", BalanceAt: &now, BalanceLow: true, LastCheckID: chk.ID,
		LastAction: store.ActionParked, CheckedAt: now}
	if _, _, err := f.st.FinishCheck(ctx, chk, hl); err != nil {
		t.Fatal(err)
	}
	w := &store.Webhook{HostID: f.host.ID, Format: "wecom", URLEnc: "v1:SEALED-HOOK-URL", URLShown: "https://qyapi.weixin.qq.com", Lang: "zh"}
	if err := f.st.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}

	cookie := f.login(t)
	ck := map[string]string{"Cookie": cookie}
	page := f.do(t, "GET", "/hosts/"+f.host.ID+"/accounts", nil, ck)
	if page.code != 200 {
		t.Fatalf("accounts page: %d %s", page.code, page.body)
	}
	for _, want := range []string{"kimi-…wxyz crm-june", "no_quota", "3.25 CNY", "<svg class=\"spark\"", `fill="#b42318"`, "https://qyapi.weixin.qq.com",
		"Re-verify now", "Safe auto-recovery", "&lt;b&gt;Insufficient&lt;/b&gt;", "parked"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("accounts page lacks %q", want)
		}
	}
	if strings.Contains(page.body, "SEALED-HOOK-URL") || strings.Contains(page.body, "<b>Insufficient") {
		t.Error("the page shows a sealed value or unescaped host text")
	}
	if hp := f.do(t, "GET", "/hosts/"+f.host.ID+"/accounts?status=healthy", nil, ck); strings.Contains(hp.body, "kimi-…wxyz crm-june") {
		t.Error("the healthy filter lists a failing account")
	}
	tok := csrfOf(t, page.body)
	base := "/hosts/" + f.host.ID
	if r := f.do(t, "POST", base+"/accounts/verify", url.Values{}, ck); r.code != fiber.StatusForbidden || f.acts.n("verify") != 0 {
		t.Fatalf("verify without csrf: %d", r.code)
	}
	if r := f.do(t, "POST", base+"/accounts/verify", url.Values{"csrf": {tok}}, ck); r.code != fiber.StatusSeeOther || f.acts.n("verify") != 1 {
		t.Fatalf("verify: %d", r.code)
	}
	r := f.do(t, "POST", base+"/accounts/settings", url.Values{"csrf": {tok}, "auto_recover": {"on"}, "low_balance": {"12.5"}}, ck)
	if r.code != fiber.StatusSeeOther || len(acts.settings) != 1 || !*acts.settings[0].AutoRecover || *acts.settings[0].ParkFailing || *acts.settings[0].LowBalance != 12.5 {
		t.Fatalf("settings: %d %+v", r.code, acts.settings)
	}
	r = f.do(t, "POST", base+"/webhooks", url.Values{"csrf": {tok}, "format": {"slack"}, "url": {"https://hooks.slack.com/services/T/B/x"},
		"event_account_failing": {"on"}}, ck)
	if r.code != fiber.StatusSeeOther || len(acts.hooks) != 1 || strings.Join(acts.hooks[0].Events, ",") != "account_failing" {
		t.Fatalf("webhook add: %d %+v", r.code, acts.hooks)
	}
	if r := f.do(t, "POST", base+"/webhooks/"+w.ID+"/test", url.Values{"csrf": {tok}}, ck); r.code != fiber.StatusSeeOther || f.acts.n("webhooktest") != 1 {
		t.Fatalf("webhook test: %d", r.code)
	}
	// Deleting a webhook and undoing an action need a confirmation.
	if r := f.do(t, "POST", base+"/webhooks/"+w.ID+"/delete", url.Values{"csrf": {tok}}, ck); r.code != fiber.StatusSeeOther || f.acts.n("webhookdelete") != 0 {
		t.Fatalf("unconfirmed delete: %d", r.code)
	}
	conf := f.do(t, "GET", base+"/webhooks/"+w.ID+"/delete", nil, ck)
	if !strings.Contains(conf.body, `name="confirm" value="yes"`) {
		t.Fatal("no confirm page for the delete")
	}
	if r := f.do(t, "POST", base+"/webhooks/"+w.ID+"/delete", url.Values{"csrf": {tok}, "confirm": {"yes"}}, ck); r.code != fiber.StatusSeeOther || f.acts.n("webhookdelete") != 1 {
		t.Fatalf("delete: %d", r.code)
	}
	acct := f.do(t, "GET", base+"/accounts/"+chk.ItemID, nil, ck)
	if acct.code != 200 || !strings.Contains(acct.body, chk.ID) || !strings.Contains(acct.body, base+"/checks/"+chk.ID+"/undo") {
		t.Fatalf("account page: %d", acct.code)
	}
	undo := f.do(t, "GET", base+"/checks/"+chk.ID+"/undo", nil, ck)
	if !strings.Contains(undo.body, "schedulable again") {
		t.Fatalf("undo confirm page: %s", undo.body)
	}
	if r := f.do(t, "POST", base+"/checks/"+chk.ID+"/undo", url.Values{"csrf": {tok}, "confirm": {"yes"}}, ck); r.code != fiber.StatusSeeOther || f.acts.n("undo") != 1 {
		t.Fatalf("undo: %d", r.code)
	}
	if r := f.do(t, "GET", base+"/accounts/nope", nil, ck); r.code != 404 {
		t.Fatalf("unknown account: %d", r.code)
	}
	if r := f.do(t, "GET", "/hosts/nope/accounts", nil, ck); r.code != 404 {
		t.Fatalf("unknown host: %d", r.code)
	}
	zh := f.do(t, "GET", base+"/accounts?lang=zh", nil, ck)
	if !strings.Contains(zh.body, "立即复核") || !strings.Contains(zh.body, "异常") {
		t.Error("the Chinese accounts page is not translated")
	}
}
