package pipeline

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/step"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// runAccessClosure gives the managed end user access to the item's group (balance or
// subscription), then proves with a real end-user call that the model answers.
func (e *Engine) runAccessClosure(ctx context.Context, sc *stepContext) result {
	groupID, stop := e.recorded(ctx, sc, store.TypeGroup, groupOf(sc.item), step.AccessClosure, store.ItemClosingAccess)
	if stop != nil {
		return *stop
	}
	it := sc.item
	if sc.host.Flags["end_user_login_blocked"] {
		return result{outcome: store.OutcomeFailed, class: failure.HostRejected, status: store.ItemFailed,
			message: "the host blocks end-user logins (captcha or backend mode), so no end-user key can be created: " +
				strings.Join(sc.host.Warnings, "; ") + "; use access mode none, or turn the blocker off and retry"}
	}
	user, password, err := e.ensureUser(ctx, sc)
	if err == nil {
		err = e.use(ctx, sc, store.TypeUser, e.Settings.ManagedUserEmail)
	}
	if err != nil {
		return e.hostFailure(sc, step.AccessClosure, store.ItemClosingAccess, err)
	}
	switch sc.batch.Mode {
	case ModeSubscription:
		// Assign before creating the key: key binding checks for an active subscription.
		if err := e.ensureSubscription(ctx, sc, user.ID, groupID); err != nil {
			return e.hostFailure(sc, step.AccessClosure, store.ItemClosingAccess, err)
		}
	default:
		if err := e.ensureBalance(ctx, sc, user); err != nil {
			return e.hostFailure(sc, step.AccessClosure, store.ItemClosingAccess, err)
		}
	}
	var key string
	err = e.asUser(ctx, sc, user, password, func(token string) error {
		var err error
		key, err = e.ensureKey(ctx, sc, token, groupID)
		return err
	})
	if err != nil {
		return e.hostFailure(sc, step.AccessClosure, store.ItemClosingAccess, err)
	}
	it.AccessStatus = "key_bound"
	if res, ok := e.smoke(ctx, sc, key); !ok {
		return res
	}
	// The group answered end to end; in a pooled group that does not say which account
	// did, so the item's own account is proven apart (unless its account test did).
	switch {
	case it.KeyProof != "":
	case sc.batch.Options.GroupMode() == store.GroupPerItem:
		it.KeyProof = store.KeyProofSoleAccount
	default:
		return e.proveAccount(ctx, sc, key)
	}
	return result{outcome: store.OutcomeOK, status: e.readyStatus(it),
		message: fmt.Sprintf("end-user proof passed: %s listed and answered through group %q; account proven by %s", it.SmokeModel, groupOf(it), keyProofText(it.KeyProof))}
}

func keyProofText(p string) string {
	switch p {
	case store.KeyProofAccountTest:
		return "the host's account test"
	case store.KeyProofGatewayAlias:
		return "a gateway call routed only to it"
	case store.KeyProofSoleAccount:
		return "being the group's only account"
	}
	return p
}

// smoke is the end-user proof of the group: /v1/models lists the smoke model and a
// minimal chat completion succeeds, both through the host's public URL with the managed
// key. ok is false when the step must wait or fail (res says how).
func (e *Engine) smoke(ctx context.Context, sc *stepContext, key string) (res result, ok bool) {
	it := sc.item
	models, err := sc.client.GatewayModels(ctx, key)
	if err != nil {
		return e.smokeFailure(ctx, sc, "GET /v1/models", err), false
	}
	if !contains(models, it.SmokeModel) {
		return e.waitOrTimeout(sc, step.AccessClosure, store.ItemVerifying,
			fmt.Sprintf("/v1/models does not list %s yet (host lists %d models)", it.SmokeModel, len(models)), failure.ConfirmationTimeout), false
	}
	chat, err := sc.client.GatewayChat(ctx, key, host.ChatRequest{Model: it.SmokeModel, Prompt: "Reply with one word: ok", MaxTokens: 1})
	if err != nil {
		return e.smokeFailure(ctx, sc, "POST /v1/chat/completions", err), false
	}
	it.AccessStatus = "proven"
	it.SmokePreview = truncate(fmt.Sprintf("%d %s %s", chat.Status, mediaType(chat.ContentType), strings.TrimSpace(chat.Content)), 120)
	return result{}, true
}

