package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// ProvenancePrefix starts the name of every object this system creates on a host, so
// reconcile and rollback can recognise them even without the local database.
const ProvenancePrefix = "crm-"

func short(id string) string {
	if len(id) > 8 {
		return id[len(id)-8:]
	}
	return id
}

// objectName is the deterministic provenance name of an item's host object.
func objectName(kind string, it *store.Item) string {
	return fmt.Sprintf("%s%s-%s-%d-%s", ProvenancePrefix, kind, short(it.BatchID), it.Idx, short(it.ID))
}

// provenanceTag marks descriptions and notes of the objects this system creates.
const provenanceTag = "cn-relay-manager"

// provenance is the free-text tag written in descriptions and notes.
func provenance(it *store.Item) string {
	return fmt.Sprintf("%s batch=%s item=%s", provenanceTag, it.BatchID, it.ID)
}

// accountName is the host name of an item's account. In a pooled group the operator sees
// many accounts side by side, so the name leads with the provider and the key's last four
// characters (as in the provider's console: deepseek-…a1f3) and ends with the provenance
// tag crm-<batch>-<item>; a per-item import keeps the provenance name alone.
func accountName(sc *stepContext) string {
	it := sc.item
	if sc.batch.Options.GroupMode() == store.GroupPerItem {
		return objectName("a", it)
	}
	provider := it.Provider
	if provider == "" {
		provider = "key"
	}
	tail := sc.apiKey
	if len(tail) > 4 {
		tail = tail[len(tail)-4:]
	}
	return fmt.Sprintf("%s-…%s %s%s-%s", provider, tail, ProvenancePrefix, short(it.BatchID), short(it.ID))
}

// carriesProvenance reports whether a host object's name marks it as made by this system:
// the crm- prefix of provenance names, or the crm- tag at the end of an account name.
func carriesProvenance(name string) bool {
	return strings.HasPrefix(name, ProvenancePrefix) || strings.Contains(name, " "+ProvenancePrefix)
}

// idempotencyKey derives the Idempotency-Key of a host write from (batch, item, step).
func idempotencyKey(it *store.Item, step string) string {
	return fmt.Sprintf("crm-%s-%s-%s", it.BatchID, it.ID, step)
}

func hostID(r *store.Resource) (int64, bool) {
	if r == nil || r.HostResourceID == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(*r.HostResourceID, 10, 64)
	return n, err == nil
}

func idString(id int64) string { return strconv.FormatInt(id, 10) }

// intent writes the ledger row before a host create (or returns the existing one).
func (e *Engine) intent(ctx context.Context, sc *stepContext, typ, name, idem string) (*store.Resource, error) {
	return e.ensureIntent(ctx, sc, &store.Resource{HostID: sc.host.ID, BatchID: sc.batch.ID, ItemID: sc.item.ID,
		Type: typ, Name: name, IdempotencyKey: idem})
}

// A step asks for the same ledger rows several times (its pooled group when planning and
// when joining it, the managed user when ensuring and when recording the item's use of
// it). Within one step a row read once is as good as read again: every change a step
// makes to a row is a compare-and-set from the state it read, which re-reads when another
// writer changed it (store.MarkCreated). So the rows a step reads or writes are kept in
// its stepContext, and the ledger helpers below read them from there.

func ledgerKey(typ, name string) string { return typ + "\x00" + name }

// remember keeps a copy of ledger row r for the rest of the step.
func (sc *stepContext) remember(r *store.Resource) {
	if sc.ledger == nil {
		sc.ledger = map[string]store.Resource{}
	}
	sc.ledger[ledgerKey(r.Type, r.Name)] = *r
}

// recall returns a copy of the step's ledger row (typ, name), if it has read it.
func (sc *stepContext) recall(typ, name string) (*store.Resource, bool) {
	r, ok := sc.ledger[ledgerKey(typ, name)]
	if !ok {
		return nil, false
	}
	return &r, true
}

// findResource is store.FindResource through the step's rows.
func (e *Engine) findResource(ctx context.Context, sc *stepContext, typ, name string) (*store.Resource, error) {
	if r, ok := sc.recall(typ, name); ok {
		return r, nil
	}
	r, err := e.Store.FindResource(ctx, sc.host.ID, typ, name)
	if err == nil {
		sc.remember(r)
	}
	return r, err
}

// ensureIntent is store.EnsureIntent through the step's rows: a row the step has read
// exists already.
func (e *Engine) ensureIntent(ctx context.Context, sc *stepContext, r *store.Resource) (*store.Resource, error) {
	if got, ok := sc.recall(r.Type, r.Name); ok {
		return got, nil
	}
	got, err := e.Store.EnsureIntent(ctx, r)
	if err == nil {
		sc.remember(got)
	}
	return got, err
}

// markCreated is store.MarkCreated, keeping the step's copy of the row current.
func (e *Engine) markCreated(ctx context.Context, sc *stepContext, r *store.Resource, hostID, state string) error {
	err := e.Store.MarkCreated(ctx, r, hostID, state)
	if err != nil {
		delete(sc.ledger, ledgerKey(r.Type, r.Name))
		return err
	}
	sc.remember(r)
	return nil
}

