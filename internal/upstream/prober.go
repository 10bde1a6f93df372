// Package upstream probes an upstream LLM provider directly (without the sub2api host):
// it lists models, resolves the requested names, runs a minimal chat completion and then
// checks streaming, tools, /responses and the Anthropic endpoint. Each protocol is probed
// at its own base: the OpenAI-compatible calls at the OpenAI base, /v1/messages at the
// Anthropic base kept beside it. Every answer is classified into a failure class
// (invalid_key, key_banned, no_quota, rate_limited, region_blocked, model_not_found,
// upstream_unreachable, upstream_incompatible) and recorded as redacted evidence.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/catalog"
	"github.com/cn-relay-manager/cn-relay-manager/internal/evidence"
	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
)

// Defaults for Options.
const (
	DefaultTimeout = 15 * time.Second
	// maxChatAttempts bounds how many resolved models the chat probe tries when the
	// first one is not found upstream.
	maxChatAttempts = 3
)

// Options configure a Prober. Zero values pick the defaults.
type Options struct {
	HTTPClient *http.Client
	Timeout    time.Duration // per call, default 15s
	Catalog    *catalog.Catalog
}

// Prober talks to upstreams. It is safe for concurrent use. It does not bound how many
// calls run at once: its callers hold a slot of the upstream's cross-process cap
// (internal/limit) for the probe, and a probe makes one call at a time.
type Prober struct {
	client  *http.Client
	timeout time.Duration
	cat     *catalog.Catalog
}

// NewProber returns a Prober with opts applied over the defaults.
func NewProber(opts Options) *Prober {
	p := &Prober{client: opts.HTTPClient, timeout: opts.Timeout, cat: opts.Catalog}
	if p.client == nil {
		p.client = &http.Client{}
	}
	if p.timeout <= 0 {
		p.timeout = DefaultTimeout
	}
	if p.cat == nil {
		p.cat = catalog.Default()
	}
	return p
}

// Target is one upstream to probe.
type Target struct {
	BaseURL string // as pasted or normalised; a pasted Anthropic base is mapped to its OpenAI base
	// AnthropicBase is the Anthropic-compatible base to probe /v1/messages at; "" = the one
	// the catalog keeps beside BaseURL (for a host it does not know but a provider named by
	// a hint: derived the way that provider lays out its paths).
	AnthropicBase string
	APIKey        string
	ProviderID    string   // "" = detect from the base URL and key
	Models        []string // requested model names, may be empty
}

// Capability is what the probe found out.
type Capability struct {
	Models       []string // ids from GET {base}/models (empty if not listed)
	ModelsListed bool
	Chat         bool   // a minimal chat completion works
	ChatModel    string // model used for the chat probe
	Stream       bool   // at least one SSE data event that is not [DONE]
	Tools        bool   // a chat request with tools was accepted
	Responses    bool   // POST {base}/responses works
	Anthropic    bool   // POST {AnthropicBase}/v1/messages works
	Resolution   catalog.Resolution
	Notes        []string
	// Tested names the capabilities the upstream gave a conclusive answer about
	// (models_listed, chat, stream, tools, responses, anthropic): a false one of them is
	// unsupported; a missing one was never tried, or its call failed for a reason the
	// failure class names (a refused key, no quota) rather than for lack of support.
	Tested []string

	// ProviderID is the provider the probe assumed (given or detected).
	ProviderID string
	// BaseURL is the normalised base that was probed.
	BaseURL string
	// AnthropicBase is the Anthropic base that was probed (kept beside BaseURL), "" if none.
	AnthropicBase string
	// TokenParam is the output-limit parameter the upstream accepted:
	// "max_completion_tokens" or "max_tokens".
	TokenParam string
}

func (c *Capability) tested(name string) { c.Tested = append(c.Tested, name) }

func (c *Capability) note(format string, args ...any) {
	c.Notes = append(c.Notes, fmt.Sprintf(format, args...))
}

// target is a prepared Target.
type target struct {
	base      string // OpenAI-compatible base
	anthropic string // Anthropic-compatible base, "" if none
	key       string
	prov      *catalog.Provider
	scope     *catalog.Scope // region and plan of the model list; nil = not known
	region    string         // region of the base's surface, "" when not known
	plan      bool           // the base is a subscription-plan surface
}

func (p *Prober) prepare(baseURL, anthropicBase, key, providerID string) (target, error) {
	n, err := p.cat.NormalizeURL(baseURL)
	if err != nil {
		return target{}, &failure.Error{Class: failure.UpstreamIncompatible, Message: "base URL rejected", Err: err}
	}
	if strings.TrimSpace(key) == "" {
		return target{}, failure.New(failure.InvalidKey, "API key is empty")
	}
	det := p.cat.Detect(n.BaseURL, key, providerID)
	if providerID == "" {
		providerID = det.ProviderID
	}
	prov, ok := p.cat.Provider(providerID)
	if !ok {
		prov, _ = p.cat.Provider(catalog.OpenAICompatible)
	}
	tg := target{base: n.BaseURL, anthropic: strings.TrimRight(strings.TrimSpace(anthropicBase), "/"), key: strings.TrimSpace(key), prov: prov,
		region: n.Region, plan: n.Plan}
	if det.ProviderID == prov.ID {
		tg.scope = p.cat.ScopeOf(n, det)
	}
	if tg.anthropic == "" {
		tg.anthropic = n.AnthropicBase
		if n.ProviderID == "" {
			// A mirror or simulator of a named provider: same path layout, other host.
			tg.anthropic = prov.AnthropicBaseFor(n.BaseURL)
		}
	}
	return tg, nil
}

