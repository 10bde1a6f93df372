package upstream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
)

// listError marks a /models failure that does not end the probe (404, 5xx, odd body):
// many relays have no model list, and the chat probe decides.
type listError struct{ err error }

func (e *listError) Error() string { return e.err.Error() }
func (e *listError) Unwrap() error { return e.err }

// listModels calls GET {base}/models. Key problems (401, 402, 403, 429) and transport
// failures are returned as they are, because the chat probe would only repeat them.
func (p *Prober) listModels(ctx context.Context, tg target) ([]string, bool, error) {
	a, err := p.do(ctx, request{method: http.MethodGet, url: tg.base + "/models", key: tg.key})
	if err != nil {
		return nil, false, err
	}
	if fe := p.classify(tg, a); fe != nil {
		switch fe.Class {
		case failure.InvalidKey, failure.KeyBanned, failure.NoQuota, failure.RateLimited, failure.RegionBlocked:
			return nil, false, fe
		}
		return nil, false, &listError{err: fe}
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(a.body, &list); err != nil {
		return nil, false, &listError{err: failure.New(failure.UpstreamIncompatible, "model list is not an OpenAI list")}
	}
	var ids []string
	for _, d := range list.Data {
		if d.ID != "" {
			ids = append(ids, d.ID)
		}
	}
	return ids, len(ids) > 0, nil
}

// Token limit parameters, newest first: OpenAI renamed max_tokens, and some CN upstreams
// and relays still reject the new name.
const (
	paramMaxCompletion = "max_completion_tokens"
	paramMaxTokens     = "max_tokens"
)

func chatBody(model, param string, tokens int) map[string]any {
	return map[string]any{
		"model":    model,
		"messages": []map[string]string{{"role": "user", "content": "hi"}},
		param:      tokens,
	}
}

// chat runs the minimal completion, falling back to max_tokens when the upstream rejects
// max_completion_tokens, and returns the parameter that worked.
func (p *Prober) chat(ctx context.Context, tg target, model string) (string, error) {
	param := paramMaxCompletion
	for {
		a, err := p.do(ctx, request{method: http.MethodPost, url: tg.base + "/chat/completions", key: tg.key,
			body: chatBody(model, param, 1)})
		if err != nil {
			return param, err
		}
		fe := p.classify(tg, a)
		if fe != nil && param == paramMaxCompletion && rejectsParam(a, paramMaxCompletion) {
			param = paramMaxTokens
			continue
		}
		if fe != nil {
			return param, fe
		}
		if !hasChoices(a.body) {
			return param, p.failf(tg, failure.UpstreamIncompatible, "chat/completions answered HTTP %d without choices", a.status)
		}
		return param, nil
	}
}

// rejectsParam reports a 400/422 answer that complains about the parameter (or any
// unknown parameter, which is how several relays answer).
func rejectsParam(a *answer, param string) bool {
	if a.status != http.StatusBadRequest && a.status != http.StatusUnprocessableEntity {
		return false
	}
	l := strings.ToLower(string(a.body))
	return strings.Contains(l, param) || strings.Contains(l, "unrecognized request argument") ||
		strings.Contains(l, "unknown parameter") || strings.Contains(l, "extra inputs are not permitted")
}

func hasChoices(body []byte) bool {
	var v struct {
		Choices []json.RawMessage `json:"choices"`
	}
	return json.Unmarshal(body, &v) == nil && len(v.Choices) > 0
}

// probeStream asks for an SSE stream and requires one data event that is not [DONE] and
// carries no error. Comment lines (": keep-alive", sent by DeepSeek while queued) are
// ignored.
func (p *Prober) probeStream(ctx context.Context, tg target, c *Capability) {
	c.tested("stream")
	body := chatBody(c.ChatModel, c.TokenParam, 1)
	body["stream"] = true
	body["stream_options"] = map[string]bool{"include_usage": true}
	a, err := p.do(ctx, request{method: http.MethodPost, url: tg.base + "/chat/completions", key: tg.key, body: body})
	if err == nil && a.status == http.StatusBadRequest {
		// Some upstreams reject stream_options; retry plain.
		delete(body, "stream_options")
		a, err = p.do(ctx, request{method: http.MethodPost, url: tg.base + "/chat/completions", key: tg.key, body: body})
	}
	if err != nil {
		c.note("stream: %s", failureMessage(err))
		return
	}
	if a.status != http.StatusOK {
		c.note("stream: %s", failureMessage(p.classify(tg, a)))
		return
	}
	events, errEvent := sseData(a.body)
	if errEvent != "" {
		c.note("stream: error event: %s", p.failf(tg, failure.UpstreamIncompatible, "%s", snippet(errEvent, 200)).Message)
		return
	}
	if events == 0 {
		c.note("stream: no data events")
		return
	}
	c.Stream = true
}

// sseData counts data events that are not [DONE] and returns the first error event.
func sseData(body []byte) (int, string) {
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		data, ok := strings.CutPrefix(line, "data:")
		if !ok {
			continue // comments, event:, id:, blank lines
		}
		data = strings.TrimSpace(data)
		if data == "" || data == "[DONE]" {
			continue
		}
		if info := parseErrorBody([]byte(data)); info.present {
			return n, data
		}
		n++
	}
	return n, ""
}

