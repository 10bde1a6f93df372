package hostsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// recordedID returns the id in a fixture's recorded response data.
func (rp *replayer) recordedID(name string) int64 {
	var env struct {
		Data struct {
			ID int64 `json:"id"`
		} `json:"data"`
	}
	fx := rp.all[name]
	if fx == nil {
		rp.t.Fatalf("fixture %s missing", name)
	}
	_ = json.Unmarshal(fx.Response.Body, &env)
	return env.Data.ID
}

// pathID returns the last numeric id in a fixture's request path.
func (rp *replayer) pathID(name string) int64 {
	fx := rp.all[name]
	var id int64
	for _, seg := range strings.Split(strings.Split(fx.Request.Path, "?")[0], "/") {
		var n int64
		if _, err := fmt.Sscan(seg, &n); err == nil {
			id = n
		}
	}
	return id
}

// mapGroup pre-creates the group a recorded id stands for, with a platform.
func (rp *replayer) mapGroup(rec int64, platform string) {
	if rp.ids["group"] == nil {
		rp.ids["group"] = map[int64]int64{}
	}
	rp.seq++
	g := rp.admin("POST", "/api/v1/admin/groups", map[string]any{"name": fmt.Sprintf("mapped-%d-%d", rec, rp.seq), "platform": platform, "rate_multiplier": 1})
	rp.ids["group"][rec] = int64(g["id"].(float64))
}

// mapAccount creates an account like the one of fixture `like`, with another
// base URL path (e.g. "/s401"), and maps the recorded id to it.
func (rp *replayer) mapAccount(rec int64, like, base string) int64 {
	var body map[string]any
	_ = json.Unmarshal(rp.all[like].Request.Body, &body)
	rp.translateBody(body)
	if base != "" {
		body["credentials"].(map[string]any)["base_url"] = rp.stub.URL + base
	}
	a := rp.admin("POST", "/api/v1/admin/accounts", body)
	id := int64(a["id"].(float64))
	if rp.ids["account"] == nil {
		rp.ids["account"] = map[int64]int64{}
	}
	rp.ids["account"][rec] = id
	rp.sim.WaitProbes()
	return id
}

// setBase points an account at another stub path and resets its state.
func (rp *replayer) setBase(simAcct int64, base string) {
	var creds map[string]any
	for _, a := range rp.sim.State().Accounts {
		if a.ID == simAcct {
			mm := map[string]any{}
			for k, v := range a.ModelMapping {
				mm[k] = v
			}
			creds = map[string]any{"api_key": "sk-upstream-fixture-0001", "base_url": rp.stub.URL + base, "model_mapping": mm}
		}
	}
	rp.admin("PUT", fmt.Sprintf("/api/v1/admin/accounts/%d", simAcct), map[string]any{"credentials": creds, "status": "active", "schedulable": true})
}

