package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cn-relay-manager/cn-relay-manager/internal/health"
	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// recoveryClient is the part of the host client that ends a pause or a cooldown early;
// *host.Client satisfies it.
type recoveryClient interface {
	ClearRateLimit(ctx context.Context, id int64) error
	ClearTempUnschedulable(ctx context.Context, id int64) error
}

// Undo calls recorded with an action (store.CheckAction.Undo).
const (
	undoPark      = "set_schedulable:false"
	undoUnpark    = "set_schedulable:true"
	parkCall      = string(health.SetUnschedulable)
	schedulableOn = string(health.SetSchedulable)
)

// recover re-enables an account the host blocks while its upstream answers the direct
// check: the calls internal/health listed (clear the error, make it schedulable; 0.1.179
// keeps an account unschedulable after clear-error, so schedulable follows), then a proof
// through the gateway with the managed user's key. An account whose proof fails is set
// unschedulable again at once: a key that still fails is never left enabled.
func (a *accountCheck) recover(ctx context.Context, calls []health.Action) error {
	c := a.c
	if contains(actionNames(calls), string(health.ClearError)) && a.sc.profile.ClearErrorNeedsSchedulable &&
		!contains(actionNames(calls), schedulableOn) {
		calls = append(calls, health.SetSchedulable)
	}
	id, err := parseID(c.HostAccountID)
	if err != nil {
		return err
	}
	release, err := a.e.waitHostSlot(ctx, c.HostID, a.sc.host.Name)
	if err != nil {
		return err
	}
	defer release()
	done, err := a.hostCalls(ctx, id, calls)
	c.ActionDetail.Calls = done
	if err != nil {
		c.Action, c.ActionDetail.Error = store.ActionActionFailed, describe(err)
		c.Reason = joinReason(c.Reason, "recovery failed: "+describe(err))
		if len(done) > 0 {
			c.ActionDetail.Undo = undoPark
		}
		return a.mark(ctx, "", "")
	}
	proven, detail, failed := a.prove(ctx, id)
	c.ActionDetail.Detail = detail
	if failed {
		// The gateway still cannot use it: take it out of rotation again.
		if _, perr := a.sc.client.SetSchedulable(ctx, id, false); perr != nil {
			c.Action, c.ActionDetail.Error = store.ActionActionFailed, "proof failed and parking it again failed: "+describe(perr)
			c.Status, c.Reason = store.HealthFailing, joinReason(c.Reason, "re-enabled, proof failed: "+detail+"; parking it again failed: "+describe(perr))
			c.ActionDetail.Undo = undoPark
			return a.mark(ctx, "", "")
		}
		c.ActionDetail.Calls = append(c.ActionDetail.Calls, parkCall)
		c.Action, c.ActionDetail.Undo = store.ActionRecoverReverted, undoUnpark
		c.Status, c.Reason = store.HealthFailing, joinReason(c.Reason, "re-enabled, but the proof through the gateway failed ("+detail+"): set unschedulable again")
		a.parked = true
		return a.mark(ctx, c.ID, "")
	}
	c.Action, c.ActionDetail.Proven, c.ActionDetail.Undo = store.ActionRecovered, &proven, undoPark
	c.Class = ""
	if proven {
		c.Status, c.Reason = store.HealthHealthy, "recovered: "+strings.Join(done, ", ")+"; "+detail
	} else {
		c.Status, c.Reason = store.HealthDegraded, "recovered: "+strings.Join(done, ", ")+"; not proven through the gateway: "+detail
	}
	if a.verdict.BalanceLow && c.Status == store.HealthHealthy {
		c.Status = store.HealthDegraded
	}
	a.parked = false
	return a.mark(ctx, "", "")
}

// park sets an account whose key itself fails (invalid_key, key_banned, no_quota)
// unschedulable, so the gateway stops routing to it.
func (a *accountCheck) park(ctx context.Context) error {
	c := a.c
	id, err := parseID(c.HostAccountID)
	if err != nil {
		return err
	}
	release, err := a.e.waitHostSlot(ctx, c.HostID, a.sc.host.Name)
	if err != nil {
		return err
	}
	defer release()
	if _, err := a.sc.client.SetSchedulable(ctx, id, false); err != nil {
		c.Action, c.ActionDetail.Error = store.ActionActionFailed, describe(err)
		c.Reason = joinReason(c.Reason, "setting it unschedulable failed: "+describe(err))
		return nil
	}
	c.Action = store.ActionParked
	c.ActionDetail = store.CheckAction{Calls: []string{parkCall}, Undo: undoUnpark,
		Detail: fmt.Sprintf("the key fails with %s: set unschedulable so the gateway stops routing to it", c.Class)}
	c.Reason = joinReason(c.Reason, "set unschedulable")
	a.parked = true
	return a.mark(ctx, c.ID, "")
}

