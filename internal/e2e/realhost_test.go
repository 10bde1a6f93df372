//go:build realhost

package e2e

// The product's end-to-end suite against real sub2api hosts built from their source
// archives (`make host-test`, CRM_SUB2API_SRC): for every archive, a host on loopback with
// its own database and redis-server, the project's simulated providers, and a split api +
// worker cluster on the built binaries. Per access mode: a mixed batch whose good items
// share one managed user, the new end-user keys checked through the host's gateway with a
// plain HTTP client, reconcile, rollback to exactly the host's starting inventory, and the
// same again in the same worker process. Then the host behaviours the simulator must
// reproduce are recorded (or, by default, checked against the recordings in
// internal/host/testdata/sub2api), and a second host with its outbound URL policy on shows
// how the product reports it.
//
// CRM_HOST_RECORD=1 rewrites the recordings instead of checking them.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/realhost"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/upstreamsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// fixtureDir is where the host client's recorded exchanges live, per host version.
const fixtureDir = "../host/testdata/sub2api"

func TestRealHostEndToEnd(t *testing.T) {
	for _, b := range realhost.FromEnv(t) {
		t.Run(b.Version, func(t *testing.T) {
			began := time.Now()
			rh := realhost.Start(t, b, realhost.Options{})
			t.Logf("host %s up and bootstrapped in %s", b.Version, time.Since(began).Round(100*time.Millisecond))
			cl := newCluster(t, clusterOpts{external: &externalHost{URL: rh.URL, AdminKey: rh.AdminAPIKey},
				extraEnv: []string{"CRM_WORKER_CONCURRENCY=8", "CRM_HOST_CONCURRENCY=16"}})
			worker := cl.workers[0]
			start, err := rh.Inventory()
			if err != nil {
				t.Fatal(err)
			}
			for _, mode := range []string{"subscription", "self_service"} {
				t.Run(mode, func(t *testing.T) {
					for round, size := range []int{9, 4} {
						realHostRound(t, cl, rh, mode, round+1, size, start)
					}
				})
			}
			if cl.workers[0] != worker || worker.cmd.ProcessState != nil {
				t.Errorf("the worker process did not live through both rounds")
			}
			t.Run("recordings", func(t *testing.T) {
				recordInProgress(t, rh)
				recordUserDeleted(t, rh)
			})
			t.Run("outbound_policy", func(t *testing.T) { realHostPolicy(t, cl, b) })
			if t.Failed() {
				t.Logf("cluster logs:\n%s", cl.logs())
			}
		})
	}
}

// realHostItem is one input line and what it must end as.
type realHostItem struct {
	item  map[string]any
	class string // "" = ready
}

// realHostItems registers keys with the simulated providers: good keys across providers
// (all of them land on the one managed user) and one of each failure the upstream can show.
func realHostItems(up *upstreamsim.Server, tag string, good int) []realHostItem {
	providers := [][2]string{{"deepseek", "deepseek-flash"}, {"kimi", "kimi-k2.6"}, {"glm", "glm-5.1"}, {"qwen", "qwen3.6-plus"}, {"openai_compatible", ""}}
	suffix := secret.RandomToken(6)
	var out []realHostItem
	add := func(i int, p [2]string, mode upstreamsim.KeyMode, class string) {
		key := fmt.Sprintf("sk-rh-%s-%02d-%s", tag, i, suffix)
		if p[0] == "glm" {
			key = fmt.Sprintf("rh%s%02d.%s", strings.ReplaceAll(tag, "-", ""), i, suffix)
		}
		up.AddKey(key, mode)
		it := map[string]any{"name": fmt.Sprintf("%s-%02d-%s-%s", tag, i, p[0], mode), "base_url": up.BaseURL(p[0]), "api_key": key}
		if p[0] != "openai_compatible" {
			it["provider"] = p[0]
		}
		if p[1] != "" {
			it["models"] = []string{p[1]}
		}
		out = append(out, realHostItem{item: it, class: class})
	}
	for i := 0; i < good; i++ {
		add(i, providers[i%len(providers)], upstreamsim.ModeOK, "")
	}
	add(good, providers[0], upstreamsim.ModeInvalid, "invalid_key")
	add(good+1, providers[1], upstreamsim.ModeNoQuota, "no_quota")
	add(good+2, providers[0], upstreamsim.ModeBanned, "key_banned")
	return out
}

