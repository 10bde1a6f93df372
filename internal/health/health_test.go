package health

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/upstream"
)

// now is just after the recorded host answers in testdata.
var now = time.Date(2026, 11, 27, 11, 56, 34, 0, time.UTC)

func recorded(t *testing.T, name string) *host.Account {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "account."+name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var a host.Account
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	return &a
}

func active() *host.Account {
	return &host.Account{ID: 7, Platform: "deepseek", Status: "active", Schedulable: true}
}

func green() *Direct { return &Direct{At: now} }

func failed(c failure.Class, msg string) *Direct {
	return &Direct{At: now, Err: &failure.Error{Class: c, Message: msg}}
}

func bal(amount float64, available bool) *upstream.Balance {
	return &upstream.Balance{ProviderID: "deepseek", Amount: amount, Currency: "CNY", Available: available, ReadAt: now}
}

func TestAssess(t *testing.T) {
	type want struct {
		status      Status
		class       failure.Class
		recover     []Action
		park        bool
		hostBlocked bool
		balanceLow  bool
		hostClass   failure.Class
		reason      []string // substrings
	}
	with := func(mod func(a *host.Account)) *host.Account {
		a := active()
		mod(a)
		return a
	}
	tests := []struct {
		name   string
		in     Input
		policy Policy
		want   want
	}{
		{name: "healthy",
			in:   Input{ProviderID: "deepseek", Direct: green(), Host: active(), Balance: bal(50, true), LowBalance: 10, Now: now},
			want: want{status: Healthy}},
		{name: "upstream starts answering 402: failing no_quota, parked",
			in: Input{ProviderID: "deepseek", Direct: failed(failure.NoQuota, "DeepSeek answered HTTP 402: Insufficient Balance"),
				Host: active(), Now: now},
			want: want{status: Failing, class: failure.NoQuota, park: true, reason: []string{"Insufficient Balance"}}},
		{name: "host already put it in error after the 402 (0.1.179: error and unschedulable): nothing to park, never recovered",
			in: Input{ProviderID: "deepseek", Direct: failed(failure.NoQuota, "402"), Host: recorded(t, "after-gateway-402"), Now: now},
			want: want{status: Failing, class: failure.NoQuota, hostBlocked: true, hostClass: failure.NoQuota,
				reason: []string{"host: status error (Payment required (402): Insufficient Balance)", "host: unschedulable"}}},
		{name: "upstream recovered, host still in error (0.1.179): clear error and make schedulable",
			in: Input{ProviderID: "deepseek", Direct: green(), Host: recorded(t, "after-gateway-402"), Now: now},
			want: want{status: Failing, class: failure.NoQuota, hostBlocked: true, hostClass: failure.NoQuota,
				recover: []Action{ClearError, SetSchedulable}, reason: []string{"safe to recover"}}},
		{name: "0.1.129 error keeps schedulable: clear error only",
			in: Input{ProviderID: "deepseek", Direct: green(), Now: now,
				Host: with(func(a *host.Account) { a.Status, a.ErrorMessage = "error", "Authentication failed (401): bad key" })},
			want: want{status: Failing, class: failure.InvalidKey, hostBlocked: true, hostClass: failure.InvalidKey, recover: []Action{ClearError}}},
		{name: "still failing with the host in error: never recovered",
			in:   Input{ProviderID: "deepseek", Direct: failed(failure.InvalidKey, "401"), Host: recorded(t, "after-gateway-401"), Now: now},
			want: want{status: Failing, class: failure.InvalidKey, hostBlocked: true, hostClass: failure.InvalidKey}},
		{name: "we parked it, upstream green again: make schedulable",
			in: Input{ProviderID: "deepseek", Direct: green(), ParkedByUs: true, Now: now,
				Host: with(func(a *host.Account) { a.Schedulable = false })},
			want: want{status: Failing, hostBlocked: true, recover: []Action{SetSchedulable}}},
		{name: "someone else paused it: left alone",
			in: Input{ProviderID: "deepseek", Direct: green(), Now: now,
				Host: with(func(a *host.Account) { a.Schedulable = false })},
			want: want{status: Failing, hostBlocked: true, reason: []string{"paused on the host by someone else"}}},
		{name: "we parked it and it still fails: stays parked, nothing to do",
			in: Input{ProviderID: "deepseek", Direct: failed(failure.KeyBanned, "suspended"), ParkedByUs: true, Now: now,
				Host: with(func(a *host.Account) { a.Schedulable = false })},
			want: want{status: Failing, class: failure.KeyBanned, hostBlocked: true}},
		{name: "disabled by an operator: left alone even when green",
			in:   Input{ProviderID: "deepseek", Direct: green(), Now: now, Host: with(func(a *host.Account) { a.Status = "disabled" })},
			want: want{status: Failing, hostBlocked: true, reason: []string{"disabled on the host by an operator"}}},
		{name: "disabled and the key is dead: not parked (already out)",
			in: Input{ProviderID: "deepseek", Direct: failed(failure.InvalidKey, "401"), Now: now,
				Host: with(func(a *host.Account) { a.Status = "disabled" })},
			want: want{status: Failing, class: failure.InvalidKey, hostBlocked: true}},
		{name: "host paused a native deepseek account for low balance; topped up since: clear the pause",
			in: Input{ProviderID: "deepseek", Direct: green(), Host: recorded(t, "deepseek-after-gateway-402"),
				Balance: bal(80, true), LowBalance: 10, Now: now},
			want: want{status: Failing, hostBlocked: true, recover: []Action{ClearTempUnschedulable},
				reason: []string{"paused until 2026-11-27T12:16:33Z (cn_balance_low: Insufficient Balance)"}}},
		{name: "host flagged the balance low and we have no reading of our own",
			in: Input{ProviderID: "deepseek", Direct: failed(failure.NoQuota, "402"), Host: recorded(t, "deepseek-after-gateway-402"), Now: now},
			want: want{status: Failing, class: failure.NoQuota, hostBlocked: true, balanceLow: true, park: true,
				reason: []string{"host's balance check flagged"}}},
		{name: "host pause for low balance and still no money: not recovered",
			in: Input{ProviderID: "deepseek", Direct: failed(failure.NoQuota, "402"), Host: recorded(t, "deepseek-after-gateway-402"),
				Balance: bal(0, false), LowBalance: 10, Now: now},
			want: want{status: Failing, class: failure.NoQuota, hostBlocked: true, balanceLow: true, park: true}},
		{name: "expired host pause and rate limit are ignored",
			in: Input{ProviderID: "deepseek", Direct: green(), Now: now.Add(time.Hour),
				Host: with(func(a *host.Account) {
					a.TempUnschedulableUntil = "2026-11-27T12:16:33.401379Z"
					a.RateLimitResetAt = "2026-11-27T11:56:19.264108Z"
				})},
			want: want{status: Healthy}},
		{name: "short host rate limit: degraded, left to expire",
			in:   Input{ProviderID: "deepseek", Direct: green(), Now: now.Add(-20 * time.Second), Host: recorded(t, "after-gateway-429")},
			want: want{status: Degraded, class: failure.RateLimited, reason: []string{"rate limited until"}}},
		{name: "a rate limit days away on a working account: cleared",
			in: Input{ProviderID: "deepseek", Direct: green(), Now: now,
				Host: with(func(a *host.Account) { a.RateLimitResetAt = now.Add(7 * 24 * time.Hour).Format(time.RFC3339) })},
			want: want{status: Failing, recover: []Action{ClearRateLimit}}},
		{name: "transient upstream trouble: degraded, not parked",
			in:   Input{ProviderID: "deepseek", Direct: failed(failure.UpstreamUnreachable, "timed out"), Host: active(), Now: now},
			want: want{status: Degraded, class: failure.UpstreamUnreachable}},
		{name: "upstream rate limit: degraded",
			in:   Input{ProviderID: "deepseek", Direct: failed(failure.RateLimited, "429"), Host: active(), Now: now},
			want: want{status: Degraded, class: failure.RateLimited}},
		{name: "model gone upstream: failing, the key is fine so not parked",
			in:   Input{ProviderID: "deepseek", Direct: failed(failure.ModelNotFound, "Model Not Exist"), Host: active(), Now: now},
			want: want{status: Failing, class: failure.ModelNotFound}},
		{name: "banned key parked",
			in:   Input{ProviderID: "deepseek", Direct: failed(failure.KeyBanned, "suspended"), Host: active(), Now: now},
			want: want{status: Failing, class: failure.KeyBanned, park: true}},
		{name: "parking waits for confirmation when asked",
			in:     Input{ProviderID: "deepseek", Direct: failed(failure.InvalidKey, "403"), Host: active(), Now: now, Confirmations: 1},
			policy: Policy{ParkAfter: 2},
			want:   want{status: Failing, class: failure.InvalidKey, reason: []string{"park after 2 consecutive failing checks (1 so far)"}}},
		{name: "confirmed: parked",
			in:     Input{ProviderID: "deepseek", Direct: failed(failure.InvalidKey, "403"), Host: active(), Now: now, Confirmations: 2},
			policy: Policy{ParkAfter: 2},
			want:   want{status: Failing, class: failure.InvalidKey, park: true}},
		{name: "low balance on a working account: degraded",
			in:   Input{ProviderID: "deepseek", Direct: green(), Host: active(), Balance: bal(3.2, true), LowBalance: 10, Now: now},
			want: want{status: Degraded, balanceLow: true, reason: []string{"balance: 3.20 CNY, below 10.00"}}},
		{name: "no threshold: a positive balance is fine",
			in:   Input{ProviderID: "deepseek", Direct: green(), Host: active(), Balance: bal(0.01, true), Now: now},
			want: want{status: Healthy}},
		{name: "provider says paid calls are refused",
			in:   Input{ProviderID: "deepseek", Direct: green(), Host: active(), Balance: bal(0, false), Now: now},
			want: want{status: Degraded, balanceLow: true, reason: []string{"refuses paid calls"}}},
		{name: "no direct check, host fine: degraded, no action",
			in:   Input{ProviderID: "deepseek", Host: active(), Now: now},
			want: want{status: Degraded, reason: []string{"direct check not run"}}},
		{name: "no direct check, host in error: failing with the host's class, never recovered",
			in:   Input{ProviderID: "deepseek", Host: recorded(t, "after-gateway-401"), Now: now},
			want: want{status: Failing, class: failure.InvalidKey, hostBlocked: true, hostClass: failure.InvalidKey}},
		{name: "gone from the host",
			in:   Input{ProviderID: "deepseek", Direct: green(), Now: now},
			want: want{status: Failing, hostBlocked: true, reason: []string{"the host no longer has this account"}}},
		{name: "gone from the host and the key is dead",
			in:   Input{ProviderID: "deepseek", Direct: failed(failure.InvalidKey, "401"), Now: now},
			want: want{status: Failing, class: failure.InvalidKey, hostBlocked: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Assess(tt.in, tt.policy)
			w := tt.want
			if v.Status != w.status || v.Class != w.class || v.Park != w.park || v.HostBlocked != w.hostBlocked ||
				v.BalanceLow != w.balanceLow || v.HostClass != w.hostClass || !slices.Equal(v.Recover, w.recover) {
				t.Errorf("got status=%s class=%q park=%v blocked=%v low=%v hostClass=%q recover=%v\nwant status=%s class=%q park=%v blocked=%v low=%v hostClass=%q recover=%v\nreason: %s",
					v.Status, v.Class, v.Park, v.HostBlocked, v.BalanceLow, v.HostClass, v.Recover,
					w.status, w.class, w.park, w.hostBlocked, w.balanceLow, w.hostClass, w.recover, v.Reason)
			}
			if v.MayRecover() != (len(w.recover) > 0) {
				t.Errorf("MayRecover = %v", v.MayRecover())
			}
			for _, s := range w.reason {
				if !strings.Contains(v.Reason, s) {
					t.Errorf("reason %q lacks %q", v.Reason, s)
				}
			}
			if v.Status != Healthy && v.Reason == "" {
				t.Errorf("%s verdict without a reason", v.Status)
			}
			// The safety rules hold in every case.
			if v.MayRecover() && (tt.in.Direct == nil || tt.in.Direct.Err != nil) {
				t.Errorf("recovery without a green direct check")
			}
			if v.Park && (tt.in.Direct == nil || !parkClasses[failure.ClassOf(tt.in.Direct.Err)]) {
				t.Errorf("parked without a dead-key direct failure")
			}
			if v.Park && v.MayRecover() {
				t.Errorf("park and recover at once")
			}
		})
	}
}

