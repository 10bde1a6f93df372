package api

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/accounts"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
	"github.com/cn-relay-manager/cn-relay-manager/jobs"
)

func accountsService(st *store.Store, box *secret.Box) *accounts.Service {
	return &accounts.Service{Store: st, Box: box, Queue: &jobs.Queue{Client: &fakeEnqueuer{}}}
}

// exerciseAccounts drives every route of the work after the import through the contract
// test, with successes and errors, on a host with one ready item.
func exerciseAccounts(t *testing.T, c *contract, st *store.Store, hostID, batchID, itemID string) {
	t.Helper()
	ctx := context.Background()
	var received atomic.Int32
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		received.Add(1)
	}))
	defer rcv.Close()

	// Settings and webhooks.
	c.do(exchange{method: "GET", path: "/api/v1/hosts/" + hostID + "/account-settings", want: 200})
	c.do(exchange{method: "GET", path: "/api/v1/hosts/nope/account-settings", want: 404})
	s := c.do(exchange{method: "PUT", path: "/api/v1/hosts/" + hostID + "/account-settings", want: 200,
		body: `{"auto_recover":true,"park_failing":true,"low_balance":10}`})
	if s["auto_recover"] != true || s["low_balance"] != 10.0 {
		t.Errorf("settings %v", s)
	}
	c.do(exchange{method: "PUT", path: "/api/v1/hosts/" + hostID + "/account-settings", want: 400, badInput: true, body: `{"low_balance":-1}`})
	c.do(exchange{method: "PUT", path: "/api/v1/hosts/nope/account-settings", want: 404, body: `{"park_failing":false}`})
	hookURL := rcv.URL + "/hooks/SECRETTOKEN123"
	w := c.do(exchange{method: "POST", path: "/api/v1/hosts/" + hostID + "/webhooks", want: 201,
		body: `{"name":"ops","format":"generic","url":"` + hookURL + `","secret":"SIGNINGSECRET99","events":["account_failing"]}`})
	hookID, _ := w["id"].(string)
	if w["signed"] != true || strings.Contains(w["url"].(string), "SECRETTOKEN") {
		t.Errorf("webhook %v", w)
	}
	e := c.do(exchange{method: "POST", path: "/api/v1/hosts/" + hostID + "/webhooks", want: 400, badInput: true, semantic: true,
		body: `{"format":"wecom","url":"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=x","secret":"s"}`})
	if field(e, "error", "field") != "secret" {
		t.Errorf("a signed WeCom webhook names %v", field(e, "error", "field"))
	}
	e = c.do(exchange{method: "POST", path: "/api/v1/hosts/" + hostID + "/webhooks", want: 400, badInput: true, body: `{"format":"teams","url":"https://x"}`})
	if field(e, "error", "field") != "format" {
		t.Errorf("an unknown format names %v", field(e, "error", "field"))
	}
	c.do(exchange{method: "POST", path: "/api/v1/hosts/nope/webhooks", want: 404, body: `{"format":"slack","url":"https://hooks.slack.com/services/a"}`})
	got := c.do(exchange{method: "GET", path: "/api/v1/hosts/" + hostID + "/account-settings", want: 200})
	if hooks, _ := got["webhooks"].([]any); len(hooks) != 1 {
		t.Errorf("webhooks %v", got["webhooks"])
	}
	res := c.do(exchange{method: "POST", path: "/api/v1/webhooks/" + hookID + "/test", want: 200, body: `{"event":"balance_low"}`})
	if res["delivered"] != true || received.Load() != 1 {
		t.Errorf("test message: %v (received %d)", res, received.Load())
	}
	c.do(exchange{method: "POST", path: "/api/v1/webhooks/" + hookID + "/test", want: 400, badInput: true, body: `{"event":"nope"}`})
	c.do(exchange{method: "POST", path: "/api/v1/webhooks/nope/test", want: 404})

	// A run asked for, and a second one while it runs.
	run := c.do(exchange{method: "POST", path: "/api/v1/hosts/" + hostID + "/verify", want: 202, body: `{"spread_s":60}`})
	runID, _ := run["id"].(string)
	e = c.do(exchange{method: "POST", path: "/api/v1/hosts/" + hostID + "/verify", want: 409})
	if field(e, "error", "code") != "run_active" {
		t.Errorf("second run: %v", e)
	}
	c.do(exchange{method: "POST", path: "/api/v1/hosts/nope/verify", want: 404})
	c.do(exchange{method: "POST", path: "/api/v1/hosts/" + hostID + "/verify", want: 400, badInput: true, body: `{"spread_s":-5}`})
	c.do(exchange{method: "GET", path: "/api/v1/verify-runs?host_id=" + hostID + "&limit=5", want: 200})
	c.do(exchange{method: "GET", path: "/api/v1/verify-runs?limit=0", want: 400, badInput: true})
	c.do(exchange{method: "GET", path: "/api/v1/verify-runs/" + runID, want: 200})
	c.do(exchange{method: "GET", path: "/api/v1/verify-runs/nope", want: 404})

	// The worker checks the account, parks it and records everything, as VerifyAccount does.
	vr, _ := st.GetVerifyRun(ctx, runID)
	chk := &store.AccountCheck{BatchID: batchID, ItemID: itemID, HostAccountID: "7", AccountName: "kimi-…abcd crm-x", Provider: "kimi", DueAt: time.Now()}
	if err := st.AddChecks(ctx, vr, []*store.AccountCheck{chk}); err != nil {
		t.Fatal(err)
	}
	amount, now := 0.0, time.Now().UTC()
	chk.Status, chk.Class, chk.Direct, chk.Reason = store.HealthFailing, "no_quota", "failed", "direct check: no_quota: 402; set unschedulable"
	chk.HostView = store.HostAccountView{Present: true, Status: "active", Schedulable: true, ReadAt: now}
	chk.BalanceAmount, chk.BalanceCurrency, chk.BalanceAt, chk.BalanceSource, chk.BalanceLow = &amount, "CNY", &now, "/v1/users/me/balance", true
	chk.Action, chk.ActionDetail = store.ActionParked, store.CheckAction{Calls: []string{"set_unschedulable"}, Undo: "set_schedulable:true"}
	chk.Evidence = []store.Exchange{{Target: "upstream", Method: "POST", Path: "/v1/chat/completions", Status: 429, LatencyMS: 3, At: now}}
	h := &store.AccountHealth{ItemID: itemID, HostID: hostID, BatchID: batchID, HostAccountID: "7", AccountName: chk.AccountName, Provider: "kimi",
		KeyMasked: "sk-…abcd", Status: store.HealthFailing, Class: "no_quota", Since: now, FailStreak: 1, Parked: true, Recent: "hf",
		BalanceAmount: &amount, BalanceCurrency: "CNY", BalanceAt: &now, BalanceLow: true, LastCheckID: chk.ID, LastAction: store.ActionParked, CheckedAt: now}
	if _, _, err := st.FinishCheck(ctx, chk, h); err != nil {
		t.Fatal(err)
	}
	list := c.do(exchange{method: "GET", path: "/api/v1/hosts/" + hostID + "/accounts?failing=true&page=1&page_size=10", want: 200})
	if items, _ := list["items"].([]any); len(items) != 1 || list["total"] != 1.0 {
		t.Errorf("failing accounts: %v", list)
	}
	c.do(exchange{method: "GET", path: "/api/v1/hosts/" + hostID + "/accounts?status=healthy", want: 200})
	c.do(exchange{method: "GET", path: "/api/v1/hosts/" + hostID + "/accounts?status=sick", want: 400, badInput: true})
	c.do(exchange{method: "GET", path: "/api/v1/hosts/" + hostID + "/accounts?failing=true&status=healthy", want: 400, badInput: true, semantic: true})
	c.do(exchange{method: "GET", path: "/api/v1/hosts/nope/accounts", want: 404})
	hist := c.do(exchange{method: "GET", path: "/api/v1/accounts/" + itemID + "/checks?limit=10", want: 200})
	if items, _ := hist["items"].([]any); len(items) != 1 {
		t.Errorf("history: %v", hist)
	}
	c.do(exchange{method: "GET", path: "/api/v1/accounts/nope/checks", want: 404})
	c.do(exchange{method: "GET", path: "/api/v1/accounts/" + itemID + "/checks?limit=0", want: 400, badInput: true})
	u := c.do(exchange{method: "POST", path: "/api/v1/account-checks/" + chk.ID + "/undo", want: 202})
	if u["undo_state"] != "queued" {
		t.Errorf("undo: %v", u)
	}
	e = c.do(exchange{method: "POST", path: "/api/v1/account-checks/" + chk.ID + "/undo", want: 409})
	if field(e, "error", "code") != "already_undone" {
		t.Errorf("second undo: %v", e)
	}
	c.do(exchange{method: "POST", path: "/api/v1/account-checks/nope/undo", want: 404})

	c.do(exchange{method: "DELETE", path: "/api/v1/webhooks/" + hookID, want: 204})
	c.do(exchange{method: "DELETE", path: "/api/v1/webhooks/" + hookID, want: 404})
}