// ensureGroup finds or creates the item's group. A ledger row without a host ID means an
// earlier attempt may have created the group and crashed before recording it: the group
// is looked up by its provenance name first, never created twice.
func (e *Engine) ensureGroup(ctx context.Context, sc *stepContext, platform, subscriptionType string) (int64, error) {
	name := objectName("g", sc.item)
	r, err := e.intent(ctx, sc, store.TypeGroup, name, "")
	if err != nil {
		return 0, err
	}
	if id, ok := hostID(r); ok {
		return id, nil
	}
	g, err := sc.client.FindGroupByName(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("find group %s: %w", name, err)
	}
	state := store.ResourceAdopted
	if g == nil {
		g, err = sc.client.CreateGroup(ctx, host.CreateGroupRequest{Name: name, Description: provenance(sc.item),
			Platform: platform, SubscriptionType: subscriptionType, RateMultiplier: 1})
		if host.IsCode(err, host.CodeGroupExists) {
			g, err = sc.client.FindGroupByName(ctx, name)
		} else {
			state = store.ResourceCreated
		}
		if err != nil {
			return 0, fmt.Errorf("create group %s: %w", name, err)
		}
		if g == nil {
			return 0, fmt.Errorf("group %s exists on the host but cannot be found by name", name)
		}
	}
	r.Details = map[string]any{"platform": g.Platform, "subscription_type": g.SubscriptionType}
	if err := e.markCreated(ctx, sc, r, idString(g.ID), state); err != nil {
		return 0, err
	}
	return g.ID, nil
}

// ensureAccount finds or creates the item's account bound to groupID.
func (e *Engine) ensureAccount(ctx context.Context, sc *stepContext, groupID int64, spec host.AccountSpec) (*host.Account, error) {
	name := accountName(sc)
	idem := idempotencyKey(sc.item, "account")
	r, err := e.intent(ctx, sc, store.TypeAccount, name, idem)
	if err != nil {
		return nil, err
	}
	if id, ok := hostID(r); ok {
		return sc.client.GetAccount(ctx, id)
	}
	acc, err := e.findAccount(ctx, sc, name)
	if err != nil {
		return nil, err
	}
	state := store.ResourceAdopted
	if acc == nil {
		set := sc.batch.Options.Account
		req := spec.CreateRequest(name, provenance(sc.item), []int64{groupID}, intOr(set.Concurrency, 5), intOr(set.Priority, 1))
		req.LoadFactor = set.Weight
		acc, err = sc.client.CreateAccount(ctx, req, idem)
		if err != nil {
			return nil, fmt.Errorf("create account %s: %w", name, err)
		}
		state = store.ResourceCreated
	} else if !containsID(acc.GroupIDs, groupID) {
		// An earlier create failed half-way (0.1.129/0.1.179 create the account even when
		// the group binding fails): bind the account we already own instead of making a
		// second one.
		ids := append(append([]int64{}, acc.GroupIDs...), groupID)
		if acc, err = sc.client.UpdateAccount(ctx, acc.ID, host.UpdateAccountRequest{GroupIDs: &ids}); err != nil {
			return nil, fmt.Errorf("bind account %s to group: %w", name, err)
		}
	}
	r.ParentID = idString(groupID)
	r.Origin = store.OriginCreated // found by its provenance name: ours, from an earlier attempt
	r.Details = map[string]any{"platform": acc.Platform, "group_id": groupID}
	if err := e.markCreated(ctx, sc, r, idString(acc.ID), state); err != nil {
		return nil, err
	}
	return acc, nil
}

func intOr(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

func (e *Engine) findAccount(ctx context.Context, sc *stepContext, name string) (*host.Account, error) {
	list, err := sc.client.ListAccounts(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("find account %s: %w", name, err)
	}
	for i := range list {
		if list[i].Name == name {
			return &list[i], nil
		}
	}
	return nil, nil
}

func containsID(ids []int64, id int64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// ledgerID returns the host ID of the host's recorded object (type, name), which may be
// shared with other items (a pooled group).
// recorded returns the host ID the ledger holds for this item's object of typ and name,
// or the result that ends the step (named stepName, the item in status): a retry when the
// ledger could not be read, a failure when it holds no such object. A step that needs an
// object an earlier step created starts with it.
func (e *Engine) recorded(ctx context.Context, sc *stepContext, typ, name, stepName, status string) (int64, *result) {
	id, ok, err := e.ledgerID(ctx, sc, typ, name)
	if err != nil {
		res := e.retryOrFail(sc, stepName, status, err)
		return 0, &res
	}
	if !ok {
		return 0, &result{outcome: store.OutcomeFailed, class: failure.Internal, status: store.ItemFailed,
			message: "the ledger holds no " + typ + " for this item"}
	}
	return id, nil
}

func (e *Engine) ledgerID(ctx context.Context, sc *stepContext, typ, name string) (int64, bool, error) {
	r, err := e.findResource(ctx, sc, typ, name)
	if errors.Is(err, store.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	if r.State == store.ResourceDeleted || r.State == store.ResourceDeleting {
		return 0, false, nil
	}
	id, ok := hostID(r)
	return id, ok, nil
}

// groupOf is the name of the item's target group (items imported before target groups
// existed have their per-item group).
func groupOf(it *store.Item) string {
	if it.TargetGroup != "" {
		return it.TargetGroup
	}
	return objectName("g", it)
}

func parseID(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	return strconv.ParseInt(s, 10, 64)
}
