package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// rollbackOrder is reverse dependency order (product §4, host contract §13).
var rollbackOrder = []string{store.TypeSubscription, store.TypeKey, store.TypeUser, store.TypeAccount, store.TypeGroup}

// CheckRollback refuses a rollback when the ledger holds nothing for the batch.
func (e *Engine) CheckRollback(ctx context.Context, batchID string) error {
	if _, err := e.Store.GetBatch(ctx, batchID); err != nil {
		return err
	}
	rows, _, err := e.Store.ListResources(ctx, store.ResourceFilter{BatchID: batchID})
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return store.ErrNothingRecorded
	}
	return nil
}

// Rollback deletes, in reverse dependency order, exactly the host objects the batch
// recorded in the ledger. Re-running it is a no-op; a failure on one object is reported
// for that object and does not stop the others. Shared objects (the managed user, or a
// group that still holds accounts we did not create) are kept.
func (e *Engine) Rollback(ctx context.Context, batchID string) (store.Action, error) {
	act := store.Action{Kind: "rollback"}
	if err := e.CheckRollback(ctx, batchID); err != nil {
		return act, err
	}
	b, err := e.Store.GetBatch(ctx, batchID)
	if err != nil {
		return act, err
	}
	h, client, err := e.clientFor(ctx, b.HostID)
	if err != nil {
		return act, err
	}
	// Stop the batch first so no step creates something behind our back.
	if _, err := e.Store.CancelBatch(ctx, batchID); err != nil {
		return act, err
	}
	rows, err := e.Store.AllResources(ctx, store.ResourceFilter{BatchID: batchID})
	if err != nil {
		return act, err
	}
	// Shared objects another batch recorded (the pooled group, the managed user, its key
	// and subscription for the group) that this batch used.
	used, err := e.Store.UsedByBatch(ctx, batchID)
	if err != nil {
		return act, err
	}
	rows = append(rows, used...)
	if rows, err = e.withManagedUser(ctx, b.HostID, rows); err != nil {
		return act, err
	}
	rb := &rollback{e: e, h: h, client: client, batchID: batchID, act: &act}
	for _, typ := range rollbackOrder {
		for i := range rows {
			if rows[i].Type == typ {
				rb.one(ctx, &rows[i])
			}
		}
	}
	failed := 0
	for _, o := range act.Objects {
		if o.Result == "failed" {
			failed++
		}
	}
	if failed == 0 {
		act.Status, act.Message = "completed", fmt.Sprintf("rolled back: %s", rb.summary())
		if err := e.Store.MarkRolledBack(ctx, batchID); err != nil {
			return act, err
		}
	} else {
		act.Status, act.Message = "partial", fmt.Sprintf("%d object(s) could not be deleted; run the rollback again once the host is reachable: %s", failed, rb.summary())
	}
	return act, e.Store.SetBatchAction(ctx, batchID, act)
}

// withManagedUser adds the host's managed-user rows to a batch's rows when the batch gave
// that user keys or subscriptions. The user's ledger row belongs to whichever batch first
// created it; a later batch that used it (possibly after creating it again, when an earlier
// rollback had deleted it) must still delete it on rollback once nothing else of ours uses
// it, or the host is not back to where it was.
func (e *Engine) withManagedUser(ctx context.Context, hostRef string, rows []store.Resource) ([]store.Resource, error) {
	used := false
	have := map[string]bool{}
	for _, r := range rows {
		have[r.ID] = true
		used = used || r.Type == store.TypeKey || r.Type == store.TypeSubscription
	}
	if !used {
		return rows, nil
	}
	users, _, err := e.Store.ListResources(ctx, store.ResourceFilter{HostID: hostRef, Type: store.TypeUser})
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		// Only a user the host confirmed: an intent belongs to a batch still creating it.
		if _, confirmed := hostID(&u); confirmed && !have[u.ID] && u.State != store.ResourceDeleted {
			rows = append(rows, u)
		}
	}
	return rows, nil
}

type rollback struct {
	e        *Engine
	h        *store.Host
	client   HostClient
	batchID  string
	act      *store.Action
	token    string
	accounts map[int64][]int64 // group id -> account ids, loaded once
}

func (rb *rollback) summary() string {
	counts := map[string]int{}
	for _, o := range rb.act.Objects {
		counts[o.Result]++
	}
	var parts []string
	for _, r := range []string{"deleted", "already_gone", "kept", "failed"} {
		if counts[r] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[r], r))
		}
	}
	return strings.Join(parts, ", ")
}

func (rb *rollback) record(r *store.Resource, result, detail string) {
	id := ""
	if r.HostResourceID != nil {
		id = *r.HostResourceID
	}
	rb.act.Objects = append(rb.act.Objects, store.ActionObject{ResourceType: r.Type, HostResourceID: id, Name: r.Name, Result: result, Detail: detail})
}

// maxRollbackTries bounds how often one row is decided again after losing a
// compare-and-set to another writer.
const maxRollbackTries = 5

