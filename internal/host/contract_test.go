// Host contract suite: the import recipe of cn-relay-manager, step by step through the host
// client, against a sub2api host.
//
// By default it runs against the simulated host (internal/sim/hostsim) in every profile —
// subtests "0.1.129", "0.1.179" and "fork-0.1.321", each with the generic relay and with
// DeepSeek (native platform on 0.1.179 and the fork) — whose accounts call a simulated
// upstream (internal/sim/upstreamsim; CRM_TEST_UPSTREAM_KEY, when set, is the key it
// accepts).
//
// To run it against a real host instead (one subtest, "real"):
//
//	CRM_TEST_HOST_URL=https://sub2api.example.com \
//	CRM_TEST_HOST_ADMIN_KEY=admin-... \
//	CRM_TEST_UPSTREAM_URL=https://api.deepseek.com \
//	CRM_TEST_UPSTREAM_KEY=sk-... \
//	go test ./internal/host -run TestHostContract -v -count=1
//
// Optional: CRM_TEST_HOST_PUBLIC_URL (gateway URL when it differs from the admin URL),
// CRM_TEST_UPSTREAM_MODEL (model id to map; default: picked from the upstream's /models like
// an import does), CRM_TEST_PROVIDER (provider id or name when the upstream host is not in
// the catalog, e.g. a relay). The upstream must be reachable from the host, and the test
// makes a few real, billed chat calls through it (account test, two gateway chats).
//
// The suite creates only objects whose names start with "crm-contract-<random>-" (a group, a
// subscription group, an account, a user with e-mail crm-contract-<random>-user@example.com,
// two keys, a subscription, 5.00 of balance) and deletes them when it ends, in reverse
// dependency order, verifying they are gone; a final sweep deletes and reports any object
// with the prefix that is left. It never accepts the compliance text of a 0.1.179 host:
// when the host is locked, the suite is skipped. Do not point it at a host whose admin key
// you are not allowed to use for writes.
package host_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/hostsim"
)

func TestHostContract(t *testing.T) {
	if tg := realTarget(t); tg != nil {
		t.Run(tg.name, func(t *testing.T) { runContract(t, tg) })
		return
	}
	targets := simTargets(t)
	for _, profile := range hostsim.Profiles {
		t.Run(profile, func(t *testing.T) {
			for _, tg := range targets {
				if tg.wantProfile == profile {
					t.Run(tg.name, func(t *testing.T) { runContract(t, tg) })
				}
			}
		})
	}
}

// contractRun is the state of one run of the recipe.
type contractRun struct {
	t      *testing.T
	ctx    context.Context
	c      *host.Client
	tg     *contractTarget
	p      host.Profile
	prefix string
	gone   map[string]bool // tracked objects the recipe already deleted
}

// track registers the deletion of a created object. Cleanups run last-in first-out, so
// objects go in reverse creation order, which is reverse dependency order. deleteFn must
// delete the object and verify it is gone; it is skipped when the recipe already deleted it
// (r.gone[what]).
func (r *contractRun) track(what string, deleteFn func(ctx context.Context) error) {
	r.t.Cleanup(func() {
		if r.gone[what] {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := deleteFn(ctx); err != nil {
			r.t.Errorf("cleanup %s: %v", what, err)
		}
	})
}

func runContract(t *testing.T, tg *contractTarget) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	r := &contractRun{t: t, ctx: ctx, c: tg.client, tg: tg, prefix: "crm-contract-" + randomHex(t, 4) + "-",
		gone: map[string]bool{}}
	t.Logf("object prefix %s", r.prefix)

	// Detect → profile (read-only).
	version, p, warning, err := r.c.Detect(ctx)
	if err != nil {
		t.Fatalf("detect: %v", err)
	}
	r.p = p
	t.Logf("host version %q, profile %s, warning %q", version, p.Name, warning)
	if tg.wantProfile != "" && p.Name != tg.wantProfile {
		t.Fatalf("detect: profile %s, want %s", p.Name, tg.wantProfile)
	}
	if _, err := r.c.SystemVersion(ctx); host.IsComplianceLocked(err) {
		t.Skipf("host is compliance-locked (version %s): an operator must accept first; the suite never does", host.ComplianceVersion(err))
	} else if err != nil {
		t.Fatalf("system version: %v", err)
	}

	// Registered first, so it runs last: nothing with the prefix may be left.
	t.Cleanup(r.sweep)

	model := tg.pickModel(t, ctx)
	alias := r.prefix + "model"
	spec := p.AccountSpec(tg.providerID, tg.upstreamBase, tg.upstreamKey, map[string]string{alias: model})
	t.Logf("provider %s, upstream model %s, account platform %s, group platform %s", tg.providerID, model, spec.Platform, spec.GroupPlatform)

	r.errorMapping()
	g := r.group(spec)
	acct := r.account(spec, g, alias, model)
	r.accountTest(acct, alias)
	u, password := r.user()
	token := r.login(u, password)
	key := r.key(token, u, g)
	r.gateway(key, alias)
	sg, sub, subKey := r.subscription(token, u, g, spec)
	r.deletes(token, u, g, acct, key, sg, sub, subKey)
}

