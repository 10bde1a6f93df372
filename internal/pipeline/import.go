package pipeline

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/step"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
	"github.com/cn-relay-manager/cn-relay-manager/internal/upstream"
)

// runImport normalises and probes the upstream directly, corrects model names, builds the
// import plan and, unless the batch is a dry run, ensures the group and the account.
func (e *Engine) runImport(ctx context.Context, sc *stepContext) result {
	it := sc.item
	norm, err := e.Catalog.NormalizeURL(it.BaseURL)
	if err != nil {
		return result{outcome: store.OutcomeFailed, class: failure.UpstreamIncompatible, status: store.ItemFailed,
			message: fmt.Sprintf("base URL: %v", err)}
	}
	det := e.Catalog.Detect(norm.BaseURL, sc.apiKey, it.ProviderHint)
	it.NormalizedURL, it.Provider = norm.BaseURL, det.ProviderID
	it.AnthropicBaseURL, it.DetectedBy, it.SuggestedProvider = norm.AnthropicBase, det.By, det.Suggested

	if !sc.batch.Force {
		prev, err := e.Store.FindImportedKey(ctx, it.HostID, it.KeyFingerprint, it.BatchID)
		if err != nil {
			return e.retryOrFail(sc, step.Import, store.ItemProbing, err)
		}
		if prev != nil {
			it.DuplicateOf = prev.ID
			return result{outcome: store.OutcomeOK, status: store.ItemSkipped,
				message: fmt.Sprintf("key already imported (or being imported) on this host by item %s of batch %s; submit with force to import again", prev.ID, prev.BatchID)}
		}
	}

	capab, err := e.Prober.Probe(ctx, upstream.Target{BaseURL: norm.BaseURL, AnthropicBase: norm.AnthropicBase, APIKey: sc.apiKey,
		ProviderID: det.ProviderID, Models: it.RequestedModels})
	if sc.releaseUpstream != nil {
		sc.releaseUpstream() // taken by Run for this probe
	}
	if capab != nil {
		e.recordCapability(it, capab)
	}
	if err != nil {
		return e.retryOrFail(sc, step.Import, store.ItemProbing, err)
	}
	if len(it.Models) == 0 || it.SmokeModel == "" {
		return result{outcome: store.OutcomeFailed, class: failure.ModelNotFound, status: store.ItemFailed,
			message: "none of the requested models could be resolved against the upstream's model list"}
	}

	mapping := map[string]string{}
	for _, m := range it.Models {
		mapping[m] = m
	}
	spec := sc.profile.AccountSpec(it.Provider, norm.BaseURL, sc.apiKey, mapping)
	tg, spec, err := e.planTarget(ctx, sc, norm, spec, mapping)
	if res, ok := targetFailure(err); ok {
		return res
	}
	if err != nil {
		return e.hostFailure(sc, step.Import, store.ItemProbing, err)
	}
	it.TargetGroup = tg.name
	it.Plan = e.plan(sc, spec, tg)
	if warning := e.knownPolicyRefusal(ctx, sc, norm.BaseURL); warning != "" {
		it.Plan["host_policy"] = map[string]any{"refused_before": true, "warning": warning}
		it.Warnings = append(it.Warnings, warning)
	}
	if sc.batch.DryRun {
		msg := "dry run: plan stored, nothing written to the host"
		if p, ok := it.Plan["host_policy"].(map[string]any); ok {
			msg += "; " + p["warning"].(string)
		}
		return result{outcome: store.OutcomeOK, status: store.ItemSkipped, message: msg}
	}

	groupID, err := e.ensureTargetGroup(ctx, sc, tg)
	if res, ok := targetFailure(err); ok {
		return res
	}
	if err != nil {
		return e.hostFailure(sc, step.Import, store.ItemImporting, err)
	}
	acc, err := e.ensureAccount(ctx, sc, groupID, spec)
	if host.IsOutboundPolicy(err) {
		return result{outcome: store.OutcomeFailed, class: failure.HostPolicy, status: store.ItemFailed,
			message: fmt.Sprintf("%s: %s", describe(err), host.OutboundPolicyAdvice(norm.BaseURL))}
	}
	if err != nil {
		return e.hostFailure(sc, step.Import, store.ItemImporting, err)
	}
	it.AccountStatus = acc.Status
	deadline, _ := e.window(sc.batch)
	end := e.now().Add(deadline)
	it.WindowDeadline = &end
	return result{outcome: store.OutcomeOK, status: store.ItemConfirming, next: step.AccountProbe,
		message: fmt.Sprintf("account %d added to group %q (%d, %s); confirming", acc.ID, tg.name, groupID, tg.action)}
}