// Detail keys a rollback writes on a ledger row.
const (
	detailRollbackError = "rollback_error"
	detailDeletingFrom  = "deleting_from" // the state a row had before a rollback claimed it
)

// one deletes a row's object. Every ledger write is a compare-and-set from the state read;
// when another writer (a reconcile, an import re-creating the object, a second rollback)
// changed the row in between, the row is read again and decided again.
func (rb *rollback) one(ctx context.Context, r *store.Resource) {
	for try := 0; try < maxRollbackTries; try++ {
		if rb.decide(ctx, r) {
			return
		}
		cur, err := rb.e.Store.GetResource(ctx, r.ID)
		if err != nil {
			rb.record(r, "failed", "re-read the ledger row: "+err.Error())
			return
		}
		r = cur
	}
	rb.record(r, "failed", "the ledger row kept changing while the rollback decided; run the rollback again")
}

// decide acts on the row as read; false means a compare-and-set was lost (decide again).
func (rb *rollback) decide(ctx context.Context, r *store.Resource) bool {
	if r.State == store.ResourceDeleted {
		return true // done by an earlier run: idempotent
	}
	id, ok := hostID(r)
	if !ok {
		// An intent that never reached the host (or whose create result was lost): look
		// it up by provenance name before deciding.
		found, fid := rb.findByName(ctx, r)
		if !found {
			upd := *r
			upd.Details = copyDetails(r.Details)
			delete(upd.Details, detailRollbackError)
			won, err := rb.e.Store.TransitionResource(ctx, &upd, r.State, store.ResourceDeleted, "details")
			if err != nil {
				rb.record(r, "failed", "the ledger update failed: "+err.Error())
				return true
			}
			if won {
				rb.record(&upd, "already_gone", "never created on the host")
			}
			return won
		}
		id = fid
	}
	if keep, why := rb.inUse(ctx, r); keep {
		rb.keep(ctx, r, why)
		return true
	}
	if keep, why := rb.shared(ctx, r, id); keep {
		rb.keep(ctx, r, why)
		return true
	}
	// Claim the row before touching the host: a reconcile that sees the object vanish
	// finds the row deleting and reports nothing.
	claim := *r
	hid := idString(id)
	claim.HostResourceID = &hid
	claim.Details = copyDetails(r.Details)
	delete(claim.Details, detailRollbackError)
	if r.State != store.ResourceDeleting {
		claim.Details[detailDeletingFrom] = r.State
	}
	won, err := rb.e.Store.TransitionResource(ctx, &claim, r.State, store.ResourceDeleting, "host_resource_id", "details")
	if err != nil {
		rb.record(r, "failed", "the ledger update failed: "+err.Error())
		return true
	}
	if !won {
		return false
	}
	err = rb.delete(ctx, &claim, id)
	switch {
	case err == nil:
		rb.finish(ctx, &claim, "deleted", "")
	case host.IsNotFound(err):
		rb.finish(ctx, &claim, "already_gone", "the host no longer had it")
	default:
		// The object is still there: the row gets its state back, with the error.
		back, _ := claim.Details[detailDeletingFrom].(string)
		if back == "" {
			back = store.ResourceCreated
		}
		delete(claim.Details, detailDeletingFrom)
		claim.Details[detailRollbackError] = describe(err)
		_, _ = rb.e.Store.TransitionResource(ctx, &claim, store.ResourceDeleting, back, "details")
		rb.record(&claim, "failed", describe(err))
	}
	return true
}