// errorMapping checks the error answers for objects that do not exist.
func (r *contractRun) errorMapping() {
	t, ctx, c := r.t, r.ctx, r.c
	const unknown = int64(2_000_000_000)
	_, err := c.GetGroup(ctx, unknown)
	if !host.IsNotFound(err) {
		t.Errorf("unknown group: IsNotFound false for %v", err)
	}
	wantHostError(t, "get unknown group", err, 404, "GROUP_NOT_FOUND")
	wantHostError(t, "delete unknown group", c.DeleteGroup(ctx, unknown), 404, "GROUP_NOT_FOUND")

	_, err = c.GetAccount(ctx, unknown)
	wantHostError(t, "get unknown account", err, 404, "ACCOUNT_NOT_FOUND")
	if err := c.DeleteAccount(ctx, unknown); err != nil {
		t.Errorf("delete unknown account: the hosts answer 200, got %v", err)
	}
	res, err := c.TestAccount(ctx, unknown, "gpt-4o-mini")
	switch r.p.AccountTestNotFoundStatus {
	case 404:
		wantHostError(t, "test unknown account", err, 404, "ACCOUNT_NOT_FOUND")
	default:
		// 0.1.129/0.1.179: 200 with a single error event.
		if err != nil {
			t.Errorf("test unknown account: want a failed 200 test, got %v", err)
		} else if res.Success || !strings.Contains(strings.ToLower(res.Error), "not found") {
			t.Errorf("test unknown account: want a failure naming 'not found', got success=%v error=%q", res.Success, res.Error)
		}
	}
	_, err = c.GetUser(ctx, unknown)
	wantHostError(t, "get unknown user", err, 404, "USER_NOT_FOUND")
	wantHostError(t, "revoke unknown subscription", c.RevokeSubscription(ctx, unknown), 404, "SUBSCRIPTION_NOT_FOUND")
	_, err = c.GatewayModels(ctx, r.prefix+"no-such-key-0123456789")
	wantHostError(t, "gateway with an unknown key", err, 401, "")
	if !r.p.IsWarmup(err) {
		t.Errorf("gateway with an unknown key: %v is not one of the profile's key-not-visible codes %v", err, r.p.KeyNotVisibleCodes)
	}
}

// group creates the import group, then checks that a repeat is refused with 409
// GROUP_EXISTS and that FindGroupByName adopts the existing group.
func (r *contractRun) group(spec host.AccountSpec) *host.Group {
	t, ctx, c := r.t, r.ctx, r.c
	req := host.CreateGroupRequest{Name: r.prefix + "group", Description: "cn-relay-manager contract test " + r.prefix,
		Platform: spec.GroupPlatform}
	g, err := c.CreateGroup(ctx, req)
	if err != nil {
		t.Fatalf("create group: %v", err)
	}
	r.track("group", func(ctx context.Context) error { return r.deleteGroup(ctx, g.ID) })
	if g.ID == 0 || g.Name != req.Name || g.Platform != spec.GroupPlatform {
		t.Errorf("create group answered %+v", g)
	}
	_, err = c.CreateGroup(ctx, req)
	if !host.IsCode(err, host.CodeGroupExists) {
		t.Errorf("repeat create group: want 409 %s, got %v", host.CodeGroupExists, err)
	}
	wantHostError(t, "repeat create group", err, 409, host.CodeGroupExists)
	found, err := c.FindGroupByName(ctx, req.Name)
	if err != nil || found == nil || found.ID != g.ID {
		t.Fatalf("find group by name after GROUP_EXISTS: %+v, %v (want id %d)", found, err, g.ID)
	}
	got, err := c.GetGroup(ctx, g.ID)
	if err != nil || got.Name != req.Name || got.Platform != spec.GroupPlatform {
		t.Errorf("get group: %+v, %v", got, err)
	}
	if none, err := c.FindGroupByName(ctx, r.prefix+"no-such-group"); err != nil || none != nil {
		t.Errorf("find unknown group: %+v, %v (want nil, nil)", none, err)
	}
	return g
}