func (e *Engine) recordCapability(it *store.Item, c *upstream.Capability) {
	it.Capability = map[string]any{
		"models_listed": c.ModelsListed, "models": c.Models, "chat": c.Chat, "chat_model": c.ChatModel,
		"stream": c.Stream, "tools": c.Tools, "responses": c.Responses, "anthropic": c.Anthropic, "notes": c.Notes,
		"tested": append([]string{}, c.Tested...), // what was not tried is "not tested", not unsupported ([] not null)
	}
	if it.AnthropicBaseURL == "" && c.Anthropic {
		it.AnthropicBaseURL = c.AnthropicBase // a mirror of a provider named by a hint answered there
	}
	it.Corrections = it.Corrections[:0]
	for _, cr := range c.Resolution.Corrections {
		it.Corrections = append(it.Corrections, store.Correction{Requested: cr.Requested, Resolved: cr.Resolved, Method: cr.Method, Note: cr.Note})
	}
	it.Models = append([]string{}, c.Resolution.Models...)
	it.SmokeModel = c.Resolution.SmokeModel
	it.Warnings = it.Warnings[:0]
	for _, u := range c.Resolution.Unresolved {
		it.Warnings = append(it.Warnings, fmt.Sprintf("model %q could not be resolved and was left out", u))
	}
}

// plan describes every host write the item will make, secrets masked.
func (e *Engine) plan(sc *stepContext, spec host.AccountSpec, tg *targetGroup) map[string]any {
	creds := map[string]any{}
	for k, v := range spec.Credentials {
		creds[k] = v
	}
	if _, ok := creds["api_key"]; ok {
		creds["api_key"] = secret.Mask(sc.apiKey)
	}
	group := map[string]any{"name": tg.name, "mode": tg.mode, "action": tg.action, "platform": tg.platform,
		"subscription_type": tg.subType}
	if tg.id != 0 {
		group["id"] = tg.id
	}
	if tg.action == groupCreate {
		group["rate_multiplier"] = 1
	}
	if tg.allowlist {
		group["allowlist"] = true
	}
	set := sc.batch.Options.Account
	account := map[string]any{"name": accountName(sc), "platform": spec.Platform, "type": spec.Type,
		"credentials": creds, "extra": spec.Extra, "upstream_path": spec.UpstreamPath,
		"priority": intOr(set.Priority, 1), "concurrency": intOr(set.Concurrency, 5)}
	if set.Weight != nil {
		account["load_factor"] = *set.Weight
	}
	p := map[string]any{"host_profile": sc.profile.Name, "group": group, "account": account, "mode": sc.batch.Mode}
	switch sc.batch.Mode {
	case ModeSelfService:
		p["user"] = map[string]any{"email": e.Settings.ManagedUserEmail}
		p["balance"] = map[string]any{"top_up_to": e.topUp(sc.batch)}
		p["key"] = map[string]any{"name": keyName(sc, tg.name, tg.id)}
	case ModeSubscription:
		p["user"] = map[string]any{"email": e.Settings.ManagedUserEmail}
		p["subscription"] = map[string]any{"validity_days": e.validityDays(sc.batch)}
		p["key"] = map[string]any{"name": keyName(sc, tg.name, tg.id)}
	}
	return p
}

// hostFailure handles an error from a host write: a compliance lock pauses the item
// (it waits for the operator instead of failing), everything else is retried or failed.
func (e *Engine) hostFailure(sc *stepContext, step, status string, err error) result {
	if host.IsComplianceLocked(err) {
		v := host.ComplianceVersion(err)
		return result{outcome: store.OutcomeWaiting, status: status, next: step, sameStep: true, delay: e.lockDelay(),
			message: fmt.Sprintf("compliance acknowledgement required (version %s): an administrator must accept it on the host; the item resumes afterwards", v)}
	}
	return e.retryOrFail(sc, step, status, err)
}

func (e *Engine) lockDelay() time.Duration { return time.Minute }

// knownPolicyRefusal returns a warning when the host's outbound policy already refused an
// upstream on the same host (scheme, name and port) as baseURL since the host was last
// probed: the host does not publish its policy, but it has shown it. "" otherwise.
func (e *Engine) knownPolicyRefusal(ctx context.Context, sc *stepContext, baseURL string) string {
	var since time.Time
	if sc.host.ProbedAt != nil {
		since = *sc.host.ProbedAt
	}
	refused, err := e.Store.FailedURLs(ctx, sc.host.ID, string(failure.HostPolicy), since)
	if err != nil {
		return ""
	}
	want, err := url.Parse(baseURL)
	if err != nil {
		return ""
	}
	for _, r := range refused {
		u, err := url.Parse(r)
		if err == nil && strings.EqualFold(u.Scheme, want.Scheme) && strings.EqualFold(u.Host, want.Host) {
			return fmt.Sprintf("host_policy: this host's outbound URL policy already refused %s (if its settings changed since, probe the host again); %s",
				r, host.OutboundPolicyAdvice(baseURL))
		}
	}
	return ""
}
