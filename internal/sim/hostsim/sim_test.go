package hostsim

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeClock) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) advance(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

func TestTestWarmups(t *testing.T) {
	stub := newStubUpstream(t)
	s, c := startSim(t, Options{Default: Behavior{TestWarmups: 2}})
	w := c.world(stub.URL+"/chatonly/v1", "kimi", nil)
	before := stub.callCount()
	for i := 0; i < 2; i++ {
		out := c.test(w.account, "m-public")
		if !contains(out, `"type":"test_start"`) || !contains(out, "account is warming up") || contains(out, "test_complete") {
			t.Fatalf("warm-up test %d: %s", i, out)
		}
	}
	if stub.callCount() != before {
		t.Fatalf("warm-up tests called the upstream")
	}
	out := c.test(w.account, "m-public")
	if !contains(out, `"type":"test_complete","success":true`) {
		t.Fatalf("third test should pass: %s", out)
	}
	if stub.callCount() != before+1 {
		t.Fatalf("third test made %d upstream calls", stub.callCount()-before)
	}
	// Per-account override: Behavior returns zero for this account, so Default applies;
	// a second simulator overrides by name.
	_, c2 := startSim(t, Options{Behavior: func(a AccountView) Behavior {
		if a.Name == "acct" && a.APIKey == "sk-up" && a.Platform == "kimi" {
			return Behavior{TestWarmups: 1}
		}
		return Behavior{}
	}})
	w2 := c2.world(stub.URL+"/chatonly/v1", "kimi", nil)
	if out := c2.test(w2.account, "m-public"); !contains(out, "warming up") {
		t.Fatalf("override not applied: %s", out)
	}
	if out := c2.test(w2.account, "m-public"); !contains(out, "test_complete") {
		t.Fatalf("second test should pass: %s", out)
	}
	_ = s
}

func TestChatWarmup(t *testing.T) {
	stub := newStubUpstream(t)
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	_, c := startSim(t, Options{Now: clock.now, Default: Behavior{ChatWarmup: time.Minute}})
	w := c.world(stub.URL+"/chatonly/v1", "kimi", nil)
	r := c.chat(w.key, "m-public", false)
	if r.status != 503 || !contains(string(r.raw), "Service temporarily unavailable") {
		t.Fatalf("during warm-up: %d %s", r.status, r.raw)
	}
	m := c.call("GET", "/v1/models", map[string]string{"Authorization": "Bearer " + w.key}, nil)
	if contains(string(m.raw), "m-public") {
		t.Fatalf("models during warm-up lists the account: %s", m.raw)
	}
	clock.advance(61 * time.Second)
	r = c.chat(w.key, "m-public", false)
	if r.status != 200 || !contains(string(r.raw), "model=m-upstream") {
		t.Fatalf("after warm-up: %d %s", r.status, r.raw)
	}
	m = c.call("GET", "/v1/models", map[string]string{"Authorization": "Bearer " + w.key}, nil)
	if !contains(string(m.raw), `"id":"m-public"`) {
		t.Fatalf("models after warm-up: %s", m.raw)
	}
}

func TestChatWarmupForkShape(t *testing.T) {
	stub := newStubUpstream(t)
	_, c := startSim(t, Options{Profile: ProfileFork, Default: Behavior{ChatWarmup: time.Hour}})
	w := c.world(stub.URL+"/chatonly", "deepseek", nil)
	r := c.chat(w.key, "m-public", false)
	if r.status != 503 || !contains(string(r.raw), "GROUP_EXHAUSTED") {
		t.Fatalf("fork warm-up: %d %s", r.status, r.raw)
	}
}

func TestUnknownKeyCache(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	stub := newStubUpstream(t)
	_, c := startSim(t, Options{Now: clock.now, Default: Behavior{UnknownKeyCache: 30 * time.Second}})
	w := c.world(stub.URL+"/chatonly/v1", "kimi", nil)
	custom := "custom-key-0123456789"
	hdr := map[string]string{"Authorization": "Bearer " + custom}
	if r := c.call("GET", "/v1/models", hdr, nil); r.status != 401 || r.body["code"] != "INVALID_API_KEY" {
		t.Fatalf("premature call: %d %s", r.status, r.raw)
	}
	tok := c.login(fmt.Sprintf("u%d@example.com", w.group), "pw-123456")
	if r := c.call("POST", "/api/v1/keys", map[string]string{"Authorization": "Bearer " + tok}, map[string]any{"name": "c", "group_id": w.group, "custom_key": custom}); r.status != 200 {
		t.Fatalf("create custom key: %d %s", r.status, r.raw)
	}
	clock.advance(10 * time.Second)
	if r := c.call("GET", "/v1/models", hdr, nil); r.status != 401 {
		t.Fatalf("within the cache window: %d %s", r.status, r.raw)
	}
	clock.advance(21 * time.Second)
	if r := c.call("GET", "/v1/models", hdr, nil); r.status != 200 {
		t.Fatalf("after the cache window: %d %s", r.status, r.raw)
	}
	// Without the behaviour a created key works at once (the recorded default).
	_, c2 := startSim(t, Options{})
	w2 := c2.world(stub.URL+"/chatonly/v1", "kimi", nil)
	if r := c2.call("GET", "/v1/models", map[string]string{"Authorization": "Bearer " + w2.key}, nil); r.status != 200 {
		t.Fatalf("fresh key: %d %s", r.status, r.raw)
	}
}

func TestAccountIdempotency(t *testing.T) {
	stub := newStubUpstream(t)
	s, c := startSim(t, Options{})
	g := id(c.mustAdmin("POST", "/api/v1/admin/groups", map[string]any{"name": "g", "platform": "openai", "rate_multiplier": 1}))
	body := map[string]any{"name": "a", "platform": "openai", "type": "apikey",
		"credentials": map[string]any{"api_key": "k", "base_url": stub.URL}, "group_ids": []any{g}}
	hdr := map[string]string{"x-api-key": c.key, "Idempotency-Key": "idem-1"}
	first := c.call("POST", "/api/v1/admin/accounts", hdr, body)
	second := c.call("POST", "/api/v1/admin/accounts", hdr, body)
	if first.status != 200 || second.status != 200 {
		t.Fatalf("statuses %d %d", first.status, second.status)
	}
	if second.header.Get("X-Idempotency-Replayed") != "true" || first.header.Get("X-Idempotency-Replayed") != "" {
		t.Fatalf("replay header: first %q second %q", first.header.Get("X-Idempotency-Replayed"), second.header.Get("X-Idempotency-Replayed"))
	}
	if id(first.data()) != id(second.data()) {
		t.Fatalf("replay returned another account")
	}
	if n := s.Counts().Accounts; n != 1 {
		t.Fatalf("accounts = %d, want 1", n)
	}
	body["name"] = "other"
	conflict := c.call("POST", "/api/v1/admin/accounts", hdr, body)
	if conflict.status != 409 || conflict.body["reason"] != "IDEMPOTENCY_KEY_CONFLICT" {
		t.Fatalf("conflict: %d %s", conflict.status, conflict.raw)
	}
	// Balance replay does not add twice.
	u := id(c.mustAdmin("POST", "/api/v1/admin/users", map[string]any{"email": "b@example.com", "password": "pw-123456"}))
	bh := map[string]string{"x-api-key": c.key, "Idempotency-Key": "bal-1"}
	for i := 0; i < 2; i++ {
		r := c.call("POST", fmt.Sprintf("/api/v1/admin/users/%d/balance", u), bh, map[string]any{"balance": 10, "operation": "add"})
		if r.status != 200 || r.data()["balance"].(float64) != 10 {
			t.Fatalf("balance call %d: %d %s", i, r.status, r.raw)
		}
	}
	// Key create replay gives the same key.
	g2 := id(c.mustAdmin("POST", "/api/v1/admin/groups", map[string]any{"name": "g2", "platform": "openai", "rate_multiplier": 1}))
	tok := c.login("b@example.com", "pw-123456")
	kh := map[string]string{"Authorization": "Bearer " + tok, "Idempotency-Key": "key-1"}
	k1 := c.call("POST", "/api/v1/keys", kh, map[string]any{"name": "k", "group_id": g2})
	k2 := c.call("POST", "/api/v1/keys", kh, map[string]any{"name": "k", "group_id": g2})
	if k1.data()["key"] != k2.data()["key"] || k2.header.Get("X-Idempotency-Replayed") != "true" || s.Counts().Keys != 1 {
		t.Fatalf("key replay: %s / %s", k1.raw, k2.raw)
	}
}

func TestComplianceLock(t *testing.T) {
	_, c := startSim(t, Options{ComplianceLocked: true})
	r := c.admin("GET", "/api/v1/admin/groups", nil)
	if r.status != 423 || r.body["code"] != "ADMIN_COMPLIANCE_ACK_REQUIRED" {
		t.Fatalf("locked: %d %s", r.status, r.raw)
	}
	st := c.admin("GET", "/api/v1/admin/compliance", nil)
	if st.status != 200 || st.data()["required"] != true {
		t.Fatalf("status: %d %s", st.status, st.raw)
	}
	bad := c.admin("POST", "/api/v1/admin/compliance/accept", map[string]any{"phrase": "I agree", "language": "en"})
	if bad.status != 400 || bad.body["reason"] != "ADMIN_COMPLIANCE_INVALID_PHRASE" {
		t.Fatalf("bad phrase: %d %s", bad.status, bad.raw)
	}
	okr := c.admin("POST", "/api/v1/admin/compliance/accept", map[string]any{"phrase": compliancePhraseEN, "language": "en"})
	if okr.status != 200 || okr.data()["required"] != false {
		t.Fatalf("accept: %d %s", okr.status, okr.raw)
	}
	if r := c.admin("GET", "/api/v1/admin/groups", nil); r.status != 200 {
		t.Fatalf("after accept: %d %s", r.status, r.raw)
	}
	// Other profiles have no gate and no route.
	_, c129 := startSim(t, Options{Profile: Profile129, ComplianceLocked: true})
	if r := c129.admin("GET", "/api/v1/admin/groups", nil); r.status != 200 {
		t.Fatalf("129 locked: %d", r.status)
	}
	if r := c129.admin("GET", "/api/v1/admin/compliance", nil); r.status != 404 || string(r.raw) != "404 page not found" {
		t.Fatalf("129 compliance route: %d %q", r.status, r.raw)
	}
}

func TestFaultRate(t *testing.T) {
	s, c := startSim(t, Options{FaultRate: 1})
	r := c.admin("POST", "/api/v1/admin/groups", map[string]any{"name": "g", "platform": "openai", "rate_multiplier": 1})
	if r.status != 500 || r.body["message"] != "internal error" || r.body["code"].(float64) != 500 {
		t.Fatalf("fault: %d %s", r.status, r.raw)
	}
	if s.Counts().Groups != 0 {
		t.Fatalf("a faulted request changed state")
	}
	if r := c.call("GET", "/health", nil, nil); r.status != 200 {
		t.Fatalf("faults must hit admin routes only: %d", r.status)
	}
	_, half := startSim(t, Options{FaultRate: 0.5})
	fails := 0
	for i := 0; i < 200; i++ {
		if half.admin("GET", "/api/v1/admin/system/version", nil).status == 500 {
			fails++
		}
	}
	if fails < 50 || fails > 150 {
		t.Fatalf("FaultRate 0.5 gave %d/200 faults", fails)
	}
}

func TestSetDown(t *testing.T) {
	s, c := startSim(t, Options{})
	s.SetDown(true)
	_, err := http.Get(c.base + "/health")
	if err == nil {
		t.Fatalf("expected a dropped connection while down")
	}
	s.SetDown(false)
	if r := c.call("GET", "/health", nil, nil); r.status != 200 || string(r.raw) != `{"status":"ok"}` {
		t.Fatalf("after up: %d %s", r.status, r.raw)
	}
}

func TestCountsStateAndDrift(t *testing.T) {
	stub := newStubUpstream(t)
	s, c := startSim(t, Options{})
	if got := s.Counts(); got != (Counts{}) {
		t.Fatalf("fresh counts %+v", got)
	}
	w := c.world(stub.URL+"/chatonly/v1", "kimi", nil)
	sg := id(c.mustAdmin("POST", "/api/v1/admin/groups", map[string]any{"name": "sub", "platform": "openai", "rate_multiplier": 1, "subscription_type": "subscription"}))
	c.mustAdmin("POST", "/api/v1/admin/subscriptions/assign", map[string]any{"user_id": w.user, "group_id": sg, "validity_days": 30})
	want := Counts{Groups: 2, Accounts: 1, Users: 1, Keys: 1, Subscriptions: 1}
	if got := s.Counts(); got != want {
		t.Fatalf("counts %+v, want %+v", got, want)
	}
	st := s.State()
	if st.Accounts[0].Platform != "kimi" || st.Accounts[0].ModelMapping["m-public"] != "m-upstream" || st.Accounts[0].GroupIDs[0] != w.group {
		t.Fatalf("account state %+v", st.Accounts[0])
	}
	if st.Keys[0].Key != w.key || st.Keys[0].GroupID != w.group || st.Users[0].Balance != 5 {
		t.Fatalf("key/user state %+v %+v", st.Keys[0], st.Users[0])
	}
	s.DeleteAccountOutOfBand(w.account)
	if r := c.admin("GET", fmt.Sprintf("/api/v1/admin/accounts/%d", w.account), nil); r.status != 404 {
		t.Fatalf("drifted account still readable: %d", r.status)
	}
	if s.Counts().Accounts != 0 {
		t.Fatalf("drift not counted")
	}
}

func TestGatewayStreamAndFailover(t *testing.T) {
	stub := newStubUpstream(t)
	_, c := startSim(t, Options{})
	w := c.world(stub.URL+"/chatonly/v1", "kimi", nil)
	r := c.chat(w.key, "m-public", true)
	body := string(r.raw)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") ||
		!contains(body, `"usage"`) || !strings.HasSuffix(strings.TrimSpace(body), "data: [DONE]") {
		t.Fatalf("stream: %d %s", r.status, body)
	}
	// A second account with a bad key in the same group: traffic fails over to the good one.
	c.mustAdmin("POST", "/api/v1/admin/accounts", map[string]any{"name": "bad", "platform": "kimi", "type": "apikey", "priority": 0,
		"credentials": map[string]any{"api_key": "x", "base_url": stub.URL + "/s401", "model_mapping": map[string]any{"m-public": "m-upstream"}},
		"group_ids":   []any{w.group}})
	if r := c.chat(w.key, "m-public", false); r.status != 200 {
		t.Fatalf("failover: %d %s", r.status, r.raw)
	}
	// The bad account went to error and is no longer scheduled (179: schedulable false).
	var bad AccountState
	for _, a := range c.stateOf(t).Accounts {
		if a.Name == "bad" {
			bad = a
		}
	}
	if bad.Status != "error" || bad.Schedulable || !contains(bad.ErrorMessage, "(401)") {
		t.Fatalf("bad account %+v", bad)
	}
	// Unknown model on 179 is a 404 model_not_found.
	if r := c.chat(w.key, "nope", false); r.status != 404 || !contains(string(r.raw), "model_not_found") {
		t.Fatalf("unknown model: %d %s", r.status, r.raw)
	}
}

func (c *client) stateOf(t *testing.T) State {
	r := c.admin("GET", "/api/v1/admin/accounts?page_size=1000", nil)
	var st State
	items, _ := r.data()["items"].([]any)
	for _, it := range items {
		m := it.(map[string]any)
		st.Accounts = append(st.Accounts, AccountState{Name: m["name"].(string), Status: m["status"].(string),
			Schedulable: m["schedulable"].(bool), ErrorMessage: m["error_message"].(string)})
	}
	return st
}

func TestEndpointURL(t *testing.T) {
	cases := map[string]string{
		"https://api.deepseek.com":              "https://api.deepseek.com/v1/chat/completions",
		"https://api.moonshot.cn/v1/":           "https://api.moonshot.cn/v1/chat/completions",
		"https://open.bigmodel.cn/api/paas/v4":  "https://open.bigmodel.cn/api/paas/v4/chat/completions",
		"https://ark.example/api/v3":            "https://ark.example/api/v3/chat/completions",
		"https://x.example/v1/chat/completions": "https://x.example/v1/chat/completions",
	}
	for base, want := range cases {
		if got := endpointURL(base, "chat/completions"); got != want {
			t.Errorf("%s -> %s, want %s", base, got, want)
		}
	}
	if got := forkGatewayURL("https://open.bigmodel.cn/api/paas/v4"); got != "https://open.bigmodel.cn/api/paas/v4/v1/chat/completions" {
		t.Errorf("fork rule: %s", got)
	}
}

func TestRateLimitRecovery(t *testing.T) {
	stub := newStubUpstream(t)
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	_, c := startSim(t, Options{Now: clock.now})
	w := c.world(stub.URL+"/s429", "kimi", nil)
	if r := c.chat(w.key, "m-public", false); r.status != 429 || !contains(string(r.raw), "rate_limit_error") {
		t.Fatalf("429: %d %s", r.status, r.raw)
	}
	// Cooling down: the only account is skipped.
	if r := c.chat(w.key, "m-public", false); r.status != 503 {
		t.Fatalf("during cooldown: %d %s", r.status, r.raw)
	}
	c.mustAdmin("POST", fmt.Sprintf("/api/v1/admin/accounts/%d/clear-rate-limit", w.account), nil)
	if r := c.chat(w.key, "m-public", false); r.status != 429 {
		t.Fatalf("after clear-rate-limit the account is tried again: %d", r.status)
	}
	clock.advance(6 * time.Second)
	keys := c.mustAdmin("GET", fmt.Sprintf("/api/v1/admin/groups/%d/api-keys", w.group), nil)
	if keys["total"].(float64) != 1 {
		t.Fatalf("group keys: %v", keys)
	}
}

// Lists page like the host: up to 1000 rows a page (a larger page_size falls back to 20),
// the account list answers 304 to its own ETag, and every request is counted.
func TestListPagingETagAndRequestCount(t *testing.T) {
	s, c := startSim(t, Options{})
	items := make([]SeedItem, 1500)
	for i := range items {
		items[i] = SeedItem{Group: fmt.Sprintf("crm-g-%04d", i), Account: fmt.Sprintf("crm-a-%04d", i),
			Key: fmt.Sprintf("crm-k-%04d", i), KeyValue: fmt.Sprintf("sk-seeded-key-%08d", i)}
	}
	seeded := s.Seed("crm-managed@example.com", "pw-0123456789", items)
	if len(seeded.Keys) != 1500 || seeded.UserID == 0 {
		t.Fatalf("seeded %+v", seeded)
	}
	s.ResetRequests()
	p1 := c.mustAdmin("GET", "/api/v1/admin/accounts?search=crm-&page=1&page_size=1000", nil)
	p2 := c.mustAdmin("GET", "/api/v1/admin/accounts?search=crm-&page=2&page_size=1000", nil)
	if n1, n2 := len(p1["items"].([]any)), len(p2["items"].([]any)); n1 != 1000 || n2 != 500 || p1["pages"].(float64) != 2 {
		t.Fatalf("pages of 1000: %d + %d, pages %v", n1, n2, p1["pages"])
	}
	if big := c.mustAdmin("GET", "/api/v1/admin/groups?page_size=5000", nil); len(big["items"].([]any)) != 20 {
		t.Fatalf("page_size 5000 must fall back to 20, got %d", len(big["items"].([]any)))
	}
	keys := c.mustAdmin("GET", fmt.Sprintf("/api/v1/admin/users/%d/api-keys?page=2&page_size=1000", seeded.UserID), nil)
	if len(keys["items"].([]any)) != 500 {
		t.Fatalf("keys page 2: %d", len(keys["items"].([]any)))
	}
	first := c.admin("GET", "/api/v1/admin/accounts?page=1&page_size=10", nil)
	etag := first.header.Get("ETag")
	again := c.call("GET", "/api/v1/admin/accounts?page=1&page_size=10", map[string]string{"x-api-key": c.key, "If-None-Match": etag}, nil)
	if etag == "" || again.status != 304 || len(again.raw) != 0 {
		t.Fatalf("conditional list: etag %q → %d %q", etag, again.status, again.raw)
	}
	if all, admin := s.Requests(); all != 6 || admin != 6 {
		t.Fatalf("requests counted: %d (admin %d), want 6", all, admin)
	}
}