// keyOn creates a user (with balance) and a key on a simulated group, with a
// subscription first when the group needs one.
func (rp *replayer) keyOn(gid int64, balance float64) (string, int64) {
	rp.seq++
	uid := rp.newUser(fmt.Sprintf("gw-%d@example.com", rp.seq), balance)
	for _, g := range rp.sim.State().Groups {
		if g.ID == gid && g.SubscriptionType == "subscription" {
			rp.admin("POST", "/api/v1/admin/subscriptions/assign", map[string]any{"user_id": uid, "group_id": gid, "validity_days": 30})
		}
	}
	b, _ := json.Marshal(map[string]any{"name": "gw", "group_id": gid})
	resp, body := rp.do("POST", "/api/v1/keys", map[string]string{"Authorization": "Bearer " + rp.token(uid)}, b)
	if resp.StatusCode != 200 {
		rp.t.Fatalf("key create: %d %s", resp.StatusCode, body)
	}
	var env struct {
		Data struct {
			Key string `json:"key"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &env)
	return env.Data.Key, uid
}

// accountKey makes sure the account of a creation fixture exists and
// returns a key on its first group.
func (rp *replayer) accountKey(createFixture string, balance float64) (key string, acct, gid int64, uid int64) {
	acct = rp.simID("account", rp.recordedID(createFixture), "")
	rp.sim.WaitProbes()
	for _, a := range rp.sim.State().Accounts {
		if a.ID == acct && len(a.GroupIDs) > 0 {
			gid = a.GroupIDs[0]
		}
	}
	if gid == 0 {
		rp.t.Fatalf("account of %s has no group", createFixture)
	}
	key, uid = rp.keyOn(gid, balance)
	return key, acct, gid, uid
}

func (rp *replayer) chat(key, model string) int {
	b, _ := json.Marshal(map[string]any{"model": model, "messages": []any{map[string]any{"role": "user", "content": "hi"}}})
	resp, _ := rp.do("POST", "/v1/chat/completions", map[string]string{"Authorization": "Bearer " + key}, b)
	return resp.StatusCode
}

func (rp *replayer) test(acct int64, model string) {
	b, _ := json.Marshal(map[string]any{"model_id": model})
	rp.do("POST", fmt.Sprintf("/api/v1/admin/accounts/%d/test", acct), map[string]string{"x-api-key": rp.sim.AdminAPIKey()}, b)
}

// badAccount is the account of accounts.create.upstream-401.ok.
func (rp *replayer) badAccount() int64 {
	return rp.simID("account", rp.recordedID("accounts.create.upstream-401.ok"), "")
}

// prep builds the state a fixture's request was recorded in.
func prep(rp *replayer, name string) {
	switch name {
	case "admin.invalid-admin-key":
		rp.hdr["x-api-key"] = "admin-" + strings.Repeat("f", 64)
	case "groups.create.duplicate-name", "groups.create.duplicate-name.zh", "groups.create.idempotency-key-not-honoured",
		"users.create.duplicate-email", "keys.create.duplicate-custom-key":
		rp.send(name) // the first call creates, the replayed one conflicts
	case "groups.all.ok", "groups.list.ok":
		rp.send("groups.create.ok")
		rp.send("groups.create.subscription.ok")
	case "accounts.create.idempotent-replay", "accounts.create.idempotency-conflict", "accounts.list.ok":
		rp.send("accounts.create.ok")
	case "accounts.list.after-failed-create":
		rp.send("accounts.create.group-not-found")
	case "accounts.list.not-modified":
		rp.send("accounts.create.ok")
		m, p, h, _ := rp.translate(rp.all["accounts.list.ok"])
		rp.sim.WaitProbes()
		resp, _ := rp.do(m, p, h, nil)
		rp.hdr["If-None-Match"] = resp.Header.Get("ETag")
	case "accounts.get.after-delete":
		rp.send("accounts.create.ok")
		rp.send("accounts.delete.ok")
	case "accounts.get.after-failed-test", "accounts.clear-error.ok":
		rp.send("accounts.test.upstream-401")
	case "accounts.schedulable.ok":
		rp.send("accounts.test.upstream-401")
		rp.send("accounts.clear-error.ok")
	case "accounts.get.after-gateway-401", "accounts.get.after-gateway-402", "accounts.get.after-gateway-429", "accounts.get.after-gateway-500":
		key, acct, _, _ := rp.accountKey("accounts.create.upstream-401.ok", 10)
		rp.setBase(acct, "/s"+name[len(name)-3:])
		rp.chat(key, "gpt-4o-mini")
	case "gateway.chat.upstream-401", "gateway.chat.upstream-402", "gateway.chat.upstream-429", "gateway.chat.upstream-500":
		key, acct, _, _ := rp.accountKey("accounts.create.upstream-401.ok", 10)
		rp.setBase(acct, "/s"+name[len(name)-3:])
		rp.gwKey = key
	case "gateway.chat.after-account-error":
		key, _, _, _ := rp.accountKey("accounts.create.upstream-401.ok", 10)
		rp.chat(key, "gpt-4o-mini")
		rp.gwKey = key
	case "accounts.get.after-group-delete":
		rp.send("accounts.create.ok")
		rp.send("groups.delete.ok")
	case "accounts.get.chat-only-upstream.after-chat":
		key, _, _, _ := rp.accountKey("accounts.create.chat-only-upstream.ok", 10)
		rp.chat(key, "deepseek-chat")
	case "accounts.test.deepseek-upstream-401", "accounts.get.deepseek-after-failed-test":
		acct := rp.mapAccount(rp.pathID(name), "accounts.create.deepseek.ok", "/s401")
		if name == "accounts.get.deepseek-after-failed-test" {
			rp.test(acct, "deepseek-chat")
		}
	case "accounts.get.deepseek-after-gateway-402":
		acct := rp.mapAccount(rp.pathID(name), "accounts.create.deepseek.ok", "/s402")
		key, _, _, _ := rp.accountKeyByID(acct)
		rp.chat(key, "deepseek-chat")
	case "gateway.chat.deepseek.upstream-402":
		acct := rp.mapAccount(9999, "accounts.create.deepseek.ok", "/s402")
		rp.gwKey, _, _, _ = rp.accountKeyByID(acct)
	case "gateway.chat.ok", "gateway.chat.stream.ok", "gateway.chat.x-api-key-header.ok", "gateway.chat.unknown-model", "gateway.models.ok",
		"gateway.models.get-one":
		rp.gwKey, _, _, _ = rp.accountKey("accounts.create.ok", 10)
	case "gateway.chat.insufficient-balance", "gateway.models.insufficient-balance":
		rp.gwKey, _, _, _ = rp.accountKey("accounts.create.ok", 0)
	case "gateway.chat.subscription.ok":
		rp.send("accounts.create.ok")
		rp.gwKey, _ = rp.keyOn(rp.simID("group", rp.recordedID("groups.create.subscription.ok"), ""), 0)
	case "gateway.chat.subscription-missing":
		gid := rp.simID("group", rp.recordedID("groups.create.subscription.ok"), "")
		rp.gwKey, _ = rp.keyOn(gid, 0)
		for _, s := range rp.sim.State().Subscriptions {
			rp.admin("DELETE", fmt.Sprintf("/api/v1/admin/subscriptions/%d", s.ID), nil)
		}
	case "gateway.chat.no-account", "gateway.chat.stream.no-account", "gateway.models.no-account":
		rp.gwKey, _ = rp.keyOn(rp.simID("group", rp.recordedID("groups.create.empty.ok"), ""), 10)
	case "gateway.chat.user-deleted":
		var uid int64
		rp.gwKey, _, _, uid = rp.accountKey("accounts.create.ok", 10)
		rp.admin("DELETE", fmt.Sprintf("/api/v1/admin/users/%d", uid), nil)
	case "gateway.chat.deleted-key":
		// The recorded custom key was deleted: any value the simulator does not know.
	case "gateway.chat.key-group-deleted":
		var gid int64
		rp.gwKey, _, gid, _ = rp.accountKey("accounts.create.ok", 10)
		rp.admin("DELETE", fmt.Sprintf("/api/v1/admin/groups/%d", gid), nil)
	case "gateway.chat.chat-only-upstream", "gateway.models.chat-only-upstream":
		rp.gwKey, _, _, _ = rp.accountKey("accounts.create.chat-only-upstream.ok", 10)
	case "gateway.chat.force-chat-completions.ok", "gateway.chat.force-chat-completions.stream.ok":
		rp.gwKey, _, _, _ = rp.accountKey("accounts.create.force-chat-completions.ok", 10)
	case "gateway.chat.platform-mismatch":
		fx := rp.all["accounts.create.platform-mismatch.deepseek-in-openai-group"]
		var b map[string]any
		_ = json.Unmarshal(fx.Request.Body, &b)
		for _, g := range b["group_ids"].([]any) {
			rp.mapGroup(int64(g.(float64)), "openai")
		}
		rp.gwKey, _, _, _ = rp.accountKey("accounts.create.platform-mismatch.deepseek-in-openai-group", 10)
	case "accounts.create.platform-mismatch.deepseek-in-openai-group":
		var b map[string]any
		_ = json.Unmarshal(rp.all[name].Request.Body, &b)
		for _, g := range b["group_ids"].([]any) {
			rp.mapGroup(int64(g.(float64)), "openai")
		}
	case "gateway.chat.deepseek.ok", "gateway.chat.deepseek.stream.ok", "gateway.chat.deepseek.unknown-model", "gateway.models.deepseek.ok":
		rp.gwKey, _, _, _ = rp.accountKey("accounts.create.deepseek.ok", 10)
	case "gateway.chat.kimi.ok", "gateway.chat.kimi.stream.ok", "gateway.models.kimi.ok":
		rp.gwKey, _, _, _ = rp.accountKey("accounts.create.kimi.ok", 10)
	case "gateway.chat.zhipu.ok", "gateway.chat.zhipu.stream.ok", "gateway.models.zhipu.ok":
		rp.gwKey, _, _, _ = rp.accountKey("accounts.create.zhipu.ok", 10)
	case "gateway.chat.base-url-version-suffix":
		rp.gwKey, _, _, _ = rp.accountKey("accounts.create.base-url-version-suffix", 10)
	case "gateway.chat.protocol-gateway.ok", "gateway.chat.protocol-gateway.stream.ok", "gateway.chat.protocol-gateway.unknown-model", "gateway.models.protocol-gateway":
		rp.gwKey, _, _, _ = rp.accountKey("accounts.create.protocol-gateway.ok", 10)
	case "users.get.ok", "users.list.ok":
		rp.send("users.create.ok")
		rp.send("users.balance.add.ok")
	case "accounts.update.bind-group":
		rp.send("accounts.test.force-chat-completions") // the recorded account had been tested
	case "auth.login.user.ok":
		rp.send("users.create.ok")
	case "users.balance.add.replay":
		rp.send("users.balance.add.ok")
	case "keys.create.idempotent-replay":
		rp.send("keys.create.idempotency.first")
	case "keys.list.after-idempotent-replay":
		rp.send("keys.create.idempotency.first")
		rp.send("keys.create.idempotent-replay")
	case "keys.list.user.ok", "keys.list.admin.ok":
		rp.send("users.balance.add.ok")
		rp.send("keys.create.ok")
		rp.send("keys.create.custom-key.ok")
		rp.useKeys()
	case "keys.create.subscription.ok":
		rp.send("subscriptions.assign.ok")
	case "keys.get.after-group-delete":
		rp.send("users.balance.add.ok")
		rp.send("keys.create.ok")
		rp.useKeys()
		rp.send("groups.delete.ok")
	case "subscriptions.assign.repeat-identical", "subscriptions.assign.conflict", "subscriptions.list.ok", "subscriptions.list-by-user.ok",
		"subscriptions.get.ok", "subscriptions.assign.ok":
		// The recorded user had logged in (to create keys) before the assignment.
		var b map[string]any
		_ = json.Unmarshal(rp.all["subscriptions.assign.ok"].Request.Body, &b)
		rp.token(rp.simID("user", int64(b["user_id"].(float64)), ""))
		if name != "subscriptions.assign.ok" {
			rp.send("subscriptions.assign.ok")
		}
	case "compliance.after-accept.ok":
		rp.send("compliance.accept.ok")
	case "users.balance.in-progress":
		rp.inFlight(name)
	case "keys.create.user-deleted":
		// The recorded user logged in and was then deleted; its token is sent.
		// A plain user of its own: the recorded id may stand for another fixture's user.
		uid, _ := jwtUser(strings.TrimPrefix(rp.all[name].Request.Headers["Authorization"], "Bearer "))
		rp.seq++
		sim := rp.newUser(fmt.Sprintf("deleted-%d@example.com", rp.seq), 0)
		if rp.ids["user"] == nil {
			rp.ids["user"] = map[int64]int64{}
		}
		rp.ids["user"][uid] = sim
		rp.token(sim)
		rp.admin("DELETE", fmt.Sprintf("/api/v1/admin/users/%d", sim), nil)
	case "gateway.chat.outbound-policy":
		rp.gwKey, _, _, _ = rp.accountKey("accounts.create.outbound-policy.ok", 10)
	}
}

// inFlight sends a fixture's request in the background and returns once the simulator
// holds it in flight (its Idempotency-Key claimed), so the replayed twin meets it.
func (rp *replayer) inFlight(name string) {
	m, p, h, b := rp.translate(rp.all[name])
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest(m, rp.hs.URL+p, bytes.NewReader(b))
		for k, v := range h {
			req.Header.Set(k, v)
		}
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	rp.t.Cleanup(func() { <-done })
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		rp.sim.mu.Lock()
		claimed := false
		for _, e := range rp.sim.idem {
			claimed = claimed || e.state == idemProcessing
		}
		rp.sim.mu.Unlock()
		if claimed {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	rp.t.Fatal("the first request never got in flight")
}

// accountKeyByID returns a key on the first group of a simulated account.
func (rp *replayer) accountKeyByID(acct int64) (string, int64, int64, int64) {
	var gid int64
	for _, a := range rp.sim.State().Accounts {
		if a.ID == acct && len(a.GroupIDs) > 0 {
			gid = a.GroupIDs[0]
		}
	}
	if gid == 0 {
		rp.t.Fatalf("account %d has no group", acct)
	}
	key, uid := rp.keyOn(gid, 10)
	return key, acct, gid, uid
}

// useKeys calls /v1/models with every key (the recorded keys had been used).
func (rp *replayer) useKeys() {
	for _, k := range rp.sim.State().Keys {
		rp.do("GET", "/v1/models", map[string]string{"Authorization": "Bearer " + k.Key}, nil)
	}
}
