package hostsim

// The real hosts' behaviours recorded by `make host-test` (users.balance.in-progress,
// keys.create.user-deleted, *.outbound-policy*), beyond the one exchange each fixture holds.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Concurrent writes with one Idempotency-Key: one runs, the others meet it in flight (409
// IDEMPOTENCY_IN_PROGRESS, Retry-After 30); once it is done the key replays its answer. A
// failed write leaves the key in a 5 s backoff (409 IDEMPOTENCY_RETRY_BACKOFF), after which
// it runs again.
func TestIdempotencyInFlightAndBackoff(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, c := startSim(t, Options{IdempotentWrite: 200 * time.Millisecond, Now: clock})
	u := c.mustAdmin("POST", "/api/v1/admin/users", map[string]any{"email": "idem@example.com", "password": "secret-pw"})
	path := fmt.Sprintf("/api/v1/admin/users/%d/balance", id(u))
	body, _ := json.Marshal(map[string]any{"balance": 10, "operation": "add"})
	send := func(key string) (int, http.Header, map[string]any) {
		req, _ := http.NewRequest("POST", s.URL()+path, bytes.NewReader(body))
		req.Header.Set("x-api-key", c.key)
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, nil
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, resp.Header, m
	}
	var wg sync.WaitGroup
	statuses := make(chan [2]string, 6)
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, h, m := send("same-key")
			reason, _ := m["reason"].(string)
			statuses <- [2]string{fmt.Sprint(st), reason + "/" + h.Get("Retry-After")}
		}()
	}
	wg.Wait()
	close(statuses)
	counts := map[[2]string]int{}
	for s := range statuses {
		counts[s]++
	}
	if counts[[2]string{"200", "/"}] != 1 || counts[[2]string{"409", "IDEMPOTENCY_IN_PROGRESS/30"}] != 5 {
		t.Fatalf("six concurrent writes with one key: %v, want one 200 and five 409 IDEMPOTENCY_IN_PROGRESS", counts)
	}
	if st, h, _ := send("same-key"); st != 200 || h.Get("X-Idempotency-Replayed") != "true" {
		t.Fatalf("after the first finished: %d replayed=%q", st, h.Get("X-Idempotency-Replayed"))
	}
	if got := c.mustAdmin("GET", fmt.Sprintf("/api/v1/admin/users/%d", id(u)), nil)["balance"]; got != float64(10) {
		t.Fatalf("balance %v, want 10 (added once)", got)
	}

	// A failed write: the user is gone.
	c.mustAdmin("DELETE", fmt.Sprintf("/api/v1/admin/users/%d", id(u)), nil)
	if st, _, m := send("after-delete"); st != 404 || m["reason"] != "USER_NOT_FOUND" {
		t.Fatalf("top-up of a deleted user: %d %v", st, m)
	}
	if st, h, m := send("after-delete"); st != 409 || m["reason"] != "IDEMPOTENCY_RETRY_BACKOFF" || h.Get("Retry-After") != "5" {
		t.Fatalf("repeat inside the backoff: %d %v %q", st, m, h.Get("Retry-After"))
	}
	mu.Lock()
	now = now.Add(6 * time.Second)
	mu.Unlock()
	if st, _, m := send("after-delete"); st != 404 || m["reason"] != "USER_NOT_FOUND" {
		t.Fatalf("repeat after the backoff runs again: %d %v", st, m)
	}
	// A binding error never reaches the store: the key stays free.
	req, _ := http.NewRequest("POST", s.URL()+"/api/v1/admin/users/1/balance", strings.NewReader(`{"balance":0,"operation":"add"}`))
	req.Header.Set("x-api-key", c.key)
	req.Header.Set("Idempotency-Key", "bind")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	s.mu.Lock()
	_, kept := s.idem["balance:1:1\x00bind"]
	s.mu.Unlock()
	if kept {
		t.Error("a request-binding failure claimed its Idempotency-Key")
	}
}

// A user's JWT outlives the user: 401 USER_NOT_FOUND on the user and admin routes, and
// USER_INACTIVE while the user is disabled; a token never issued stays INVALID_TOKEN.
func TestTokenOutlivesItsUser(t *testing.T) {
	_, c := startSim(t, Options{})
	u := c.mustAdmin("POST", "/api/v1/admin/users", map[string]any{"email": "gone@example.com", "password": "secret-pw"})
	login := c.call("POST", "/api/v1/auth/login", nil, map[string]any{"email": "gone@example.com", "password": "secret-pw"})
	tok, _ := login.data()["access_token"].(string)
	bearer := map[string]string{"Authorization": "Bearer " + tok}
	c.mustAdmin("PUT", fmt.Sprintf("/api/v1/admin/users/%d", id(u)), map[string]any{"status": "disabled"})
	if r := c.call("GET", "/api/v1/keys", bearer, nil); r.status != 401 || r.body["code"] != "USER_INACTIVE" {
		t.Fatalf("disabled user's token: %d %s", r.status, r.raw)
	}
	c.mustAdmin("DELETE", fmt.Sprintf("/api/v1/admin/users/%d", id(u)), nil)
	for _, p := range []string{"/api/v1/keys", "/api/v1/admin/system/version"} {
		if r := c.call("GET", p, bearer, nil); r.status != 401 || r.body["code"] != "USER_NOT_FOUND" || r.body["message"] != "User not found" {
			t.Errorf("%s with a deleted user's token: %d %s", p, r.status, r.raw)
		}
	}
	if r := c.call("GET", "/api/v1/keys", map[string]string{"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.never.issued"}, nil); r.body["code"] != "INVALID_TOKEN" {
		t.Errorf("unknown token: %d %s", r.status, r.raw)
	}
}

// The fork refuses an account whose base URL its outbound policy forbids, on create and
// update, with the body its documentation gives; an allowed https host passes.
func TestOutboundPolicyFork(t *testing.T) {
	_, c := startSim(t, Options{Profile: ProfileFork, OutboundPolicy: &OutboundPolicy{UpstreamHosts: []string{"*.deepseek.com"}}})
	g := c.mustAdmin("POST", "/api/v1/admin/groups", map[string]any{"name": "p", "platform": "deepseek", "rate_multiplier": 1})
	acct := func(base string) map[string]any {
		return map[string]any{"name": "a-" + base, "platform": "deepseek", "type": "apikey", "group_ids": []int64{id(g)},
			"credentials": map[string]any{"api_key": "sk-upstream-0000000001", "base_url": base}}
	}
	for _, base := range []string{"http://127.0.0.1:9/deepseek", "https://api.moonshot.cn/v1", "http://api.deepseek.com"} {
		r := c.admin("POST", "/api/v1/admin/accounts", acct(base))
		if r.status != 400 || r.body["reason"] != "ACCOUNT_INVALID_BASE_URL" || r.body["message"] != forkInvalidBaseURL {
			t.Errorf("%s: %d %s", base, r.status, r.raw)
		}
	}
	ok := c.mustAdmin("POST", "/api/v1/admin/accounts", acct("https://api.deepseek.com"))
	r := c.admin("PUT", fmt.Sprintf("/api/v1/admin/accounts/%d", id(ok)), map[string]any{"credentials": map[string]any{"base_url": "https://10.0.0.1/v1"}})
	if r.status != 400 || r.body["reason"] != "ACCOUNT_INVALID_BASE_URL" {
		t.Errorf("update to a private address: %d %s", r.status, r.raw)
	}
}