// smokeFailure decides between waiting (the host is still warming up or has not seen the
// key yet) and failing with the class the direct upstream evidence supports.
func (e *Engine) smokeFailure(ctx context.Context, sc *stepContext, call string, err error) result {
	he, isHost := host.AsError(err)
	if isHost && (he.Status == 0 || he.Status >= 500 && !sc.profile.IsWarmup(err)) && he.Code != "upstream_error" {
		return e.hostFailure(sc, step.AccessClosure, store.ItemVerifying, err)
	}
	warming := isHost && (sc.profile.IsWarmup(err) || he.Status == 401 || he.Code == "model_not_found")
	inWindow := sc.item.WindowDeadline != nil && e.now().Before(*sc.item.WindowDeadline)
	if warming && inWindow {
		return e.waitOrTimeout(sc, step.AccessClosure, store.ItemVerifying,
			fmt.Sprintf("%s answered %s; the host may still be warming up", call, describe(err)), failure.ConfirmationTimeout)
	}
	// Not a warm-up answer, or the window closed: gather direct upstream evidence now.
	it := sc.item
	if uerr := e.Prober.Chat(ctx, it.NormalizedURL, sc.apiKey, it.Provider, it.SmokeModel); uerr != nil {
		fe := classify(uerr)
		return result{outcome: store.OutcomeFailed, class: fe.Class, status: store.ItemFailed,
			message: fmt.Sprintf("%s answered %s and the upstream fails directly too: %s", call, describe(err), fe.Error())}
	}
	class := failure.HostCompatibilityGap
	if warming {
		class = failure.ConfirmationTimeout
	} else if why := e.baseURLRefusal(ctx, sc); why != "" {
		// 0.1.129 and 0.1.179 apply their outbound URL policy only when they forward, and
		// then answer the client a bare 502; their account test names the reason.
		return e.policyRefused(sc, fmt.Sprintf("%s answered %s; account test: %s", call, describe(err), why))
	}
	return result{outcome: store.OutcomeFailed, class: class, status: store.ItemFailed,
		message: fmt.Sprintf("%s answered %s while the upstream answers directly", call, describe(err))}
}

// baseURLRefusal asks the host's account test whether the host refuses to call the item's
// upstream at all; it returns the test's reason, or "" when it does not say so.
func (e *Engine) baseURLRefusal(ctx context.Context, sc *stepContext) string {
	accID, ok, err := e.ledgerID(ctx, sc, store.TypeAccount, accountName(sc))
	if err != nil || !ok {
		return ""
	}
	res, err := sc.client.TestAccount(ctx, accID, sc.item.SmokeModel)
	if err != nil || !res.BaseURLRefused() {
		return ""
	}
	return res.Error
}

func describe(err error) string {
	if he, ok := host.AsError(err); ok {
		return fmt.Sprintf("%d %s: %s", he.Status, he.Code, truncate(he.Message, 160))
	}
	return err.Error()
}

func mediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		return ct[:i]
	}
	return ct
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (e *Engine) topUp(b *store.Batch) float64 {
	if b.Options.TopUpAmount > 0 {
		return b.Options.TopUpAmount
	}
	return e.Settings.TopUpAmount
}

func (e *Engine) validityDays(b *store.Batch) int {
	if b.Options.ValidityDays > 0 {
		return b.Options.ValidityDays
	}
	if e.Settings.ValidityDays > 0 {
		return e.Settings.ValidityDays
	}
	return 30
}

// ensureUser finds or creates the managed end user. Its password is derived from the
// master key (so a lost database row does not lock us out) and stored sealed.
func (e *Engine) ensureUser(ctx context.Context, sc *stepContext) (*host.User, string, error) {
	email := e.Settings.ManagedUserEmail
	password := "Crm-" + e.Box.Derive("user-password:"+sc.host.ID+":"+email, 28)
	sealed, err := e.Box.Seal(password)
	if err != nil {
		return nil, "", err
	}
	r, err := e.ensureIntent(ctx, sc, &store.Resource{HostID: sc.host.ID, BatchID: sc.batch.ID, ItemID: sc.item.ID,
		Type: store.TypeUser, Name: email, SecretEnc: sealed})
	if err != nil {
		return nil, "", err
	}
	if r.SecretEnc != "" {
		if p, err := e.Box.Open(r.SecretEnc); err == nil {
			password = p
		}
	}
	if id, ok := hostID(r); ok && r.State != store.ResourceDeleted {
		u, err := sc.client.GetUser(ctx, id)
		if err == nil {
			return u, password, nil
		}
		if !host.IsNotFound(err) {
			return nil, "", err
		}
	}
	u, err := sc.client.FindUserByEmail(ctx, email)
	if err != nil {
		return nil, "", fmt.Errorf("find managed user: %w", err)
	}
	state := store.ResourceAdopted
	if u == nil {
		u, err = sc.client.CreateUser(ctx, host.CreateUserRequest{Email: email, Password: password,
			Username: "crm-managed", Notes: "managed end user of cn-relay-manager", Concurrency: 10})
		if host.IsCode(err, host.CodeEmailExists) {
			u, err = sc.client.FindUserByEmail(ctx, email)
		} else if err == nil {
			state = store.ResourceCreated
		}
		if err != nil {
			return nil, "", fmt.Errorf("create managed user: %w", err)
		}
		if u == nil {
			return nil, "", fmt.Errorf("managed user %s exists but cannot be found", email)
		}
	}
	// Items of a batch ensure the user concurrently; the store never lets an item that
	// merely found the user relabel it from created to adopted (rollback keeps adopted).
	createdHere := state == store.ResourceCreated && r.State != store.ResourceCreated
	if createdHere || r.State == store.ResourceIntent || r.State == store.ResourceDeleted || r.HostResourceID == nil || *r.HostResourceID != idString(u.ID) {
		r.SecretEnc = sealed
		r.Origin = store.OriginFound
		if state == store.ResourceCreated {
			r.Origin = store.OriginCreated
		}
		if err := e.markCreated(ctx, sc, r, idString(u.ID), state); err != nil {
			return nil, "", err
		}
	}
	return u, password, nil
}

