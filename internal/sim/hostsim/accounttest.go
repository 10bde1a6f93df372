package hostsim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

const (
	statusTesting  = "正在通过 /v1/chat/completions 测试连接"
	statusVerified = "已通过 /v1/chat/completions 验证"
	// The 129 answer for accounts it will not test (chat-only / forced chat completions).
	msg129Unsupported = "账号已被探测为不支持 OpenAI Responses API（如 DeepSeek/Kimi 等三方兼容上游），账号本身可正常使用，但当前测试接口仅支持 Responses API 路径。请直接通过实际 API 调用验证。"
	warmupTestError   = `API returned 403: {"error":{"message":"account is warming up","type":"permission_error"}}`
)

// mapModel resolves a public model id through a mapping: empty mapping =
// any model unchanged; exact key first, then the longest "*" pattern.
func mapModel(mm map[string]string, model string) (string, bool) {
	if len(mm) == 0 {
		return model, true
	}
	if t, ok := mm[model]; ok {
		return t, true
	}
	best, target := -1, ""
	for k, t := range mm {
		if !strings.Contains(k, "*") {
			continue
		}
		pre, suf, _ := strings.Cut(k, "*")
		if strings.HasPrefix(model, pre) && strings.HasSuffix(model, suf) && len(k) > best {
			best, target = len(k), t
		}
	}
	return target, best >= 0
}

// eventWriter writes account-test events.
type eventWriter struct {
	w http.ResponseWriter
}

// eventKeyOrder is the field order of the recorded events ("type" first), so
// clients that match raw lines see the same bytes as on a real host.
var eventKeyOrder = []string{"type", "model", "text", "data", "error", "success"}