func (r *contractRun) deleteGroup(ctx context.Context, id int64) error {
	if err := r.c.DeleteGroup(ctx, id); err != nil {
		return err
	}
	if _, err := r.c.GetGroup(ctx, id); !host.IsNotFound(err) {
		return fmt.Errorf("group %d still readable after delete: %v", id, err)
	}
	return nil
}

// account creates the account with the profile's recipe, replays the create with the same
// Idempotency-Key, and reads it back (get, list search).
func (r *contractRun) account(spec host.AccountSpec, g *host.Group, alias, model string) *host.Account {
	t, ctx, c := r.t, r.ctx, r.c
	name := r.prefix + "account"
	req := spec.CreateRequest(name, "cn-relay-manager contract test "+r.prefix, []int64{g.ID}, 1, 1)
	idem := r.prefix + "account-create"
	a, err := c.CreateAccount(ctx, req, idem)
	if err != nil {
		// 0.1.129/0.1.179 may leave the account behind on some errors: the sweep finds it.
		t.Fatalf("create account: %v", err)
	}
	r.track("account", func(ctx context.Context) error { return r.deleteAccount(ctx, a.ID) })
	if a.ID == 0 || a.Name != name || a.Platform != spec.Platform || a.Type != spec.Type {
		t.Errorf("create account answered id=%d name=%q platform=%q type=%q", a.ID, a.Name, a.Platform, a.Type)
	}
	again, err := c.CreateAccount(ctx, req, idem)
	if err != nil {
		t.Errorf("replay create account with the same Idempotency-Key: %v", err)
	} else if again.ID != a.ID {
		t.Errorf("replay create account: id %d, want %d (a second account was created)", again.ID, a.ID)
		r.track("replayed account", func(ctx context.Context) error { return r.deleteAccount(ctx, again.ID) })
	}

	got, err := c.GetAccount(ctx, a.ID)
	if err != nil {
		t.Fatalf("get account: %v", err)
	}
	if got.Name != name || got.Platform != spec.Platform || got.Type != spec.Type {
		t.Errorf("get account: name=%q platform=%q type=%q", got.Name, got.Platform, got.Type)
	}
	if !containsID(got.GroupIDs, g.ID) {
		t.Errorf("get account: group_ids %v lack group %d", got.GroupIDs, g.ID)
	}
	if k, has := got.Credentials["api_key"]; has && k != r.p.RedactedCredentialMarker {
		t.Errorf("get account: credentials.api_key is returned (%d chars), want it omitted or %q", len(fmt.Sprint(k)), r.p.RedactedCredentialMarker)
	}
	if spec.GatewayProtocol != "" && got.GatewayProtocol != spec.GatewayProtocol {
		t.Errorf("get account: gateway_protocol %q, want %q", got.GatewayProtocol, spec.GatewayProtocol)
	}
	mm := got.ModelMapping()
	_, scoped := got.Extra["model_scope_v2"]
	switch {
	case mm[alias] == model:
	case r.p.ModelMappingStyle == host.MappingScopeV2 && scoped:
	default:
		t.Errorf("get account: mapping %v (extra.model_scope_v2 present: %v) does not map %s to %s", mm, scoped, alias, model)
	}

	list, err := c.ListAccounts(ctx, r.prefix)
	if err != nil {
		t.Fatalf("list accounts: %v", err)
	}
	n := 0
	for _, la := range list {
		if !strings.HasPrefix(la.Name, r.prefix) {
			t.Errorf("list accounts search %q returned %q", r.prefix, la.Name)
		}
		if la.ID == a.ID {
			n++
		}
	}
	if n != 1 {
		t.Errorf("list accounts search %q: account %d listed %d times in %d items", r.prefix, a.ID, n, len(list))
	}
	return got
}