// probeTools sends one function tool; acceptance of the request is the signal (a
// 1-token answer rarely contains the call itself).
func (p *Prober) probeTools(ctx context.Context, tg target, c *Capability) {
	c.tested("tools")
	body := chatBody(c.ChatModel, c.TokenParam, 16)
	body["tools"] = []map[string]any{{
		"type": "function",
		"function": map[string]any{
			"name":        "get_time",
			"description": "Returns the current time.",
			"parameters":  map[string]any{"type": "object", "properties": map[string]any{}},
		},
	}}
	a, err := p.do(ctx, request{method: http.MethodPost, url: tg.base + "/chat/completions", key: tg.key, body: body})
	if err != nil {
		c.note("tools: %s", failureMessage(err))
		return
	}
	if fe := p.classify(tg, a); fe != nil {
		c.note("tools: %s", failureMessage(fe))
		return
	}
	if !hasChoices(a.body) {
		c.note("tools: answer without choices")
		return
	}
	c.Tools = true
	if !bytes.Contains(a.body, []byte(`"tool_calls"`)) {
		c.note("tools: request accepted, no tool call in the short answer")
	}
}

// probeResponses calls POST {base}/responses where the provider documents it (always for
// unknown relays: the answer tells).
func (p *Prober) probeResponses(ctx context.Context, tg target, c *Capability) {
	model := c.ChatModel
	if !tg.prov.Responses {
		c.note("responses: not offered by %s", tg.prov.Name)
		return
	}
	if !tg.prov.SupportsResponses(model) {
		model = ""
		for _, m := range tg.prov.ResponsesModels {
			if !c.ModelsListed || containsFold(c.Models, m) {
				model = m
				break
			}
		}
		if model == "" {
			c.note("responses: no model of this upstream supports it")
			return
		}
	}
	c.tested("responses")
	a, err := p.do(ctx, request{method: http.MethodPost, url: tg.base + "/responses", key: tg.key,
		body: map[string]any{"model": model, "input": "hi", "max_output_tokens": 16}})
	if err != nil {
		c.note("responses: %s", failureMessage(err))
		return
	}
	if fe := p.classify(tg, a); fe != nil {
		c.note("responses: %s", failureMessage(fe))
		return
	}
	var v struct {
		Object string            `json:"object"`
		Output []json.RawMessage `json:"output"`
	}
	if json.Unmarshal(a.body, &v) != nil || (v.Object != "response" && len(v.Output) == 0) {
		c.note("responses: answer is not a Responses object")
		return
	}
	c.Responses = true
}

// probeAnthropic calls POST {anthropic base}/v1/messages at the Anthropic base kept beside
// the OpenAI base (never at the OpenAI base: "…/v1/v1/messages" answers 404 everywhere).
func (p *Prober) probeAnthropic(ctx context.Context, tg target, c *Capability) {
	ab := tg.anthropic
	if ab == "" {
		c.note("anthropic: no Anthropic-compatible base is known for this %s base", tg.prov.Name)
		return
	}
	c.AnthropicBase = ab
	c.tested("anthropic")
	a, err := p.do(ctx, request{method: http.MethodPost, url: ab + "/v1/messages", key: tg.key, anthropic: true,
		body: map[string]any{"model": c.ChatModel, "max_tokens": 1,
			"messages": []map[string]string{{"role": "user", "content": "hi"}}}})
	if err != nil {
		c.note("anthropic: %s", failureMessage(err))
		return
	}
	if fe := p.classify(tg, a); fe != nil {
		c.note("anthropic: %s", failureMessage(fe))
		return
	}
	var v struct {
		Type    string            `json:"type"`
		Content []json.RawMessage `json:"content"`
	}
	if json.Unmarshal(a.body, &v) != nil || v.Type != "message" {
		c.note("anthropic: answer is not a Messages object")
		return
	}
	c.Anthropic = true
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