// realHostRound runs one batch through import, checks, reconcile and rollback.
func realHostRound(t *testing.T, cl *cluster, rh *realhost.Host, mode string, round, good int, start realhost.Inventory) {
	t.Helper()
	before, err := rh.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	if !before.Equal(start) {
		t.Fatalf("round %d starts on a host that is not at its start:\n%s\nstart:\n%s", round, before, start)
	}
	specs := realHostItems(cl.up, fmt.Sprintf("%s-%d", mode[:3], round), good)
	want := map[string]string{}
	var items []map[string]any
	for _, s := range specs {
		items = append(items, s.item)
		want[s.item["name"].(string)] = s.class
	}
	began := time.Now()
	id := cl.submitBatch(cl.hostID, map[string]any{"name": fmt.Sprintf("realhost %s round %d", mode, round), "mode": mode, "items": items})
	got := cl.waitTerminal(id, 5*time.Minute)
	t.Logf("%s round %d: %d items terminal in %s", mode, round, len(got), time.Since(began).Round(100*time.Millisecond))
	var ready []store.Item
	for _, it := range got {
		switch class := want[it.Name]; {
		case class == "" && it.Status != store.ItemReady && it.Status != store.ItemReadyWithWarnings:
			t.Errorf("round %d: good key %s ended %s/%s: %s", round, it.Name, it.Status, it.FailureClass, it.FailureMessage)
		case class != "" && (it.Status != store.ItemFailed || it.FailureClass != class):
			t.Errorf("round %d: %s ended %s/%s, want failed/%s: %s", round, it.Name, it.Status, it.FailureClass, class, it.FailureMessage)
		case class == "":
			ready = append(ready, it)
		}
	}
	if len(ready) != good {
		t.Fatalf("round %d: %d of %d good keys ready\n%s", round, len(ready), good, cl.logs())
	}
	// Pooled groups: one group and one end-user key per provider, each key proven on its
	// own account (0.1.129's account test cannot check chat-only accounts: a gateway call
	// routed only to the account does).
	groups := map[string]bool{}
	for _, it := range ready {
		groups[it.TargetGroup] = true
		wantProof := store.KeyProofAccountTest
		if rh.Version == "0.1.129" {
			wantProof = store.KeyProofGatewayAlias
		}
		if it.KeyProof != wantProof {
			t.Errorf("round %d: %s proven by %q, want %q", round, it.Name, it.KeyProof, wantProof)
		}
	}
	if inv, err := rh.Inventory(); err == nil {
		if n := len(inv.Groups) - len(before.Groups); n != len(groups) {
			t.Errorf("round %d: the batch added %d groups for %d target groups %v", round, n, len(groups), groups)
		}
		if n := len(inv.Keys) - len(before.Keys); n != len(groups) {
			t.Errorf("round %d: the batch added %d end-user keys for %d groups", round, n, len(groups))
		}
	}
	checkKeysAnswer(t, cl, rh, id, ready)

	run := cl.reconcileBatch(id)
	if len(run.Findings) != 0 {
		t.Errorf("round %d: reconcile after the import is not in sync: %+v", round, run.Findings)
	}

	subs := map[string]bool{}
	for _, r := range cl.batchResources(id) {
		if r.Type == store.TypeSubscription && r.HostResourceID != nil {
			subs[*r.HostResourceID] = true
		}
	}
	act := cl.rollbackBatch(id)
	if act.Status != "completed" {
		t.Fatalf("round %d: rollback %s: %s %+v", round, act.Status, act.Message, act.Objects)
	}
	after, err := rh.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	if !after.Equal(before) {
		t.Fatalf("round %d: rollback did not leave the host as it was before the batch\nbefore:\n%s\nafter:\n%s\nrollback: %+v", round, before, after, act.Objects)
	}
	// A host that keeps revoked subscriptions as history shows only this batch's.
	for _, id := range after.RevokedSince(before) {
		if !subs[id] {
			t.Errorf("round %d: subscription %s revoked by the rollback is not one of the batch's", round, id)
		}
	}
}