// hostCalls makes the recovery calls in order and returns the ones that succeeded.
func (a *accountCheck) hostCalls(ctx context.Context, id int64, calls []health.Action) ([]string, error) {
	var done []string
	for _, call := range calls {
		var err error
		switch call {
		case health.ClearError:
			_, err = a.sc.client.ClearAccountError(ctx, id)
		case health.SetSchedulable:
			_, err = a.sc.client.SetSchedulable(ctx, id, true)
		case health.ClearTempUnschedulable, health.ClearRateLimit:
			rc, ok := a.sc.client.(recoveryClient)
			if !ok {
				return done, fmt.Errorf("this host client cannot %s", call)
			}
			if call == health.ClearTempUnschedulable {
				err = rc.ClearTempUnschedulable(ctx, id)
			} else {
				err = rc.ClearRateLimit(ctx, id)
			}
		default:
			err = fmt.Errorf("unknown recovery call %s", call)
		}
		if err != nil {
			return done, fmt.Errorf("%s: %w", call, err)
		}
		done = append(done, string(call))
	}
	return done, nil
}

// prove sends an end-user call through the gateway that only this account can answer:
// with the managed user's key for the account's group, the smoke model in a group of its
// own, else the account's proof alias (added for the call, removed after it). It reports
// whether it passed, what happened, and whether it failed in a way that means the
// account does not serve (a warm-up answer or a missing end-user key is not a failure).
func (a *accountCheck) prove(ctx context.Context, accID int64) (proven bool, detail string, failed bool) {
	sc, it := a.sc, a.sc.item
	keyRow, err := a.e.Store.ItemKey(ctx, it.ID)
	if errors.Is(err, store.ErrNotFound) {
		return false, "the managed end user has no key for the account's group (access mode none)", false
	}
	if err != nil {
		return false, "the end-user key cannot be read: " + err.Error(), false
	}
	key, err := a.e.Box.Open(keyRow.SecretEnc)
	if err != nil || key == "" {
		return false, "the end-user key cannot be opened", false
	}
	model, how := it.SmokeModel, "through its own group"
	if sc.batch.Options.GroupMode() != store.GroupPerItem {
		if allow, _ := planGroup(it)["allowlist"].(bool); allow {
			return false, fmt.Sprintf("group %q has a model_allowlist, which refuses the proof alias", groupOf(it)), false
		}
		if err := a.e.setProofAlias(ctx, sc, accID, true); err != nil {
			return false, "adding the proof alias failed: " + describe(err), false
		}
		defer func() {
			if err := a.e.setProofAlias(ctx, sc, accID, false); err != nil {
				detail += "; removing the proof alias failed: " + describe(err)
			}
		}()
		model, how = proofAlias(it), "with "+proofAlias(it)+" (routed only to this account)"
	}
	chat, err := sc.client.GatewayChat(ctx, key, host.ChatRequest{Model: model, Prompt: "Reply with one word: ok", MaxTokens: 1})
	if err != nil {
		if sc.profile.IsWarmup(err) {
			return false, "the gateway answered " + describe(err) + " (still warming up); the next run proves it", false
		}
		return false, "POST /v1/chat/completions " + how + " answered " + describe(err), true
	}
	return true, fmt.Sprintf("proven through the gateway %s: %d %s", how, chat.Status, truncate(strings.TrimSpace(chat.Content), 60)), false
}

// mark records the check's action in the ledger row of the account: who parked it
// (parkedBy, "" = nobody now), an operator's hold (holdBy) and the recent actions.
func (a *accountCheck) mark(ctx context.Context, parkedBy, holdBy string) error {
	return a.e.markLedger(ctx, a.row, a.c, parkedBy, holdBy, a.c.Action)
}