// Probe checks one upstream: GET /models, model resolution, then a chat completion with
// the smoke model; stream, tools, /responses and Anthropic only set flags. A usable
// upstream returns (cap, nil); an unusable one returns what was learnt so far and a
// *failure.Error.
func (p *Prober) Probe(ctx context.Context, t Target) (*Capability, error) {
	c := &Capability{}
	tg, err := p.prepare(t.BaseURL, t.AnthropicBase, t.APIKey, t.ProviderID)
	if err != nil {
		return c, err
	}
	c.ProviderID, c.BaseURL = tg.prov.ID, tg.base

	models, listed, err := p.listModels(ctx, tg)
	var le *listError
	if errors.As(err, &le) {
		c.note("model list unavailable: %s", failureMessage(le.err))
	} else if err != nil {
		return c, err // the key or the upstream failed: nothing was learnt about the list
	}
	c.tested("models_listed")
	c.Models, c.ModelsListed = models, listed
	c.Resolution = p.cat.ResolveModelsAt(tg.prov.ID, tg.scope, t.Models, models)
	for _, cr := range c.Resolution.Corrections {
		switch {
		case cr.Resolved != "":
		case cr.Note != "":
			c.note("requested model %q not resolved: %s", strings.TrimSpace(cr.Requested), cr.Note)
		default:
			c.note("requested model %q not resolved", strings.TrimSpace(cr.Requested))
		}
	}

	candidates := p.chatCandidates(tg.prov.ID, c.Resolution)
	if len(candidates) == 0 {
		if len(t.Models) > 0 {
			return c, p.failf(tg, failure.ModelNotFound, "none of the requested models resolves to a chat model this upstream serves")
		}
		return c, p.failf(tg, failure.UpstreamIncompatible, "no chat model to probe: the upstream lists none and the catalog knows none")
	}
	var chatErr error
	for i, m := range candidates {
		if i == maxChatAttempts {
			break
		}
		param, err := p.chat(ctx, tg, m)
		if err == nil {
			c.Chat, c.ChatModel, c.TokenParam = true, m, param
			break
		}
		chatErr = err
		if failure.ClassOf(err) != failure.ModelNotFound {
			return c, err
		}
		c.note("chat with %q: %s", m, failureMessage(err))
	}
	if !c.Chat {
		if failure.ClassOf(chatErr) == failure.ModelNotFound {
			c.tested("chat") // it answered: none of these models chats here
		}
		return c, chatErr // otherwise the failure class says why, not "unsupported"
	}
	c.tested("chat")

	p.probeStream(ctx, tg, c)
	p.probeTools(ctx, tg, c)
	p.probeResponses(ctx, tg, c)
	p.probeAnthropic(ctx, tg, c)
	return c, nil
}

// Chat runs one minimal chat completion and classifies the outcome like Probe does. The
// pipeline uses it to gather direct upstream evidence when the host path fails.
func (p *Prober) Chat(ctx context.Context, baseURL, apiKey, providerID, model string) error {
	tg, err := p.prepare(baseURL, "", apiKey, providerID)
	if err != nil {
		return err
	}
	if strings.TrimSpace(model) == "" {
		return failure.New(failure.ModelNotFound, "no model given for the chat probe")
	}
	_, err = p.chat(ctx, tg, strings.TrimSpace(model))
	return err
}

// Check is the cheap re-verification of an imported key: GET {base}/models, where key
// problems (401, 402, 403, 429) show first, then a 1-token chat completion with model (the
// upstream model the account maps, e.g. the item's smoke model). A relay without a usable
// model list is judged by the chat alone. It returns nil when both pass, else the
// classified failure, like Probe.
func (p *Prober) Check(ctx context.Context, baseURL, apiKey, providerID, model string) error {
	tg, err := p.prepare(baseURL, "", apiKey, providerID)
	if err != nil {
		return err
	}
	if strings.TrimSpace(model) == "" {
		return failure.New(failure.ModelNotFound, "no model given for the chat check")
	}
	if _, _, err := p.listModels(ctx, tg); err != nil {
		var le *listError
		if !errors.As(err, &le) {
			return err
		}
	}
	_, err = p.chat(ctx, tg, strings.TrimSpace(model))
	return err
}

// chatCandidates lists resolved chat models, smoke model first; the others are fallbacks
// when the smoke model turns out not to be served.
func (p *Prober) chatCandidates(providerID string, r catalog.Resolution) []string {
	if r.SmokeModel == "" {
		return nil
	}
	out := []string{r.SmokeModel}
	for _, m := range r.Models {
		if m != r.SmokeModel && p.cat.IsChatModel(providerID, m) {
			out = append(out, m)
		}
	}
	return out
}

func failureMessage(err error) string {
	var fe *failure.Error
	if errors.As(err, &fe) {
		return string(fe.Class) + ": " + fe.Message
	}
	return err.Error()
}

// failf builds a classified error whose message is redacted.
func (p *Prober) failf(tg target, class failure.Class, format string, args ...any) *failure.Error {
	return &failure.Error{Class: class, Message: evidence.Redact(fmt.Sprintf(format, args...), tg.key)}
}

// classify classifies an answer and redacts the key from the message.
func (p *Prober) classify(tg target, a *answer) *failure.Error {
	fe := classifyWith(p.cat, tg.prov.ID, a.status, a.header, a.body)
	if fe != nil {
		fe.Message = evidence.Redact(fe.Message, tg.key)
	}
	return fe
}