// ensureBalance tops the managed user's balance up to the configured amount, once per
// batch. Items of a batch get here together: in this process they take turns per user (and
// the later ones find the balance already topped up); across processes the Idempotency-Key
// makes the host add it once, and a write still in progress elsewhere is waited for.
func (e *Engine) ensureBalance(ctx context.Context, sc *stepContext, u *host.User) error {
	want := e.topUp(sc.batch)
	if u.Balance >= want/2 {
		return nil
	}
	defer e.lockUser(sc.host.ID, u.ID)()
	// Another item may have topped the user up while this one waited for its turn.
	fresh, err := sc.client.GetUser(ctx, u.ID)
	if err != nil {
		return fmt.Errorf("read managed user balance: %w", err)
	}
	if fresh.Balance >= want/2 {
		return nil
	}
	idem := fmt.Sprintf("crm-topup-%s-%d", sc.batch.ID, u.ID)
	_, err = sc.client.AddBalance(ctx, u.ID, want, "cn-relay-manager top-up for batch "+sc.batch.ID, idem)
	if host.IsIdempotencyBusy(err) {
		// The same top-up is still being applied by another worker process (the client
		// already waited a little): what counts is the balance, so read it.
		if fresh, gerr := sc.client.GetUser(ctx, u.ID); gerr == nil && fresh.Balance >= want/2 {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("top up managed user: %w", err)
	}
	return nil
}

// ensureSubscription assigns the managed user a subscription to the group, once per
// (user, group): items of a pooled group take turns in this process; across processes the
// host refuses the second of two simultaneous assigns (409 SUBSCRIPTION_ALREADY_EXISTS) and
// the loser adopts the winner's subscription.
func (e *Engine) ensureSubscription(ctx context.Context, sc *stepContext, userID, groupID int64) error {
	defer e.lockUser("sub|"+sc.host.ID+"|"+idString(groupID), userID)()
	name := fmt.Sprintf("%ssub-%d-%d", ProvenancePrefix, userID, groupID)
	r, err := e.intent(ctx, sc, store.TypeSubscription, name, "")
	if err != nil {
		return err
	}
	if _, ok := hostID(r); ok && comparableState(r.State) {
		return e.Store.AddUse(ctx, r.ID, sc.batch.ID, sc.item.ID)
	}
	origin := store.OriginCreated
	sub, err := sc.client.AssignSubscription(ctx, host.AssignSubscriptionRequest{UserID: userID, GroupID: groupID,
		ValidityDays: e.validityDays(sc.batch), Notes: provenance(sc.item)})
	if host.IsCode(err, host.CodeSubscriptionClash) || host.IsCode(err, host.CodeSubscriptionExists) {
		// It was there before us (rollback must not revoke it), or another process's item
		// assigned it a moment ago: that item records it as created, which wins over found.
		origin = store.OriginFound
		// A live subscription with other terms exists: adopt it rather than fight it.
		subs, lerr := sc.client.ListUserSubscriptions(ctx, userID)
		if lerr != nil {
			return fmt.Errorf("list subscriptions after conflict: %w", lerr)
		}
		for i := range subs {
			if subs[i].GroupID == groupID {
				sub, err = &subs[i], nil
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("assign subscription: %w", err)
	}
	if sub == nil {
		return fmt.Errorf("assign subscription: conflict reported but no subscription found for group %d", groupID)
	}
	r.ParentID = idString(groupID)
	r.Origin = origin
	state := store.ResourceCreated
	if origin == store.OriginFound {
		state = store.ResourceAdopted
	}
	if err := e.markCreated(ctx, sc, r, idString(sub.ID), state); err != nil {
		return err
	}
	return e.Store.AddUse(ctx, r.ID, sc.batch.ID, sc.item.ID)
}

// keyName is the managed user's key for a group. A pooled import holds one key per (user,
// group), whatever the number of items and batches (0.2.11+ hosts cap keys per user at 200
// and creations at 60 an hour); a per-item import keeps one key per item.
func keyName(sc *stepContext, groupName string, groupID int64) string {
	if sc.batch.Options.GroupMode() == store.GroupPerItem {
		return objectName("k", sc.item)
	}
	if groupID == 0 {
		return "crm-key " + groupName // a dry-run plan of a group not created yet
	}
	return fmt.Sprintf("crm-key %s #%d", groupName, groupID)
}

// ensureKey finds or creates the managed user's key bound to the group. The key value
// is derived from the master key, so a retry after a crash finds the same key instead of
// creating another.
func (e *Engine) ensureKey(ctx context.Context, sc *stepContext, token string, groupID int64) (string, error) {
	name := keyName(sc, groupOf(sc.item), groupID)
	value := "sk-crm-" + e.Box.Derive("end-user-key:"+sc.host.ID+":group:"+idString(groupID), 48)
	idem := fmt.Sprintf("crm-%s-key-%d", sc.batch.ID, groupID)
	if sc.batch.Options.GroupMode() == store.GroupPerItem {
		value = "sk-crm-" + e.Box.Derive("end-user-key:"+sc.host.ID+":"+sc.item.ID, 48)
		idem = idempotencyKey(sc.item, "key")
	}
	r, err := e.intent(ctx, sc, store.TypeKey, name, idem)
	if err != nil {
		return "", err
	}
	if _, ok := hostID(r); ok && comparableState(r.State) {
		if v, err := e.Box.Open(r.SecretEnc); err == nil && v != "" {
			return v, e.Store.AddUse(ctx, r.ID, sc.batch.ID, sc.item.ID)
		}
	}
	k, err := sc.client.CreateKey(ctx, token, host.CreateKeyRequest{Name: name, GroupID: groupID, CustomKey: value}, idem)
	if host.IsCode(err, host.CodeAPIKeyExists) {
		keys, lerr := sc.client.ListKeys(ctx, token)
		if lerr != nil {
			return "", fmt.Errorf("list keys after conflict: %w", lerr)
		}
		for i := range keys {
			if keys[i].Key == value {
				k, err = &keys[i], nil
				break
			}
		}
	}
	if err != nil {
		return "", fmt.Errorf("create end-user key: %w", err)
	}
	if k == nil {
		return "", fmt.Errorf("end-user key %s exists but is not listed for the managed user", name)
	}
	if r.SecretEnc, err = e.Box.Seal(value); err != nil {
		return "", err
	}
	r.ParentID = idString(groupID)
	r.Origin = store.OriginCreated
	if err := e.markCreated(ctx, sc, r, idString(k.ID), store.ResourceCreated); err != nil {
		return "", err
	}
	return value, e.Store.AddUse(ctx, r.ID, sc.batch.ID, sc.item.ID)
}

// userToken logs in as the managed user, caching the JWT: hosts rate-limit logins (20 a
// minute per client address), and a batch needs one key per item. The cache is keyed by
// the user's host ID, so a user deleted and created again (rollback, then a new batch) never
// gets the token of its predecessor.
func (e *Engine) userToken(ctx context.Context, sc *stepContext, u *host.User, password string) (string, error) {
	k := tokenKey(sc, u.ID)
	// Items of a batch ask at the same moment: one logs in, the others wait for its token.
	defer e.lockUser("login|"+sc.host.ID, u.ID)()
	e.mu.Lock()
	t, ok := e.tokens[k]
	e.mu.Unlock()
	if ok && e.now().Before(t.expires) {
		return t.token, nil
	}
	s, err := sc.client.Login(ctx, u.Email, password)
	if err != nil {
		return "", fmt.Errorf("log in as managed user: %w", err)
	}
	life := time.Duration(s.ExpiresIn) * time.Second
	if life <= 0 {
		life = time.Hour
	}
	e.mu.Lock()
	if e.tokens == nil {
		e.tokens = map[string]cachedToken{}
	}
	e.tokens[k] = cachedToken{token: s.AccessToken, expires: e.now().Add(life * 9 / 10)}
	e.mu.Unlock()
	return s.AccessToken, nil
}

func (e *Engine) dropToken(sc *stepContext, userID int64) {
	e.mu.Lock()
	delete(e.tokens, tokenKey(sc, userID))
	e.mu.Unlock()
}

func tokenKey(sc *stepContext, userID int64) string { return sc.host.ID + "|" + idString(userID) }
