package pipeline

import (
	"context"
	"fmt"
	"strings"

	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/step"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// proofAlias is the model name that routes a call to exactly one account: it is added to
// that account's model mapping (pointing at the smoke model) for the proof and removed
// after it. No other account maps it, so the gateway can only pick this one.
func proofAlias(it *store.Item) string { return "crm-proof-" + short(it.ID) }

// proveAccount proves that the item's own account answers through the gateway, in a group
// that other accounts serve too: a call to the proof alias, with the managed user's key
// for the group. Warm-up answers wait inside the confirmation window like the group smoke;
// a failure is classified with direct upstream evidence.
func (e *Engine) proveAccount(ctx context.Context, sc *stepContext, key string) result {
	it := sc.item
	if allow, _ := planGroup(it)["allowlist"].(bool); allow {
		// The group's model_allowlist (0.2.3+) refuses any name it does not list: the
		// alias cannot pass, and the account test did not prove the account either.
		it.Warnings = append(it.Warnings, fmt.Sprintf("the account could not be proven on its own: group %q has a model_allowlist, which refuses the proof alias, and the host's account test did not pass; the group itself answered", groupOf(it)))
		return result{outcome: store.OutcomeAdvisory, status: store.ItemReadyWithWarnings,
			message: "group proven; the key's own account unproven (model_allowlist on the group)"}
	}
	accID, stop := e.recorded(ctx, sc, store.TypeAccount, accountName(sc), step.AccessClosure, store.ItemVerifying)
	if stop != nil {
		return *stop
	}
	alias := proofAlias(it)
	if err := e.setProofAlias(ctx, sc, accID, true); err != nil {
		return e.hostFailure(sc, step.AccessClosure, store.ItemVerifying, err)
	}
	chat, err := sc.client.GatewayChat(ctx, key, host.ChatRequest{Model: alias, Prompt: "Reply with one word: ok", MaxTokens: 1})
	if err != nil {
		res := e.smokeFailure(ctx, sc, fmt.Sprintf("POST /v1/chat/completions with %s (routed only to this item's account)", alias), err)
		if res.outcome == store.OutcomeFailed {
			_ = e.setProofAlias(ctx, sc, accID, false) // best effort: a failed item's account keeps no alias
		}
		return res
	}
	if err := e.setProofAlias(ctx, sc, accID, false); err != nil {
		return e.hostFailure(sc, step.AccessClosure, store.ItemVerifying, err)
	}
	it.KeyProof = store.KeyProofGatewayAlias
	it.SmokePreview = truncate(fmt.Sprintf("%d %s %s", chat.Status, mediaType(chat.ContentType), strings.TrimSpace(chat.Content)), 120)
	return result{outcome: store.OutcomeOK, status: e.readyStatus(it),
		message: fmt.Sprintf("end-user proof passed: %s answered through group %q, and this item's own account answered a call routed only to it (%s)", it.SmokeModel, groupOf(it), alias)}
}

// setProofAlias writes the account's model mapping with (on) or without the proof alias.
// The host replaces credentials as a whole, so the full set is sent again.
func (e *Engine) setProofAlias(ctx context.Context, sc *stepContext, accID int64, on bool) error {
	it := sc.item
	mapping := map[string]string{}
	for _, m := range it.Models {
		mapping[m] = m
	}
	if on {
		mapping[proofAlias(it)] = it.SmokeModel
	}
	platform, _ := planGroup(it)["platform"].(string)
	spec, err := sc.profile.AccountSpecOn(platform, it.Provider, it.NormalizedURL, sc.apiKey, mapping)
	if err != nil {
		return err
	}
	if _, err := sc.client.UpdateAccount(ctx, accID, host.UpdateAccountRequest{Credentials: spec.Credentials, Extra: spec.Extra}); err != nil {
		return fmt.Errorf("update account %d mapping (proof alias %v): %w", accID, on, err)
	}
	return nil
}

// planGroup is the group part of the item's import plan.
func planGroup(it *store.Item) map[string]any {
	g, _ := it.Plan["group"].(map[string]any)
	if g == nil {
		return map[string]any{}
	}
	return g
}