func (r *contractRun) deleteAccount(ctx context.Context, id int64) error {
	if err := r.c.DeleteAccount(ctx, id); err != nil {
		return err
	}
	if _, err := r.c.GetAccount(ctx, id); !host.IsNotFound(err) {
		return fmt.Errorf("account %d still readable after delete: %v", id, err)
	}
	return nil
}

// accountTest runs the host's account test with the public model id. On profiles whose
// test cannot check chat-only upstreams (0.1.129: forced chat completions) a failure is
// expected and only logged, as the pipeline does.
func (r *contractRun) accountTest(a *host.Account, alias string) {
	t := r.t
	var res *host.TestResult
	err := r.tg.eventually(r.ctx, r.p, func() (bool, error) {
		var err error
		res, err = r.c.TestAccount(host.WithSecrets(r.ctx, r.tg.upstreamKey), a.ID, alias)
		if err != nil {
			return false, err
		}
		// A failed test during warm-up is retried while the window is open.
		return res.Success || !r.p.AccountTestTrustedChatOnly, nil
	})
	if err != nil {
		t.Fatalf("test account: %v (last result %+v)", err, res)
	}
	if !r.p.AccountTestTrustedChatOnly {
		t.Logf("account test not trusted on %s: success=%v error=%q", r.p.Name, res.Success, res.Error)
		return
	}
	if !res.Success || res.Output() == "" {
		t.Errorf("test account: success=%v output=%q error=%q", res.Success, res.Output(), res.Error)
	}
	if strings.Contains(fmt.Sprint(res.Events), r.tg.upstreamKey) {
		t.Errorf("test account: events carry the upstream key")
	}
}

// user creates the end user, adds balance with an Idempotency-Key (replayed, then reused
// with another body), and reads the user back.
func (r *contractRun) user() (*host.User, string) {
	t, ctx, c := r.t, r.ctx, r.c
	email := r.prefix + "user@example.com"
	password := "Pw-" + randomHex(t, 12)
	u, err := c.CreateUser(ctx, host.CreateUserRequest{Email: email, Password: password, Username: r.prefix + "user",
		Notes: "cn-relay-manager contract test " + r.prefix})
	if err != nil {
		t.Fatalf("create user: %v", err)
	}
	r.track("user", func(ctx context.Context) error { return r.deleteUser(ctx, u.ID) })
	if u.ID == 0 || !strings.EqualFold(u.Email, email) {
		t.Errorf("create user answered id=%d email=%q", u.ID, u.Email)
	}
	_, err = c.CreateUser(ctx, host.CreateUserRequest{Email: email, Password: password})
	wantHostError(t, "repeat create user", err, 409, host.CodeEmailExists)
	found, err := c.FindUserByEmail(ctx, email)
	if err != nil || found == nil || found.ID != u.ID {
		t.Errorf("find user by e-mail: %+v, %v (want id %d)", found, err, u.ID)
	}

	before, err := c.GetUser(ctx, u.ID)
	if err != nil {
		t.Fatalf("get user: %v", err)
	}
	idem := r.prefix + "balance"
	const amount = 5
	for i := 0; i < 2; i++ {
		got, err := c.AddBalance(ctx, u.ID, amount, "cn-relay-manager contract test", idem)
		if err != nil {
			t.Fatalf("add balance (call %d): %v", i+1, err)
		}
		if !balanceIs(got.Balance, before.Balance+amount) {
			t.Errorf("add balance (call %d) answered balance %v, want %v", i+1, got.Balance, before.Balance+amount)
		}
	}
	_, err = c.AddBalance(ctx, u.ID, amount+1, "cn-relay-manager contract test", idem)
	wantHostError(t, "add balance: same Idempotency-Key, other body", err, 409, host.CodeIdempotencyReuse)
	after, err := c.GetUser(ctx, u.ID)
	if err != nil {
		t.Fatalf("get user: %v", err)
	}
	if !balanceIs(after.Balance, before.Balance+amount) {
		t.Errorf("balance after a replayed add: %v, want %v (added twice?)", after.Balance, before.Balance+amount)
	}
	return after, password
}

