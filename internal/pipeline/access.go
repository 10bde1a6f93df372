package pipeline

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// runAccessClosure gives the managed end user access to the item's group (balance or
// subscription), then proves with a real end-user call that the model answers.
func (e *Engine) runAccessClosure(ctx context.Context, sc *stepContext) result {
	it := sc.item
	groupID, ok, err := e.ledgerID(ctx, sc, store.TypeGroup, objectName("g", it))
	if err != nil {
		return e.retryOrFail(sc, StepAccessClosure, store.ItemClosingAccess, err)
	}
	if !ok {
		return result{outcome: store.OutcomeFailed, class: failure.Internal, status: store.ItemFailed, message: "the ledger holds no group for this item"}
	}
	if sc.host.Flags["end_user_login_blocked"] {
		return result{outcome: store.OutcomeFailed, class: failure.HostRejected, status: store.ItemFailed,
			message: "the host blocks end-user logins (captcha or backend mode), so no end-user key can be created: " +
				strings.Join(sc.host.Warnings, "; ") + "; use access mode none, or turn the blocker off and retry"}
	}
	user, password, err := e.ensureUser(ctx, sc)
	if err != nil {
		return e.hostFailure(sc, StepAccessClosure, store.ItemClosingAccess, err)
	}
	switch sc.batch.Mode {
	case ModeSubscription:
		// Assign before creating the key: key binding checks for an active subscription.
		if err := e.ensureSubscription(ctx, sc, user.ID, groupID); err != nil {
			return e.hostFailure(sc, StepAccessClosure, store.ItemClosingAccess, err)
		}
	default:
		if err := e.ensureBalance(ctx, sc, user); err != nil {
			return e.hostFailure(sc, StepAccessClosure, store.ItemClosingAccess, err)
		}
	}
	var key string
	err = e.asUser(ctx, sc, user, password, func(token string) error {
		var err error
		key, err = e.ensureKey(ctx, sc, token, groupID)
		return err
	})
	if err != nil {
		return e.hostFailure(sc, StepAccessClosure, store.ItemClosingAccess, err)
	}
	it.AccessStatus = "key_bound"
	return e.smoke(ctx, sc, key)
}

// smoke is the end-user proof: /v1/models lists the smoke model and a minimal chat
// completion succeeds, both through the host's public URL with the managed key.
func (e *Engine) smoke(ctx context.Context, sc *stepContext, key string) result {
	it := sc.item
	models, err := sc.client.GatewayModels(ctx, key)
	if err != nil {
		return e.smokeFailure(ctx, sc, "GET /v1/models", err)
	}
	if !contains(models, it.SmokeModel) {
		return e.waitOrTimeout(sc, StepAccessClosure, store.ItemVerifying,
			fmt.Sprintf("/v1/models does not list %s yet (host lists %d models)", it.SmokeModel, len(models)), failure.ConfirmationTimeout)
	}
	chat, err := sc.client.GatewayChat(ctx, key, host.ChatRequest{Model: it.SmokeModel, Prompt: "Reply with one word: ok", MaxTokens: 1})
	if err != nil {
		return e.smokeFailure(ctx, sc, "POST /v1/chat/completions", err)
	}
	it.AccessStatus = "proven"
	it.SmokePreview = truncate(fmt.Sprintf("%d %s %s", chat.Status, mediaType(chat.ContentType), strings.TrimSpace(chat.Content)), 120)
	return result{outcome: store.OutcomeOK, status: e.readyStatus(it),
		message: fmt.Sprintf("end-user proof passed: %s listed and answered through the host", it.SmokeModel)}
}

// smokeFailure decides between waiting (the host is still warming up or has not seen the
// key yet) and failing with the class the direct upstream evidence supports.
func (e *Engine) smokeFailure(ctx context.Context, sc *stepContext, call string, err error) result {
	he, isHost := host.AsError(err)
	if isHost && (he.Status == 0 || he.Status >= 500 && !sc.profile.IsWarmup(err)) && he.Code != "upstream_error" {
		return e.hostFailure(sc, StepAccessClosure, store.ItemVerifying, err)
	}
	warming := isHost && (sc.profile.IsWarmup(err) || he.Status == 401 || he.Code == "model_not_found")
	inWindow := sc.item.WindowDeadline != nil && e.now().Before(*sc.item.WindowDeadline)
	if warming && inWindow {
		return e.waitOrTimeout(sc, StepAccessClosure, store.ItemVerifying,
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
	accID, ok, err := e.ledgerID(ctx, sc, store.TypeAccount, objectName("a", sc.item))
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
	r, err := e.Store.EnsureIntent(ctx, &store.Resource{HostID: sc.host.ID, BatchID: sc.batch.ID, ItemID: sc.item.ID,
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
		if host.IsCode(err, "EMAIL_EXISTS") {
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
		if err := e.Store.MarkCreated(ctx, r, idString(u.ID), state); err != nil {
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

// ensureSubscription assigns the managed user a subscription to the group.
func (e *Engine) ensureSubscription(ctx context.Context, sc *stepContext, userID, groupID int64) error {
	name := fmt.Sprintf("%ssub-%d-%d", ProvenancePrefix, userID, groupID)
	r, err := e.intent(ctx, sc, store.TypeSubscription, name, "")
	if err != nil {
		return err
	}
	if _, ok := hostID(r); ok && r.State != store.ResourceDeleted {
		return nil
	}
	sub, err := sc.client.AssignSubscription(ctx, host.AssignSubscriptionRequest{UserID: userID, GroupID: groupID,
		ValidityDays: e.validityDays(sc.batch), Notes: provenance(sc.item)})
	if host.IsCode(err, "SUBSCRIPTION_ASSIGN_CONFLICT") {
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
	return e.Store.MarkCreated(ctx, r, idString(sub.ID), store.ResourceCreated)
}

// ensureKey finds or creates the item's end-user key bound to the group. The key value
// is derived from the master key, so a retry after a crash finds the same key instead of
// creating another.
func (e *Engine) ensureKey(ctx context.Context, sc *stepContext, token string, groupID int64) (string, error) {
	name := objectName("k", sc.item)
	value := "sk-crm-" + e.Box.Derive("end-user-key:"+sc.host.ID+":"+sc.item.ID, 48)
	idem := idempotencyKey(sc.item, "key")
	r, err := e.intent(ctx, sc, store.TypeKey, name, idem)
	if err != nil {
		return "", err
	}
	if _, ok := hostID(r); ok && r.State != store.ResourceDeleted {
		if v, err := e.Box.Open(r.SecretEnc); err == nil && v != "" {
			return v, nil
		}
	}
	k, err := sc.client.CreateKey(ctx, token, host.CreateKeyRequest{Name: name, GroupID: groupID, CustomKey: value}, idem)
	if host.IsCode(err, "API_KEY_EXISTS") {
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
	if err := e.Store.MarkCreated(ctx, r, idString(k.ID), store.ResourceCreated); err != nil {
		return "", err
	}
	return value, nil
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