func (e *Engine) markLedger(ctx context.Context, row *store.Resource, c *store.AccountCheck, parkedBy, holdBy, action string) error {
	return e.editHealth(ctx, row, func(hm map[string]any) {
		delete(hm, healthParkedBy)
		delete(hm, healthHoldBy)
		if parkedBy != "" {
			hm[healthParkedBy] = parkedBy
		}
		if holdBy != "" {
			hm[healthHoldBy] = holdBy
		}
		acts, _ := hm[healthActions].([]any)
		acts = append(acts, map[string]any{"check": c.ID, "action": action, "calls": c.ActionDetail.Calls,
			"at": e.now().Format("2006-01-02T15:04:05Z07:00")})
		if len(acts) > keptActions {
			acts = acts[len(acts)-keptActions:]
		}
		hm[healthActions] = acts
	})
}

// releaseHold ends an operator's hold on an account (it was seen healthy).
func (e *Engine) releaseHold(ctx context.Context, row *store.Resource) error {
	return e.editHealth(ctx, row, func(hm map[string]any) { delete(hm, healthHoldBy) })
}

// editHealth changes the health marks of an account's ledger row with a compare-and-set
// on its state; a row an operation claimed meanwhile (a rollback) is left to it.
func (e *Engine) editHealth(ctx context.Context, row *store.Resource, edit func(hm map[string]any)) error {
	cur := row
	for try := 0; try < 4; try++ {
		upd := *cur
		upd.Details = copyDetails(cur.Details)
		m, _ := upd.Details[detailHealth].(map[string]any)
		hm := map[string]any{}
		for k, v := range m {
			hm[k] = v
		}
		edit(hm)
		upd.Details[detailHealth] = hm
		won, err := e.Store.TransitionResource(ctx, &upd, cur.State, cur.State, "details")
		if err != nil {
			return err
		}
		if won {
			*row = upd
			return nil
		}
		if cur, err = e.Store.GetResource(ctx, row.ID); err != nil {
			return err
		}
		if !comparableState(cur.State) {
			return nil // a rollback claimed the row: it owns the account now
		}
	}
	return store.ErrLedgerContended
}

func actionNames(as []health.Action) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = string(a)
	}
	return out
}

// UndoCheck reverses the action a check made (the operator asked for it): a recovery is
// undone by setting the account unschedulable, a parking by making it schedulable again.
// Either way the account is put on hold: automatic actions leave it alone until it is
// seen healthy. The undo is recorded in the check and the ledger.
func (e *Engine) UndoCheck(ctx context.Context, checkID string) error {
	c, err := e.Store.GetAccountCheck(ctx, checkID)
	if err != nil {
		return err
	}
	if c.UndoState != store.UndoQueued {
		return nil // done already, or never asked for
	}
	fail := func(why string) error {
		_, err := e.Store.SetCheckUndo(ctx, c.ID, store.UndoQueued, store.UndoFailed, why)
		return err
	}
	var on bool
	switch c.ActionDetail.Undo {
	case undoPark:
		on = false
	case undoUnpark:
		on = true
	default:
		return fail("this check made no host change that can be undone")
	}
	it, err := e.Store.GetItem(ctx, c.ItemID)
	if err != nil {
		return fail("the item is gone: " + err.Error())
	}
	row, err := e.Store.GetResource(ctx, c.ResourceID)
	if err != nil || !comparableState(row.State) {
		return fail("the account's ledger row is gone or owned by an operation")
	}
	sc, err := e.load(ctx, it)
	if err != nil {
		return err
	}
	id, err := parseID(c.HostAccountID)
	if err != nil {
		return fail("bad host account id")
	}
	release, err := e.waitHostSlot(ctx, c.HostID, sc.host.Name)
	if err != nil {
		return err
	}
	_, err = sc.client.SetSchedulable(ctx, id, on)
	release()
	if err != nil {
		if host.IsNotFound(err) {
			return fail("the host no longer has the account")
		}
		if _, ok := host.AsError(err); ok {
			return fail("set schedulable " + fmt.Sprint(on) + ": " + describe(err))
		}
		return err // transport trouble: the task is retried
	}
	undo := &store.AccountCheck{ID: c.ID, ActionDetail: store.CheckAction{Calls: []string{"set_schedulable:" + fmt.Sprint(on)}}}
	if err := e.markLedger(ctx, row, undo, "", c.ID, "undo"); err != nil {
		return err
	}
	if err := e.Store.SetAccountMarks(ctx, c.ItemID, false, true); err != nil {
		return err
	}
	what := "made the account schedulable again"
	if !on {
		what = "set the account unschedulable"
	}
	_, err = e.Store.SetCheckUndo(ctx, c.ID, store.UndoQueued, store.UndoDone, what+"; automatic actions leave it alone until it is healthy again")
	return err
}