func balanceIs(got, want float64) bool { return got > want-1e-6 && got < want+1e-6 }

func (r *contractRun) deleteUser(ctx context.Context, id int64) error {
	if err := r.c.DeleteUser(ctx, id); err != nil {
		return err
	}
	if _, err := r.c.GetUser(ctx, id); !host.IsNotFound(err) {
		return fmt.Errorf("user %d still readable after delete: %v", id, err)
	}
	return nil
}

// login logs in as the end user (and checks a wrong password is refused).
func (r *contractRun) login(u *host.User, password string) string {
	t, ctx, c := r.t, r.ctx, r.c
	_, err := c.Login(ctx, u.Email, password+"-wrong")
	wantHostError(t, "login with a wrong password", err, 401, "")
	s, err := c.Login(ctx, u.Email, password)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if s.AccessToken == "" || s.User.ID != u.ID {
		t.Errorf("login: token empty=%v user id %d, want %d", s.AccessToken == "", s.User.ID, u.ID)
	}
	return s.AccessToken
}

// key creates the end user's key on the group with a custom (deterministic) value.
func (r *contractRun) key(token string, u *host.User, g *host.Group) *host.APIKey {
	t, ctx, c := r.t, r.ctx, r.c
	custom := r.prefix + "key-" + randomHex(t, 12)
	k, err := c.CreateKey(ctx, token, host.CreateKeyRequest{Name: r.prefix + "key", GroupID: g.ID, CustomKey: custom}, "")
	if err != nil {
		t.Fatalf("create key: %v", err)
	}
	r.track("key", func(ctx context.Context) error { return r.deleteKey(ctx, token, u.ID, k.ID) })
	if k.Key != custom || k.GroupID != g.ID || k.UserID != u.ID {
		t.Errorf("create key answered custom key kept=%v group %d user %d", k.Key == custom, k.GroupID, k.UserID)
	}
	_, err = c.CreateKey(ctx, token, host.CreateKeyRequest{Name: r.prefix + "key-dup", GroupID: g.ID, CustomKey: custom}, "")
	wantHostError(t, "create key with a taken custom value", err, 409, host.CodeAPIKeyExists)
	keys, err := c.ListKeys(ctx, token)
	if err != nil || !hasKey(keys, k.ID) {
		t.Errorf("list keys: %d keys, %v; want key %d", len(keys), err, k.ID)
	}
	return k
}

func hasKey(keys []host.APIKey, id int64) bool {
	for _, k := range keys {
		if k.ID == id {
			return true
		}
	}
	return false
}

func (r *contractRun) deleteKey(ctx context.Context, token string, userID, id int64) error {
	if err := r.c.DeleteKey(ctx, token, id); err != nil {
		return err
	}
	keys, err := r.c.ListUserKeys(ctx, userID)
	if err != nil {
		return err
	}
	if hasKey(keys, id) {
		return fmt.Errorf("key %d still listed after delete", id)
	}
	return nil
}

