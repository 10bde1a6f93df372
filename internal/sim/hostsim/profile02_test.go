package hostsim

import (
	"fmt"
	"testing"
	"time"
)

// 0.2.15 reports its version, renames the group allowlist field and knows minimax.
func TestProfile02Shape(t *testing.T) {
	_, c := startSim(t, Options{Profile: Profile02})
	v := c.mustAdmin("GET", "/api/v1/admin/system/version", nil)
	if v["version"] != "0.2.15" {
		t.Fatalf("version %v", v)
	}
	g := c.mustAdmin("POST", "/api/v1/admin/groups", map[string]any{"name": "mm", "platform": "minimax", "rate_multiplier": 1})
	if _, old := g["models_list_config"]; old {
		t.Errorf("0.2.x group still carries models_list_config: %v", g)
	}
	al, _ := g["model_allowlist"].(map[string]any)
	if al == nil || al["enabled"] != false {
		t.Errorf("model_allowlist = %v, want {enabled:false}", g["model_allowlist"])
	}
	r := c.admin("POST", "/api/v1/admin/groups", map[string]any{"name": "bad", "platform": "openai", "rate_multiplier": 1,
		"model_allowlist": map[string]any{"enabled": true}})
	if r.status != 400 || r.body["reason"] != "INVALID_MODEL_ALLOWLIST" {
		t.Errorf("enabled empty allowlist: %d %s", r.status, r.raw)
	}
	// 0.1.179 keeps its recorded field and refuses minimax.
	_, c179 := startSim(t, Options{Profile: Profile179})
	if r := c179.admin("POST", "/api/v1/admin/groups", map[string]any{"name": "mm", "platform": "minimax", "rate_multiplier": 1}); r.status != 400 {
		t.Errorf("0.1.179 accepted platform minimax: %d", r.status)
	}
}

// An enabled allowlist answers 404 for other models before routing and filters /v1/models.
func TestProfile02AllowlistGates(t *testing.T) {
	stub := newStubUpstream(t)
	_, c := startSim(t, Options{Profile: Profile02})
	w := c.world(stub.URL+"/chatonly/v1", "openai", map[string]any{"openai_responses_mode": "force_chat_completions"})
	if r := c.chat(w.key, "m-public", false); r.status != 200 {
		t.Fatalf("allowlist off: %d %s", r.status, r.raw)
	}
	g := c.mustAdmin("POST", "/api/v1/admin/groups", map[string]any{"name": "gated", "platform": "openai", "rate_multiplier": 1,
		"model_allowlist": map[string]any{"enabled": true, "models": []any{"other-*"}}})
	c.mustAdmin("PUT", fmt.Sprintf("/api/v1/admin/accounts/%d", w.account), map[string]any{"group_ids": []any{w.group, id(g)}})
	tok := c.login(fmt.Sprintf("u%d@example.com", w.group), "pw-123456")
	k := c.call("POST", "/api/v1/keys", map[string]string{"Authorization": "Bearer " + tok}, map[string]any{"name": "gated", "group_id": id(g)})
	if k.status != 200 {
		t.Fatalf("key: %d %s", k.status, k.raw)
	}
	gk := k.data()["key"].(string)
	r := c.chat(gk, "m-public", false)
	if r.status != 404 || !contains(string(r.raw), "not available for this group") {
		t.Fatalf("model outside the allowlist: %d %s", r.status, r.raw)
	}
	m := c.call("GET", "/v1/models", map[string]string{"Authorization": "Bearer " + gk}, nil)
	if contains(string(m.raw), "m-public") {
		t.Fatalf("/v1/models lists a model the allowlist refuses: %s", m.raw)
	}
}