func (e eventWriter) send(ev map[string]any) {
	var buf strings.Builder
	buf.WriteByte('{')
	n := 0
	for _, k := range eventKeyOrder {
		v, has := ev[k]
		if !has {
			continue
		}
		if n > 0 {
			buf.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		vb, _ := json.Marshal(v)
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(vb)
		n++
	}
	buf.WriteByte('}')
	_, _ = fmt.Fprintf(e.w, "data: %s\n\n", buf.String())
	if f, ok := e.w.(http.Flusher); ok {
		f.Flush()
	}
}

func sseHeaders(w http.ResponseWriter, ctype string) {
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(200)
}

// handleAccountTest is POST /admin/accounts/:id/test. It is called without s.mu held.
func (s *Server) handleAccountTest(w http.ResponseWriter, r *http.Request, id int64) {
	req, _ := decodeBody(r)
	modelID := str(req, "model_id")
	if modelID == "" {
		modelID = "gpt-4o-mini"
	}
	s.mu.Lock()
	a := s.accounts[id]
	if a == nil {
		s.mu.Unlock()
		if s.prof.fork {
			typedErr(w, 404, "ACCOUNT_NOT_FOUND", "account not found")
			return
		}
		sseHeaders(w, "text/plain; charset=utf-8")
		eventWriter{w}.send(map[string]any{"type": "error", "error": "Account not found"})
		return
	}
	mm := a.mapping()
	target, mapped := mapModel(mm, modelID)
	if !mapped {
		if s.prof.fork {
			s.mu.Unlock()
			typedErr(w, 400, "TEST_MODEL_NOT_ALLOWED", "model is not allowed for this account")
			return
		}
		target = modelID // 129/179 test whatever they are given
	}
	a.testsRun++
	s.touchNative(a)
	warming := a.testsRun <= a.behavior.TestWarmups
	mode, _ := a.extra["openai_responses_mode"].(string)
	supported, hasSupported := a.extra["openai_responses_supported"].(bool)
	route := s.upstreamFor(a)
	key, platform, base := a.apiKey, a.platform, a.baseURL
	s.mu.Unlock()

	ev := eventWriter{w}
	if why := s.forwardRefusal(base); why != "" {
		// Checked before anything is sent, before the SSE headers.
		sseHeaders(w, "text/plain; charset=utf-8")
		ev.send(map[string]any{"type": "error", "error": testRefusalError(why)})
		return
	}
	if warming {
		sseHeaders(w, "text/event-stream")
		ev.send(map[string]any{"type": "test_start", "model": target})
		ev.send(map[string]any{"type": "error", "error": warmupTestError})
		return
	}
	chatPath := true
	switch {
	case s.prof.fork:
		chatPath = !route.responses
	case platform == "openai":
		forcedCC := mode == "force_chat_completions"
		useResponses := mode == "force_responses" || (!forcedCC && hasSupported && supported)
		if s.prof.name == Profile129 && !useResponses {
			sseHeaders(w, "text/plain; charset=utf-8")
			ev.send(map[string]any{"type": "error", "error": msg129Unsupported})
			return
		}
		chatPath = !useResponses
		if useResponses {
			route = upstreamRoute{url: endpointURL(base, "responses"), responses: true}
		} else {
			route = upstreamRoute{url: endpointURL(base, "chat/completions")}
		}
	}
	sseHeaders(w, "text/event-stream")
	startModel := target
	if s.prof.fork {
		startModel = modelID
	}
	ev.send(map[string]any{"type": "test_start", "model": startModel})
	if s.prof.fork {
		for _, m := range forkRuntimeMeta(platform, modelID, route) {
			ev.send(m)
		}
	}
	showStatus := s.prof.line179 && chatPath
	if showStatus {
		ev.send(map[string]any{"type": "status", "text": statusTesting})
	}
	ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
	defer cancel()
	var body any
	if route.responses {
		body = toResponsesRequest(map[string]any{"messages": []any{map[string]any{"role": "user", "content": "hi"}}}, target)
	} else {
		body = map[string]any{"model": target, "messages": []any{map[string]any{"role": "user", "content": "hi"}}, "stream": true,
			"stream_options": map[string]any{"include_usage": true}}
	}
	resp, err := s.post(ctx, route.url, key, body, "")
	if err != nil {
		ev.send(map[string]any{"type": "error", "error": "Request failed: " + err.Error()})
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		msg := fmt.Sprintf("API returned %d: %s", resp.StatusCode, string(b))
		switch {
		case s.prof.fork && (resp.StatusCode == 401 || resp.StatusCode == 402 || resp.StatusCode == 429 || resp.StatusCode >= 500):
			msg = fmt.Sprintf("upstream error: %d (failover)", resp.StatusCode)
		case s.prof.fork:
			// Other upstream errors surface as the gateway's own 502, with advice first.
			msg = `API returned 502: {"error":{"message":"Upstream request failed","type":"upstream_error"}}`
			ev.send(map[string]any{"type": "blacklist_advice", "data": map[string]any{"decision": "not_recommended",
				"reason_code": "transient_or_retryable", "reason_message": "Upstream request failed", "feedback_fingerprint": randHex(8),
				"collect_feedback": true, "platform": effectivePlatform(platform, ""), "status_code": 502, "message_keywords": []any{"failed", "request"}}})
		case chatPath && s.prof.line179:
			msg = fmt.Sprintf("Chat Completions API (/v1/chat/completions) returned %d: %s", resp.StatusCode, string(b))
		}
		s.mu.Lock()
		if a := s.accounts[id]; a != nil {
			s.markUpstreamFailure(a, resp.StatusCode, b, chatPath && s.prof.nativeCN[a.platform] && !s.prof.fork, !s.prof.fork)
		}
		s.mu.Unlock()
		ev.send(map[string]any{"type": "error", "error": msg})
		return
	}
	if route.responses {
		readResponses(resp.Body, func(d string) { ev.send(map[string]any{"type": "content", "text": d}) })
	} else {
		sseData(resp.Body, func(data string) bool {
			if data == "[DONE]" {
				return false
			}
			var chunk struct {
				Choices []struct {
					Delta struct {
						Content string `json:"content"`
					} `json:"delta"`
				} `json:"choices"`
			}
			if json.Unmarshal([]byte(data), &chunk) == nil && len(chunk.Choices) > 0 && chunk.Choices[0].Delta.Content != "" {
				ev.send(map[string]any{"type": "content", "text": chunk.Choices[0].Delta.Content})
			}
			return true
		})
	}
	if showStatus {
		ev.send(map[string]any{"type": "status", "text": statusVerified})
	}
	s.mu.Lock()
	if a := s.accounts[id]; a != nil {
		now := s.now()
		a.lastUsedAt = &now
	}
	s.mu.Unlock()
	ev.send(map[string]any{"type": "test_complete", "success": true})
}

// forkRuntimeMeta are the fork's "runtime_meta" content events.
func forkRuntimeMeta(platform, model string, route upstreamRoute) []map[string]any {
	inbound, compat := "/v1/chat/completions", "openai->openai:chat_passthrough"
	if route.responses {
		inbound, compat = "/v1/responses", "openai->openai:native_passthrough"
	}
	eff := platform
	if platform == "protocol_gateway" {
		eff = "openai"
	}
	meta := func(key, text, label, value string) map[string]any {
		return map[string]any{"type": "content", "text": text, "data": map[string]any{"key": key, "kind": "runtime_meta", "label": label, "source": "account_test", "value": value}}
	}
	return []map[string]any{
		meta("test_mode", "Test mode: Real forward", "Real forward", "real_forward"),
		meta("resolved_platform", "Effective platform: "+eff, eff, eff),
		meta("resolved_protocol", "Gateway source protocol: OpenAI", "OpenAI", "openai"),
		meta("inbound_endpoint", "Inbound endpoint: "+inbound, inbound, inbound),
		meta("compat_path", "Compatibility path: "+compat, compat, compat),
		meta("resolved_model_id", "Resolved model: "+model, model, model),
	}
}

// touchNative records what 179 writes on a native CN account the first time
// it is tested or used. Caller holds s.mu.
func (s *Server) touchNative(a *account) {
	if !s.prof.line179 || !s.prof.nativeCN[a.platform] {
		return
	}
	if a.extra == nil {
		a.extra = map[string]any{}
	}
	if _, has := a.extra["openai_responses_mode"]; !has {
		a.extra["openai_responses_mode"] = "auto"
		a.extra["openai_responses_supported"] = false
	}
}

// markUpstreamFailure writes the account side effects of an upstream error
// (§7.3, §11.6). fullBody: tests record the whole body, traffic only the
// message. Caller holds s.mu.
func (s *Server) markUpstreamFailure(a *account, status int, body []byte, nativeChat, fullBody bool) {
	detail := upstreamErrMessage(body)
	if fullBody {
		detail = string(body)
	}
	now := s.now()
	switch status {
	case 401, 402:
		if status == 402 && s.prof.line179 && a.platform == "deepseek" {
			// 179 flags low DeepSeek balance instead of failing the account.
			if a.extra == nil {
				a.extra = map[string]any{}
			}
			a.extra["deepseek_balance_low"] = true
			until := now.Add(20 * time.Minute)
			a.tempUnschedUntil, a.tempUnschedReason = &until, "cn_balance_low: "+upstreamErrMessage(body)
			break
		}
		prefix := "Authentication failed"
		if status == 402 {
			prefix = "Payment required"
		}
		if nativeChat {
			prefix = "Chat Completions authentication failed"
		}
		a.status = "error"
		a.errMsg = fmt.Sprintf("%s (%d): %s", prefix, status, detail)
		if s.prof.schedulableOffOnAuthError {
			a.schedulable = false
		}
	case 429:
		reset := now.Add(time.Duration(s.prof.rateLimitCooldownSeconds) * time.Second)
		a.rateLimitedAt, a.rateLimitResetAt = &now, &reset
		if s.prof.fork {
			a.rateLimitReason = "rate_429"
			if a.extra == nil {
				a.extra = map[string]any{}
			}
			a.extra["rate_limit_reason"] = "rate_429"
		}
	default:
		return
	}
	a.updatedAt = now
	s.bumpAccounts()
}
