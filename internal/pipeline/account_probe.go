package pipeline

import (
	"context"
	"fmt"
	"strings"

	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/step"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// runAccountProbe confirms the account on the host inside the confirmation window. The
// first failures of a fresh account (403 while the host warms up) are advisory: the step
// is rescheduled, never slept on.
func (e *Engine) runAccountProbe(ctx context.Context, sc *stepContext) result {
	it := sc.item
	accID, stop := e.recorded(ctx, sc, store.TypeAccount, accountName(sc), step.AccountProbe, store.ItemConfirming)
	if stop != nil {
		return *stop
	}
	next, nextStatus := step.AccessClosure, store.ItemClosingAccess
	if sc.batch.Mode == ModeNone {
		next, nextStatus = "", e.readyStatus(it)
	}

	if !sc.profile.AccountTestTrustedChatOnly {
		// 0.1.129 answers a fixed error for chat-only accounts without calling the
		// upstream: confirm through the account's state and model list instead.
		return e.confirmWithoutTest(ctx, sc, accID, next, nextStatus)
	}
	res, err := sc.client.TestAccount(ctx, accID, it.SmokeModel)
	if err != nil {
		return e.hostFailure(sc, step.AccountProbe, store.ItemConfirming, err)
	}
	if res.Success {
		it.AccountStatus = "active"
		it.KeyProof = store.KeyProofAccountTest
		return result{outcome: store.OutcomeOK, status: nextStatus, next: next,
			message: fmt.Sprintf("account test passed (model %s)", res.Model)}
	}
	if res.BaseURLRefused() {
		return e.policyRefused(sc, "account test: "+res.Error)
	}
	if res.Warmup() {
		return e.waitOrTimeout(sc, step.AccountProbe, store.ItemConfirming,
			"account test answered a warm-up failure: "+truncate(res.Error, 200), failure.ConfirmationTimeout)
	}
	// A real failure: ask the upstream directly which side is at fault.
	if uerr := e.Prober.Chat(ctx, it.NormalizedURL, sc.apiKey, it.Provider, it.SmokeModel); uerr != nil {
		fe := classify(uerr)
		return result{outcome: store.OutcomeFailed, class: fe.Class, status: store.ItemFailed,
			message: "account test failed and the upstream confirms it: " + fe.Error()}
	}
	// The upstream answers directly, so the failed test may have marked a healthy account
	// as errored: clear that once, record it, and let the end-user proof decide.
	warn := "account test failed while the upstream answers directly: " + truncate(res.Error, 200)
	if acc, gerr := sc.client.GetAccount(ctx, accID); gerr == nil && acc.Status == "error" && !hasWarning(it, "cleared account error") {
		if _, cerr := sc.client.ClearAccountError(ctx, accID); cerr == nil {
			if sc.profile.ClearErrorNeedsSchedulable {
				_, _ = sc.client.SetSchedulable(ctx, accID, true)
			}
			warn += "; cleared account error once"
		}
	}
	it.Warnings = append(it.Warnings, warn)
	if sc.batch.Mode == ModeNone {
		return result{outcome: store.OutcomeAdvisory, class: failure.HostCompatibilityGap, status: store.ItemFailed,
			message: warn + "; no end-user proof in mode none"}
	}
	return result{outcome: store.OutcomeAdvisory, status: nextStatus, next: next, message: warn}
}

// confirmWithoutTest confirms an account from its state and model list.
func (e *Engine) confirmWithoutTest(ctx context.Context, sc *stepContext, accID int64, next, nextStatus string) result {
	acc, err := sc.client.GetAccount(ctx, accID)
	if err != nil {
		return e.hostFailure(sc, step.AccountProbe, store.ItemConfirming, err)
	}
	sc.item.AccountStatus = acc.Status
	if acc.Status != "active" {
		return e.waitOrTimeout(sc, step.AccountProbe, store.ItemConfirming,
			fmt.Sprintf("account status is %q (%s)", acc.Status, truncate(acc.ErrorMessage, 160)), failure.ConfirmationTimeout)
	}
	msg := "account active; the host's account test cannot check chat-only upstreams on this version, so the end-user proof decides"
	return result{outcome: store.OutcomeAdvisory, status: nextStatus, next: next, message: msg}
}

// policyRefused fails the item because the host's outbound URL policy refuses its upstream.
func (e *Engine) policyRefused(sc *stepContext, what string) result {
	return result{outcome: store.OutcomeFailed, class: failure.HostPolicy, status: store.ItemFailed,
		message: what + ": " + host.OutboundPolicyAdvice(sc.item.NormalizedURL)}
}

func (e *Engine) readyStatus(it *store.Item) string {
	if len(it.Warnings) > 0 {
		return store.ItemReadyWithWarnings
	}
	return store.ItemReady
}

func hasWarning(it *store.Item, sub string) bool {
	for _, w := range it.Warnings {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