// gateway lists the key's models and chats through it (plain and streamed), then checks the
// profile's answer for a model no account maps.
func (r *contractRun) gateway(k *host.APIKey, alias string) {
	t, ctx, c := r.t, r.ctx, r.c
	var ids []string
	err := r.tg.eventually(ctx, r.p, func() (bool, error) {
		var err error
		ids, err = c.GatewayModels(ctx, k.Key)
		// 0.1.129/0.1.179 list a built-in catalog while no account routes: wait for the alias.
		return containsString(ids, alias), err
	})
	if err != nil {
		t.Errorf("gateway models: %v (listed %v, want %s)", err, ids, alias)
	}
	for _, stream := range []bool{false, true} {
		var res *host.ChatResult
		err := r.tg.eventually(ctx, r.p, func() (bool, error) {
			var err error
			res, err = c.GatewayChat(ctx, k.Key, host.ChatRequest{Model: alias, Prompt: "Say hi.", MaxTokens: 16, Stream: stream})
			return err == nil, err
		})
		if err != nil {
			t.Errorf("gateway chat (stream=%v): %v", stream, err)
			continue
		}
		if res.Content == "" {
			t.Errorf("gateway chat (stream=%v): empty answer (status %d, content type %q)", stream, res.Status, res.ContentType)
		}
	}
	_, err = c.GatewayChat(ctx, k.Key, host.ChatRequest{Model: r.prefix + "no-such-model", MaxTokens: 16})
	he := wantHostError(t, "gateway chat with an unmapped model", err, r.p.UnknownModelStatus, "")
	if he != nil {
		t.Logf("unmapped model: %d %s", he.Status, he.Code)
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsID(list []int64, id int64) bool {
	for _, x := range list {
		if x == id {
			return true
		}
	}
	return false
}

// subscription creates a subscription group, checks that a key cannot bind it before the
// subscription exists, assigns the subscription (identical repeat → same row, different
// terms → 409) and binds a second key.
func (r *contractRun) subscription(token string, u *host.User, std *host.Group, spec host.AccountSpec) (*host.Group, *host.Subscription, *host.APIKey) {
	t, ctx, c := r.t, r.ctx, r.c
	sg, err := c.CreateGroup(ctx, host.CreateGroupRequest{Name: r.prefix + "sub-group", Platform: spec.GroupPlatform,
		SubscriptionType: "subscription", Description: "cn-relay-manager contract test " + r.prefix})
	if err != nil {
		t.Fatalf("create subscription group: %v", err)
	}
	r.track("subscription group", func(ctx context.Context) error { return r.deleteGroup(ctx, sg.ID) })
	if sg.SubscriptionType != "subscription" {
		t.Errorf("subscription group answered subscription_type %q", sg.SubscriptionType)
	}
	subKeyReq := host.CreateKeyRequest{Name: r.prefix + "sub-key", GroupID: sg.ID, CustomKey: r.prefix + "sub-key-" + randomHex(t, 12)}
	_, err = c.CreateKey(ctx, token, subKeyReq, "")
	wantHostError(t, "create key on a subscription group without subscription", err, 403, "GROUP_NOT_ALLOWED")

	_, err = c.AssignSubscription(ctx, host.AssignSubscriptionRequest{UserID: u.ID, GroupID: std.ID, ValidityDays: 30})
	wantHostError(t, "assign a subscription on a standard group", err, 400, "GROUP_NOT_SUBSCRIPTION_TYPE")

	req := host.AssignSubscriptionRequest{UserID: u.ID, GroupID: sg.ID, ValidityDays: 30, Notes: "cn-relay-manager contract test"}
	sub, err := c.AssignSubscription(ctx, req)
	if err != nil {
		t.Fatalf("assign subscription: %v", err)
	}
	r.track("subscription", func(ctx context.Context) error { return r.revokeSubscription(ctx, u.ID, sub.ID) })
	if sub.ID == 0 || sub.UserID != u.ID || sub.GroupID != sg.ID {
		t.Errorf("assign subscription answered %+v", sub)
	}
	again, err := c.AssignSubscription(ctx, req)
	if err != nil || again.ID != sub.ID {
		t.Errorf("identical repeat of assign: %+v, %v (want id %d)", again, err, sub.ID)
	}
	conflict := req
	conflict.ValidityDays = 31
	_, err = c.AssignSubscription(ctx, conflict)
	if he := wantHostError(t, "assign with other terms", err, 409, host.CodeSubscriptionClash); he != nil && he.Metadata["conflict_reason"] == nil {
		t.Errorf("assign with other terms: no metadata.conflict_reason in %v", he.Metadata)
	}
	subs, err := c.ListUserSubscriptions(ctx, u.ID)
	if err != nil || !hasSub(subs, sub.ID) {
		t.Errorf("list user subscriptions: %+v, %v; want id %d", subs, err, sub.ID)
	}

	sk, err := c.CreateKey(ctx, token, subKeyReq, "")
	if err != nil {
		t.Fatalf("create key on the subscription group: %v", err)
	}
	r.track("subscription key", func(ctx context.Context) error { return r.deleteKey(ctx, token, u.ID, sk.ID) })
	if sk.GroupID != sg.ID {
		t.Errorf("subscription key bound to group %d, want %d", sk.GroupID, sg.ID)
	}
	return sg, sub, sk
}

func hasSub(subs []host.Subscription, id int64) bool {
	for _, s := range subs {
		if s.ID == id {
			return true
		}
	}
	return false
}

func (r *contractRun) revokeSubscription(ctx context.Context, userID, id int64) error {
	if err := r.c.RevokeSubscription(ctx, id); err != nil {
		return err
	}
	subs, err := r.c.ListUserSubscriptions(ctx, userID)
	if err != nil {
		return err
	}
	if hasSub(subs, id) {
		return fmt.Errorf("subscription %d still listed after revoke", id)
	}
	return nil
}

// deletes removes everything in reverse dependency order through the client and checks what
// the host answers afterwards (the tracked cleanups then have nothing left to do).
func (r *contractRun) deletes(token string, u *host.User, g *host.Group, a *host.Account, k *host.APIKey,
	sg *host.Group, sub *host.Subscription, sk *host.APIKey) {
	t, ctx, c := r.t, r.ctx, r.c
	step := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("delete %s: %v", what, err)
			return
		}
		r.gone[what] = true
	}
	step("subscription key", r.deleteKey(ctx, token, u.ID, sk.ID))
	wantHostError(t, "delete a deleted key", c.DeleteKey(ctx, token, sk.ID), 404, "API_KEY_NOT_FOUND")
	step("key", r.deleteKey(ctx, token, u.ID, k.ID))
	_, err := c.GatewayModels(ctx, k.Key)
	wantHostError(t, "gateway with a deleted key", err, 401, "")
	step("subscription", r.revokeSubscription(ctx, u.ID, sub.ID))
	wantHostError(t, "revoke a revoked subscription", c.RevokeSubscription(ctx, sub.ID), 404, "SUBSCRIPTION_NOT_FOUND")
	step("subscription group", r.deleteGroup(ctx, sg.ID))
	step("user", r.deleteUser(ctx, u.ID))
	wantHostError(t, "delete a deleted user", c.DeleteUser(ctx, u.ID), 404, "USER_NOT_FOUND")
	step("account", r.deleteAccount(ctx, a.ID))
	if err := c.DeleteAccount(ctx, a.ID); err != nil {
		t.Errorf("delete a deleted account: the hosts answer 200, got %v", err)
	}
	step("group", r.deleteGroup(ctx, g.ID))
	wantHostError(t, "delete a deleted group", c.DeleteGroup(ctx, g.ID), 404, "GROUP_NOT_FOUND")
}