// checkKeysAnswer finds every ready item's new end-user key on the host and calls the
// host's gateway with it, with a plain HTTP client: the model list names the item's smoke
// model and a chat completion answers.
func checkKeysAnswer(t *testing.T, cl *cluster, rh *realhost.Host, batchID string, ready []store.Item) {
	t.Helper()
	// One key per target group (pooled groups): an item's key is its group's.
	groupKeys := map[string]string{} // group host id -> host key id
	groupIDs := map[string]string{}  // group name -> group host id
	var userID string
	for _, r := range cl.resources() {
		if r.HostResourceID == nil || r.State == store.ResourceDeleted {
			continue
		}
		switch r.Type {
		case store.TypeUser:
			userID = *r.HostResourceID
		case store.TypeKey:
			groupKeys[r.ParentID] = *r.HostResourceID
		case store.TypeGroup:
			groupIDs[r.Name] = *r.HostResourceID
		}
	}
	keyIDs := map[string]string{} // item id -> host key id
	for _, it := range ready {
		keyIDs[it.ID] = groupKeys[groupIDs[it.TargetGroup]]
	}
	if userID == "" {
		t.Fatal("the ledger names no managed user")
	}
	var page struct {
		Data struct {
			Items []struct {
				ID  int64  `json:"id"`
				Key string `json:"key"`
			} `json:"items"`
		} `json:"data"`
	}
	if err := rh.Admin(http.MethodGet, "/api/v1/admin/users/"+userID+"/api-keys?page_size=1000", nil, &page); err != nil {
		t.Fatal(err)
	}
	values := map[string]string{}
	for _, k := range page.Data.Items {
		values[fmt.Sprint(k.ID)] = k.Key
	}
	hc := &http.Client{Timeout: 60 * time.Second}
	for _, it := range ready {
		key := values[keyIDs[it.ID]]
		if key == "" {
			t.Errorf("%s: no end-user key of the managed user %s for it (ledger key id %q)", it.Name, userID, keyIDs[it.ID])
			continue
		}
		req, _ := http.NewRequest(http.MethodGet, rh.URL+"/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		status, body := plainCall(t, hc, req)
		var models struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		_ = json.Unmarshal(body, &models)
		listed := false
		for _, m := range models.Data {
			listed = listed || m.ID == it.SmokeModel
		}
		if status != http.StatusOK || !listed {
			t.Errorf("%s: GET /v1/models with its key: %d, %s not listed: %.300s", it.Name, status, it.SmokeModel, body)
		}
		chat, _ := json.Marshal(map[string]any{"model": it.SmokeModel, "max_tokens": 8,
			"messages": []any{map[string]any{"role": "user", "content": "Reply with one word: ok"}}})
		req, _ = http.NewRequest(http.MethodPost, rh.URL+"/v1/chat/completions", strings.NewReader(string(chat)))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		status, body = plainCall(t, hc, req)
		var answer struct {
			Choices []struct {
				Message struct {
					Content string `json:"content"`
				} `json:"message"`
			} `json:"choices"`
		}
		// 0.1.129 labels a plain chat answer text/event-stream but sends JSON.
		if status != http.StatusOK || json.Unmarshal(body, &answer) != nil || len(answer.Choices) == 0 || answer.Choices[0].Message.Content == "" {
			t.Errorf("%s: POST /v1/chat/completions with its key: %d %.300s", it.Name, status, body)
		}
	}
}

func plainCall(t *testing.T, hc *http.Client, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := hc.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", req.Method, req.URL.Path, err)
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// submitBatch posts a batch for host hostID and returns its ID.
func (cl *cluster) submitBatch(hostID string, body map[string]any) string {
	cl.t.Helper()
	body["host_id"] = hostID
	var sub struct {
		Batch store.Batch `json:"batch"`
	}
	if code := cl.c.do(cl.t, "POST", "/api/v1/batches", body, &sub); code != 201 {
		cl.t.Fatalf("submit batch: %d\n%s", code, cl.logs())
	}
	return sub.Batch.ID
}

// batchResources lists a batch's ledger rows.
func (cl *cluster) batchResources(batchID string) []store.Resource {
	var resp struct {
		Items []store.Resource `json:"items"`
	}
	if code := cl.c.do(cl.t, "GET", "/api/v1/resources?batch_id="+batchID+"&page_size=1000", nil, &resp); code != 200 {
		cl.t.Fatalf("list resources of batch %s: %d", batchID, code)
	}
	return resp.Items
}

// reconcileBatch runs a reconcile of the batch and waits for its result.
func (cl *cluster) reconcileBatch(batchID string) store.ReconcileRun {
	cl.t.Helper()
	var run store.ReconcileRun
	if code := cl.c.do(cl.t, "POST", "/api/v1/batches/"+batchID+"/reconcile", nil, &run); code != 202 {
		cl.t.Fatalf("reconcile batch %s: %d", batchID, code)
	}
	var got store.ReconcileRun
	if waitEvery(300*time.Millisecond, 2*time.Minute, func() bool {
		got = store.ReconcileRun{}
		return cl.c.do(cl.t, "GET", "/api/v1/reconcile-runs/"+run.ID, nil, &got) == 200 && got.Status != "queued" && got.Status != "running"
	}) {
		if got.Status != "completed" {
			cl.t.Fatalf("reconcile run %s: %s %s", run.ID, got.Status, got.Summary)
		}
		return got
	}
	cl.t.Fatalf("reconcile run %s did not finish\n%s", run.ID, cl.logs())
	return run
}

// rollbackBatch queues the batch's rollback and waits for its action to finish.
func (cl *cluster) rollbackBatch(batchID string) store.Action {
	cl.t.Helper()
	if code := cl.c.do(cl.t, "POST", "/api/v1/batches/"+batchID+"/rollback", nil, nil); code != 202 {
		cl.t.Fatalf("rollback batch %s: %d", batchID, code)
	}
	var b store.Batch
	if waitEvery(300*time.Millisecond, 3*time.Minute, func() bool {
		b = store.Batch{}
		return cl.c.do(cl.t, "GET", "/api/v1/batches/"+batchID, nil, &b) == 200 && b.LastAction.Kind == "rollback" &&
			(b.LastAction.Status == "completed" || b.LastAction.Status == "partial")
	}) {
		return b.LastAction
	}
	cl.t.Fatalf("rollback of batch %s did not finish\n%s", batchID, cl.logs())
	return store.Action{}
}

// recording is an exchange seen on a real host: with CRM_HOST_RECORD=1 it is written into
// the fixtures, otherwise it must match the fixture recorded before.
func recording(t *testing.T, version, name string, ex *realhost.Exchange, secrets map[string]string) {
	t.Helper()
	if err := ex.Scrub(secrets); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(fixtureDir, version)
	if os.Getenv("CRM_HOST_RECORD") == "1" {
		if err := ex.Write(dir, name); err != nil {
			t.Fatal(err)
		}
		t.Logf("recorded %s/%s", version, name)
		return
	}
	diff, err := ex.Matches(dir, name)
	if os.IsNotExist(err) {
		t.Errorf("no recording %s/%s yet: run make host-test with CRM_HOST_RECORD=1 and commit it", version, name)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if diff != "" {
		t.Errorf("%s %s differs from its recording (the host changed; re-record with CRM_HOST_RECORD=1 and update the simulator): %s", version, name, diff)
	}
}

// fixtureUser creates a user for a recording and returns its id and password.
func fixtureUser(t *testing.T, rh *realhost.Host, balance float64) (int64, string, string) {
	t.Helper()
	email := fmt.Sprintf("fixture-user-%s@example.com", strings.ToLower(secret.RandomToken(6)))
	pw := "Fx-" + secret.RandomToken(16)
	var u struct {
		Data struct {
			ID int64 `json:"id"`
		} `json:"data"`
	}
	if err := rh.Admin(http.MethodPost, "/api/v1/admin/users", map[string]any{"email": email, "password": pw, "username": "fixture-user", "concurrency": 5}, &u); err != nil {
		t.Fatal(err)
	}
	if balance > 0 {
		if err := rh.Admin(http.MethodPost, fmt.Sprintf("/api/v1/admin/users/%d/balance", u.Data.ID), map[string]any{"balance": balance, "operation": "add"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	return u.Data.ID, email, pw
}

// recordInProgress sends the same balance change with the same Idempotency-Key from
// several clients at once: every request but the one running is refused 409
// IDEMPOTENCY_IN_PROGRESS, and the balance is added once.
func recordInProgress(t *testing.T, rh *realhost.Host) {
	uid, _, pw := fixtureUser(t, rh, 0)
	defer func() { _ = rh.Admin(http.MethodDelete, fmt.Sprintf("/api/v1/admin/users/%d", uid), nil, nil) }()
	body := map[string]any{"balance": 10, "operation": "add", "notes": "fixture topup"}
	path := fmt.Sprintf("/api/v1/admin/users/%d/balance", uid)
	hdr := func(key string) map[string]string {
		return map[string]string{"x-api-key": rh.AdminAPIKey, "Idempotency-Key": key}
	}
	var inProgress *realhost.Exchange
	added := 0.0
	for try := 0; try < 10 && inProgress == nil; try++ {
		key := fmt.Sprintf("fixture-bal-inprogress-%d-%s", try, secret.RandomToken(6))
		var wg sync.WaitGroup
		var mu sync.Mutex
		var exs []*realhost.Exchange
		gate := make(chan struct{})
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gate
				ex, err := rh.Record(context.Background(), http.MethodPost, path, hdr(key), body)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				exs = append(exs, ex)
				mu.Unlock()
			}()
		}
		close(gate)
		wg.Wait()
		oks := 0
		for _, ex := range exs {
			m, _ := ex.Response.Body.(map[string]any)
			switch {
			case ex.Response.Status == http.StatusOK:
				oks++
			case ex.Response.Status == http.StatusConflict && m["reason"] == "IDEMPOTENCY_IN_PROGRESS":
				if inProgress == nil {
					inProgress = ex
				}
			default:
				t.Errorf("concurrent top-up answered %d %v", ex.Response.Status, ex.Response.Body)
			}
		}
		if oks > 0 {
			added += 10
		}
	}
	if inProgress == nil {
		t.Fatal("10 rounds of 8 concurrent top-ups with one Idempotency-Key never met 409 IDEMPOTENCY_IN_PROGRESS")
	}
	if inProgress.Header("Retry-After") == "" {
		t.Errorf("409 IDEMPOTENCY_IN_PROGRESS without Retry-After: %+v", inProgress.Response.Headers)
	}
	var u struct {
		Data struct {
			Balance float64 `json:"balance"`
		} `json:"data"`
	}
	if err := rh.Admin(http.MethodGet, fmt.Sprintf("/api/v1/admin/users/%d", uid), nil, &u); err != nil {
		t.Fatal(err)
	}
	if u.Data.Balance != added {
		t.Errorf("balance %v after the concurrent top-ups, want %v: one add per Idempotency-Key", u.Data.Balance, added)
	}
	inProgress.Notes = "Sent by 8 clients at once with the same Idempotency-Key and body; this answer went to one that arrived while the first was still being processed. The balance was added once. retry_after counts down from the host's 30 s processing lock."
	recording(t, rh.Version, "users.balance.in-progress", inProgress, map[string]string{pw: "fixture-pass-0001"})
}

// recordUserDeleted uses a user's JWT after the user was deleted: 401 USER_NOT_FOUND (not
// INVALID_TOKEN: the token itself is still valid).
func recordUserDeleted(t *testing.T, rh *realhost.Host) {
	uid, email, pw := fixtureUser(t, rh, 0)
	jwt, err := rh.Login(email, pw)
	if err != nil {
		t.Fatal(err)
	}
	if err := rh.Admin(http.MethodDelete, fmt.Sprintf("/api/v1/admin/users/%d", uid), nil, nil); err != nil {
		t.Fatal(err)
	}
	ex, err := rh.Record(context.Background(), http.MethodPost, "/api/v1/keys", map[string]string{"Authorization": "Bearer " + jwt},
		map[string]any{"name": "fixture-key-after-delete"})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := ex.Response.Body.(map[string]any)
	if ex.Response.Status != http.StatusUnauthorized || m["code"] != "USER_NOT_FOUND" {
		t.Errorf("key create with a deleted user's JWT: %d %v, want 401 USER_NOT_FOUND", ex.Response.Status, ex.Response.Body)
	}
	ex.Notes = "The user logged in, then was deleted by an admin; its JWT is still well-signed."
	recording(t, rh.Version, "keys.create.user-deleted", ex, map[string]string{pw: "fixture-pass-0001"})
}

// realHostPolicy runs a second host with its outbound URL policy on (an operator setting):
// the account is accepted, the account test names the refusal, the gateway answers 502;
// the product fails the items with host_policy and a message naming the settings, flags the
// upstream in a later dry run, and rolls the batch back to the host's start.
func realHostPolicy(t *testing.T, cl *cluster, b *realhost.Binary) {
	rh := realhost.Start(t, b, realhost.Options{Env: []string{"SECURITY_URL_ALLOWLIST_ENABLED=true"}})
	var h store.Host
	if code := cl.c.do(t, "POST", "/api/v1/hosts", map[string]any{"name": "realhost-policy", "admin_url": rh.URL, "admin_api_key": rh.AdminAPIKey}, &h); code != 201 {
		t.Fatalf("register the policy host: %d", code)
	}
	start, err := rh.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	recordPolicy(t, rh, cl.up)
	if after, _ := rh.Inventory(); !after.Equal(start) {
		t.Fatalf("the recordings left objects behind:\n%s", after)
	}

	specs := realHostItems(cl.up, "pol", 2)[:2]
	id := cl.submitBatch(h.ID, map[string]any{"name": "realhost policy", "mode": "self_service",
		"items": []map[string]any{specs[0].item, specs[1].item}})
	for _, it := range cl.waitTerminal(id, 5*time.Minute) {
		if it.Status != store.ItemFailed || it.FailureClass != "host_policy" {
			t.Errorf("%s on a host whose policy refuses its upstream: %s/%s: %s", it.Name, it.Status, it.FailureClass, it.FailureMessage)
			continue
		}
		for _, want := range []string{"upstream host allowlist", "allow private hosts", "allow insecure http"} {
			if !strings.Contains(it.FailureMessage, want) {
				t.Errorf("%s: the message does not name %q: %s", it.Name, want, it.FailureMessage)
			}
		}
	}
	dry := realHostItems(cl.up, "dry", 1)[0]
	dryID := cl.submitBatch(h.ID, map[string]any{"name": "realhost policy dry run", "mode": "self_service", "dry_run": true,
		"items": []map[string]any{dry.item}})
	for _, it := range cl.waitTerminal(dryID, 2*time.Minute) {
		flag, _ := it.Plan["host_policy"].(map[string]any)
		if it.Status != store.ItemSkipped || flag == nil {
			t.Errorf("dry run after the refusal: %s, plan host_policy %v, warnings %v", it.Status, it.Plan["host_policy"], it.Warnings)
		}
	}
	act := cl.rollbackBatch(id)
	if act.Status != "completed" {
		t.Fatalf("rollback of the refused batch: %s %s", act.Status, act.Message)
	}
	if after, _ := rh.Inventory(); !after.Equal(start) {
		t.Fatalf("rollback did not leave the policy host at its start\nstart:\n%s\nafter:\n%s", start, after)
	}
}

// recordPolicy records the policy host's answers: the account accepted, its test refused,
// the gateway's 502; everything it created is deleted again.
func recordPolicy(t *testing.T, rh *realhost.Host, up *upstreamsim.Server) {
	admin := map[string]string{"x-api-key": rh.AdminAPIKey}
	upKey := "sk-rh-policy-" + secret.RandomToken(12)
	up.AddKey(upKey, upstreamsim.ModeOK)
	base := up.BaseURL("deepseek")
	// The simulated provider becomes the fixtures' OpenAI-compatible stub (README there),
	// which a replay can really call: only the policy keeps the host from doing so.
	secrets := map[string]string{upKey: "sk-upstream-fixture-0001", base: "http://127.0.0.1:18090"}
	var g struct {
		Data struct {
			ID int64 `json:"id"`
		} `json:"data"`
	}
	if err := rh.Admin(http.MethodPost, "/api/v1/admin/groups", map[string]any{"name": "fixture-policy-" + secret.RandomToken(4), "platform": "openai", "rate_multiplier": 1}, &g); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	create, err := rh.Record(ctx, http.MethodPost, "/api/v1/admin/accounts", admin, map[string]any{"name": "fixture-policy-account", "platform": "openai", "type": "apikey",
		"credentials": map[string]any{"api_key": upKey, "base_url": base, "model_mapping": map[string]string{"deepseek-flash": "deepseek-flash"}},
		"extra":       map[string]any{"openai_responses_mode": "force_chat_completions"}, "group_ids": []int64{g.Data.ID}, "concurrency": 3, "priority": 1})
	if err != nil {
		t.Fatal(err)
	}
	acct, _ := create.Response.Body.(map[string]any)
	data, _ := acct["data"].(map[string]any)
	accID, _ := data["id"].(float64)
	if create.Response.Status != http.StatusOK || accID == 0 {
		t.Fatalf("account create on the policy host: %d %v", create.Response.Status, create.Response.Body)
	}
	create.Notes = "Host started with SECURITY_URL_ALLOWLIST_ENABLED=true (upstream host allowlist on, defaults otherwise). The plain-http loopback base URL is accepted when the account is saved; the policy applies when the host calls it."
	recording(t, rh.Version, "accounts.create.outbound-policy.ok", create, secrets)

	test, err := rh.Record(ctx, http.MethodPost, fmt.Sprintf("/api/v1/admin/accounts/%d/test", int64(accID)),
		map[string]string{"x-api-key": rh.AdminAPIKey, "Accept": "text/event-stream"}, map[string]any{"model_id": "deepseek-flash"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(test.Response.Stream(), "Invalid base URL") {
		t.Errorf("account test on the policy host: %d %q", test.Response.Status, test.Response.Stream())
	}
	test.Notes = "Account of accounts.create.outbound-policy.ok. The host refuses its base URL before calling it: under the policy it forwards to https URLs on the allowlist only."
	recording(t, rh.Version, "accounts.test.outbound-policy", test, secrets)

	uid, email, pw := fixtureUser(t, rh, 10)
	jwt, err := rh.Login(email, pw)
	if err != nil {
		t.Fatal(err)
	}
	key := "fixture-custom-key-policy-" + strings.ToLower(secret.RandomToken(8))
	if st, body, err := rh.Do(http.MethodPost, "/api/v1/keys", map[string]string{"Authorization": "Bearer " + jwt},
		map[string]any{"name": "fixture-policy-key", "group_id": g.Data.ID, "custom_key": key}); err != nil || st != http.StatusOK {
		t.Fatalf("key create on the policy host: %d %v %s", st, err, body)
	}
	chat, err := rh.Record(ctx, http.MethodPost, "/v1/chat/completions", map[string]string{"Authorization": "Bearer " + key},
		map[string]any{"model": "deepseek-flash", "messages": []any{map[string]any{"role": "user", "content": "hi"}}})
	if err != nil {
		t.Fatal(err)
	}
	if chat.Response.Status != http.StatusBadGateway {
		t.Errorf("chat through the policy host: %d %v", chat.Response.Status, chat.Response.Body)
	}
	chat.Notes = "Key on the group of accounts.create.outbound-policy.ok. The host refuses to forward to the account's base URL and answers the generic 502; nothing reaches the upstream."
	recording(t, rh.Version, "gateway.chat.outbound-policy", chat, mergeSecrets(secrets, map[string]string{pw: "fixture-pass-0001"}))

	for _, del := range []string{fmt.Sprintf("/api/v1/admin/users/%d", uid), fmt.Sprintf("/api/v1/admin/accounts/%d", int64(accID)), fmt.Sprintf("/api/v1/admin/groups/%d", g.Data.ID)} {
		if err := rh.Admin(http.MethodDelete, del, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func mergeSecrets(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range []map[string]string{a, b} {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}