func TestHostClass(t *testing.T) {
	for msg, want := range map[string]failure.Class{
		"Payment required (402): Insufficient Balance":                                                 failure.NoQuota,
		"Authentication failed (401): Authentication Fails, Your api key: ****0001 is invalid":         failure.InvalidKey,
		`Chat Completions authentication failed (401): {"error":{"message":"Invalid Authentication"}}`: failure.InvalidKey,
		"Upstream returned (429): rate limit":                                                          failure.RateLimited,
		"Upstream error (503): overloaded":                                                             failure.UpstreamUnreachable,
		"something odd":                                                                                "",
		"(200): fine":                                                                                  "",
		"":                                                                                             "",
	} {
		if got := hostClass("deepseek", msg); got != want {
			t.Errorf("hostClass(%q) = %q, want %q", msg, got, want)
		}
	}
	// Kimi's 429 with the quota type is no_quota, as the prober reads it.
	if got := hostClass("kimi", `Rate limited (429): {"error":{"message":"Your account is suspended due to insufficient balance","type":"exceeded_current_quota_error"}}`); got != failure.NoQuota {
		t.Errorf("kimi 429 quota: %q", got)
	}
}

func TestHostBalance(t *testing.T) {
	if HostBalance(nil) != nil || HostBalance(active()) != nil || HostBalance(recorded(t, "deepseek-after-gateway-402")) != nil {
		t.Errorf("balance without the host's reading")
	}
	a := active()
	a.Extra = map[string]any{
		"deepseek_balance":            12.5,
		"deepseek_balance_currency":   "cny",
		"deepseek_balance_available":  true,
		"deepseek_balance_updated_at": "2026-11-27T11:50:00Z",
		"deepseek_balances": []any{
			map[string]any{"currency": "CNY", "balance": 12.5},
			map[string]any{"currency": "USD", "balance": 1.75},
		},
		"deepseek_balance_low": false,
	}
	b := HostBalance(a)
	if b == nil || b.Amount != 12.5 || b.Currency != "CNY" || !b.Available || b.ProviderID != "deepseek" ||
		!b.ReadAt.Equal(time.Date(2026, 11, 27, 11, 50, 0, 0, time.UTC)) || len(b.Others) != 1 || b.Others[0].Value != 1.75 {
		t.Fatalf("host balance %+v", b)
	}
	if b.Raw["deepseek_balance"] != "12.5" || b.Raw["deepseek_balance_low"] != "false" {
		t.Errorf("raw %v", b.Raw)
	}
	a.Platform, a.Extra = "kimi", map[string]any{"kimi_balance": -0.5}
	if b := HostBalance(a); b == nil || b.Available || b.Currency != "CNY" || !b.Below(0) {
		t.Errorf("kimi arrears %+v", b)
	}
}