// sweep runs after every tracked cleanup: nothing with the run's prefix may be left. What is
// found is deleted (accounts, groups, the user) and reported.
func (r *contractRun) sweep() {
	t, c := r.t, r.c
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	accounts, err := c.ListAccounts(ctx, r.prefix)
	if err != nil {
		t.Errorf("sweep: list accounts: %v", err)
	}
	for _, a := range accounts {
		if strings.HasPrefix(a.Name, r.prefix) {
			t.Errorf("sweep: account %d %q was left behind; deleting it", a.ID, a.Name)
			_ = c.DeleteAccount(ctx, a.ID)
		}
	}
	if u, err := c.FindUserByEmail(ctx, r.prefix+"user@example.com"); err != nil {
		t.Errorf("sweep: find user: %v", err)
	} else if u != nil {
		t.Errorf("sweep: user %d %q was left behind; deleting it", u.ID, u.Email)
		_ = c.DeleteUser(ctx, u.ID)
	}
	groups, err := c.ListGroups(ctx, r.prefix)
	if err != nil {
		t.Errorf("sweep: list groups: %v", err)
	}
	for _, g := range groups {
		if strings.HasPrefix(g.Name, r.prefix) {
			t.Errorf("sweep: group %d %q was left behind; deleting it", g.ID, g.Name)
			_ = c.DeleteGroup(ctx, g.ID)
		}
	}
}