// inUse reports whether an object must be kept whatever the host says: another batch
// still uses it (a pooled group, the managed user, its key or subscription for the group),
// or this product did not create it (found on the host, or the operator's existing target
// group).
func (rb *rollback) inUse(ctx context.Context, r *store.Resource) (bool, string) {
	if r.Type == store.TypeAccount {
		return false, "" // an account belongs to its item alone
	}
	others, err := rb.e.Store.UsingBatches(ctx, r.ID, rb.batchID)
	if err != nil {
		return true, "could not check which batches use it: " + err.Error()
	}
	if len(others) > 0 {
		ids := make([]string, 0, len(others))
		for id := range others {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		var parts []string
		for _, id := range ids {
			parts = append(parts, fmt.Sprintf("batch %s (%d item(s))", id, others[id]))
		}
		return true, "still used by " + strings.Join(parts, ", ")
	}
	switch r.Origin {
	case store.OriginExisting:
		return true, "the operator's existing target group: accounts are only added to it, it is never deleted"
	case store.OriginFound:
		return true, "found on the host, not created by cn-relay-manager"
	}
	return false, ""
}

// keep records a kept object and releases this batch's use of it: the batch no longer
// holds it, whoever else does.
func (rb *rollback) keep(ctx context.Context, r *store.Resource, why string) {
	if err := rb.e.Store.ReleaseUses(ctx, r.ID, rb.batchID); err != nil {
		rb.record(r, "failed", "kept ("+why+") but the ledger update failed: "+err.Error())
		return
	}
	rb.record(r, "kept", why)
}

// finish marks a claimed row deleted after its object left the host.
func (rb *rollback) finish(ctx context.Context, r *store.Resource, result, detail string) {
	_ = rb.e.Store.ReleaseUses(ctx, r.ID, rb.batchID) // the object is gone: nothing uses it
	delete(r.Details, detailDeletingFrom)
	won, err := rb.e.Store.TransitionResource(ctx, r, store.ResourceDeleting, store.ResourceDeleted, "details")
	switch {
	case err != nil:
		rb.record(r, "failed", "deleted on the host but the ledger update failed: "+err.Error())
		return
	case !won:
		// Someone wrote the row while the host deleted: a second rollback finished it, or
		// an import recorded a new object under the name (that one stays).
		if cur, err := rb.e.Store.GetResource(ctx, r.ID); err == nil && cur.State != store.ResourceDeleted {
			detail = strings.TrimPrefix(detail+"; the ledger row was re-created meanwhile and is kept ("+cur.State+")", "; ")
		}
	}
	rb.record(r, result, detail)
}

func (rb *rollback) findByName(ctx context.Context, r *store.Resource) (bool, int64) {
	switch r.Type {
	case store.TypeGroup:
		// Only a group that carries our provenance: a pooled group's name (deepseek) may
		// belong to an operator's group that was there before.
		if g, err := rb.client.FindGroupByName(ctx, r.Name); err == nil && g != nil && groupOrigin(g) == store.OriginCreated {
			return true, g.ID
		}
	case store.TypeAccount:
		if list, err := rb.client.ListAccounts(ctx, r.Name); err == nil {
			for _, a := range list {
				if a.Name == r.Name {
					return true, a.ID
				}
			}
		}
	}
	return false, 0
}

// shared reports whether an object must be kept because something outside this batch
// still uses it.
func (rb *rollback) shared(ctx context.Context, r *store.Resource, id int64) (bool, string) {
	switch r.Type {
	case store.TypeUser:
		// Keys and subscriptions of other batches still hang on the user.
		for _, typ := range []string{store.TypeKey, store.TypeSubscription} {
			others, err := rb.e.Store.AllResources(ctx, store.ResourceFilter{HostID: rb.h.ID, Type: typ})
			if err != nil {
				return true, "could not check other batches: " + err.Error()
			}
			for _, o := range others {
				if o.BatchID != rb.batchID && o.State != store.ResourceDeleted && o.State != store.ResourceMissing {
					return true, "still used by batch " + o.BatchID
				}
			}
		}
	case store.TypeGroup:
		if rb.accounts == nil {
			rb.accounts = map[int64][]int64{}
			list, err := rb.client.ListAccounts(ctx, "")
			if err != nil {
				return true, "could not list the group's accounts: " + describe(err)
			}
			for _, a := range list {
				for _, g := range a.GroupIDs {
					rb.accounts[g] = append(rb.accounts[g], a.ID)
				}
			}
		}
		if n := len(rb.accounts[id]); n > 0 {
			return true, fmt.Sprintf("the group still holds %d account(s) not deleted by this rollback", n)
		}
	}
	return false, ""
}

func (rb *rollback) delete(ctx context.Context, r *store.Resource, id int64) error {
	switch r.Type {
	case store.TypeSubscription:
		return rb.client.RevokeSubscription(ctx, id)
	case store.TypeKey:
		tok, err := rb.userToken(ctx)
		if err != nil {
			return err
		}
		return rb.client.DeleteKey(ctx, tok, id)
	case store.TypeUser:
		return rb.client.DeleteUser(ctx, id)
	case store.TypeAccount:
		if err := rb.client.DeleteAccount(ctx, id); err != nil {
			return err
		}
		if rb.accounts != nil {
			for g, ids := range rb.accounts {
				rb.accounts[g] = removeID(ids, id)
			}
		}
		return nil
	case store.TypeGroup:
		return rb.client.DeleteGroup(ctx, id)
	}
	return fmt.Errorf("unknown resource type %q", r.Type)
}

func removeID(ids []int64, id int64) []int64 {
	out := ids[:0]
	for _, x := range ids {
		if x != id {
			out = append(out, x)
		}
	}
	return out
}

// userToken logs in as the managed user: deleting a key needs its owner's JWT.
func (rb *rollback) userToken(ctx context.Context) (string, error) {
	if rb.token != "" {
		return rb.token, nil
	}
	users, _, err := rb.e.Store.ListResources(ctx, store.ResourceFilter{HostID: rb.h.ID, Type: store.TypeUser})
	if err != nil {
		return "", err
	}
	for _, u := range users {
		pw, err := rb.e.Box.Open(u.SecretEnc)
		if err != nil || pw == "" {
			continue
		}
		s, err := rb.client.Login(ctx, u.Name, pw)
		if err != nil {
			return "", fmt.Errorf("log in as managed user to delete keys: %w", err)
		}
		rb.token = s.AccessToken
		return rb.token, nil
	}
	return "", errors.New("no managed user with a known password in the ledger")
}