// Key creation limits: 403 API_KEY_COUNT_EXCEEDED past the active-key cap; past the hourly
// cap a 429 with Retry-After; the window resets after an hour; deleting keys frees the cap
// but not the hour's attempts.
func TestProfile02KeyLimits(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, c := startSim(t, Options{Profile: Profile02, Now: clock.now, KeyLimits: KeyLimits{MaxActive: 3, MaxPerHour: 5}})
	u := id(c.mustAdmin("POST", "/api/v1/admin/users", map[string]any{"email": "k@example.com", "password": "pw-123456"}))
	tok := c.login("k@example.com", "pw-123456")
	auth := map[string]string{"Authorization": "Bearer " + tok}
	var ids []int64
	for i := 0; i < 3; i++ {
		r := c.call("POST", "/api/v1/keys", auth, map[string]any{"name": fmt.Sprintf("k%d", i)})
		if r.status != 200 {
			t.Fatalf("key %d: %d %s", i, r.status, r.raw)
		}
		ids = append(ids, id(r.data()))
	}
	r := c.call("POST", "/api/v1/keys", auth, map[string]any{"name": "k3"})
	if r.status != 403 || r.body["reason"] != "API_KEY_COUNT_EXCEEDED" || r.body["message"] != "maximum number of API keys reached" {
		t.Fatalf("over the active cap: %d %s", r.status, r.raw)
	}
	c.call("DELETE", fmt.Sprintf("/api/v1/keys/%d", ids[0]), auth, nil)
	c.call("DELETE", fmt.Sprintf("/api/v1/keys/%d", ids[1]), auth, nil)
	for i := 0; i < 2; i++ { // attempts 4 and 5 of the hour
		if r := c.call("POST", "/api/v1/keys", auth, map[string]any{"name": fmt.Sprintf("again%d", i)}); r.status != 200 {
			t.Fatalf("after deleting: %d %s", r.status, r.raw)
		}
	}
	c.call("DELETE", fmt.Sprintf("/api/v1/keys/%d", ids[2]), auth, nil)
	r = c.call("POST", "/api/v1/keys", auth, map[string]any{"name": "sixth"})
	if r.status != 429 || r.body["reason"] != "API_KEY_CREATE_RATE_LIMITED" || r.header.Get("Retry-After") == "" {
		t.Fatalf("over the hourly cap: %d %s %v", r.status, r.raw, r.header)
	}
	if n := s.KeyCreations(u); n != 5 {
		t.Errorf("KeyCreations = %d, want 5", n)
	}
	clock.advance(time.Hour)
	if r := c.call("POST", "/api/v1/keys", auth, map[string]any{"name": "next-hour"}); r.status != 200 {
		t.Fatalf("next hour: %d %s", r.status, r.raw)
	}
	// The recorded profiles have no limits.
	_, c179 := startSim(t, Options{Profile: Profile179, KeyLimits: KeyLimits{}})
	c179.mustAdmin("POST", "/api/v1/admin/users", map[string]any{"email": "k@example.com", "password": "pw-123456"})
	tok179 := c179.login("k@example.com", "pw-123456")
	for i := 0; i < 70; i++ {
		if r := c179.call("POST", "/api/v1/keys", map[string]string{"Authorization": "Bearer " + tok179}, map[string]any{"name": fmt.Sprintf("k%d", i)}); r.status != 200 {
			t.Fatalf("0.1.179 key %d: %d %s", i, r.status, r.raw)
		}
	}
}

// Two assigns of one (user, group) at the same moment: the hosts check, then insert, and
// the second insert meets the unique index — 409 SUBSCRIPTION_ALREADY_EXISTS (0.1.129
// source, and seen on a real 0.1.129 host under pooled imports).
func TestConcurrentSubscriptionAssign(t *testing.T) {
	_, c := startSim(t, Options{Profile: Profile129, IdempotentWrite: 100 * time.Millisecond})
	g := c.mustAdmin("POST", "/api/v1/admin/groups", map[string]any{"name": "subs", "platform": "openai", "rate_multiplier": 1, "subscription_type": "subscription"})
	u := c.mustAdmin("POST", "/api/v1/admin/users", map[string]any{"email": "s@example.com", "password": "pw-123456"})
	body := map[string]any{"user_id": id(u), "group_id": id(g), "validity_days": 30, "notes": "n"}
	results := make(chan result, 2)
	for i := 0; i < 2; i++ {
		go func() { results <- c.admin("POST", "/api/v1/admin/subscriptions/assign", body) }()
	}
	a, b := <-results, <-results
	if a.status == 200 {
		a, b = b, a
	}
	if b.status != 200 || a.status != 409 || a.body["reason"] != "SUBSCRIPTION_ALREADY_EXISTS" ||
		a.body["message"] != "subscription already exists for this user and group" {
		t.Fatalf("concurrent assigns: %d %s / %d %s", a.status, a.raw, b.status, b.raw)
	}
	// Once the first is in, a repeat is the identical-repeat answer, not the race.
	if r := c.admin("POST", "/api/v1/admin/subscriptions/assign", body); r.status != 200 {
		t.Fatalf("repeat after the race: %d %s", r.status, r.raw)
	}
}
