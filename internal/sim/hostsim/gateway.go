package hostsim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
)

const keyRequiredMsg = "API key is required in Authorization header (Bearer scheme), x-api-key header, or x-goog-api-key header"

func gatewayKey(r *http.Request) string {
	if t, ok := bearer(r); ok {
		return t
	}
	if k := r.Header.Get("x-api-key"); k != "" {
		return k
	}
	return r.Header.Get("x-goog-api-key")
}

// gatewayAuth runs the key middleware (§11.1). Caller holds s.mu.
func (s *Server) gatewayAuth(w http.ResponseWriter, r *http.Request, models bool) (*apiKey, *group, bool) {
	value := gatewayKey(r)
	if value == "" {
		mwErr(w, 401, "API_KEY_REQUIRED", keyRequiredMsg)
		return nil, nil, false
	}
	invalid := func() {
		if s.prof.fork && models {
			writeJSON(w, 401, map[string]any{"error": map[string]any{"code": 401, "message": "Invalid API key", "status": "UNAUTHENTICATED"}})
			return
		}
		mwErr(w, 401, "INVALID_API_KEY", "Invalid API key")
	}
	var k *apiKey
	for _, c := range s.keys {
		if c.key == value {
			k = c
			break
		}
	}
	now := s.now()
	if k == nil {
		// Remember the premature call: the host caches the negative answer.
		if s.opts.Default.UnknownKeyCache > 0 {
			s.badKeys[value] = now
		}
		invalid()
		return nil, nil, false
	}
	if t, bad := s.badKeys[value]; bad {
		if now.Sub(t) < s.opts.Default.UnknownKeyCache {
			invalid()
			return nil, nil, false
		}
		delete(s.badKeys, value)
	}
	u := s.users[k.userID]
	if u == nil || u.status != "active" || k.status != "active" {
		invalid()
		return nil, nil, false
	}
	if k.groupID == nil {
		writeJSON(w, 403, map[string]any{"error": map[string]any{"message": "API Key is not assigned to any group and cannot be used. Please contact the administrator to assign it to a group.", "type": "permission_error"}, "type": "error"})
		return nil, nil, false
	}
	g := s.groups[*k.groupID]
	if g == nil || g.deleted {
		mwErr(w, 403, "GROUP_DELETED", "API Key 所属分组已删除")
		return nil, nil, false
	}
	if g.subType == "subscription" {
		if s.activeSub(u.id, g.id) == nil {
			mwErr(w, 403, "SUBSCRIPTION_NOT_FOUND", "No active subscription found for this group")
			return nil, nil, false
		}
	} else if u.balance <= 0 {
		if s.prof.fork && models {
			writeJSON(w, 403, map[string]any{"error": map[string]any{"code": 403, "message": "Insufficient account balance", "status": "PERMISSION_DENIED"}})
		} else {
			mwErr(w, 403, "INSUFFICIENT_BALANCE", "Insufficient account balance")
		}
		return nil, nil, false
	}
	k.lastUsed, u.lastActive = &now, &now
	return k, g, true
}

// routable lists the accounts the scheduler would consider for a group (§6.3).
// Caller holds s.mu.
func (s *Server) routable(g *group) []*account {
	now := s.now()
	var out []*account
	for _, a := range s.accounts {
		if !a.boundTo(g.id) || effectivePlatform(a.platform, a.gatewayProtocol) != g.platform {
			continue
		}
		if a.status != "active" || !a.schedulable {
			continue
		}
		if a.tempUnschedUntil != nil && now.Before(*a.tempUnschedUntil) {
			continue
		}
		if a.rateLimitResetAt != nil && now.Before(*a.rateLimitResetAt) {
			continue
		}
		warmStart := a.createdAt
		if a.behavior.WarmupFromFirstUse {
			if a.firstRouted.IsZero() {
				a.firstRouted = now
			}
			warmStart = a.firstRouted
		}
		if now.Before(warmStart.Add(a.behavior.ChatWarmup)) {
			continue
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].priority != out[j].priority {
			return out[i].priority < out[j].priority
		}
		li, lj := lastUsed(out[i]), lastUsed(out[j])
		if !li.Equal(lj) {
			return li.Before(lj)
		}
		return out[i].id < out[j].id
	})
	return out
}

func lastUsed(a *account) time.Time {
	if a.lastUsedAt == nil {
		return time.Time{}
	}
	return *a.lastUsedAt
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, g, authed := s.gatewayAuth(w, r, true)
	if !authed {
		return
	}
	seen := map[string]bool{}
	for _, a := range s.routable(g) {
		for k := range a.mapping() {
			if g.allows(k) {
				seen[k] = true
			}
		}
	}
	if len(seen) == 0 {
		if s.prof.fork {
			writeJSON(w, 200, map[string]any{"object": "list", "data": []any{}})
			return
		}
		writeJSON(w, 200, s.prof.tmpl("models_catalog"))
		return
	}
	ids := make([]string, 0, len(seen))
	for k := range seen {
		ids = append(ids, k)
	}
	sort.Strings(ids)
	data := []any{}
	for _, id := range ids {
		data = append(data, overlay(s.prof.tmpl("gateway_model_item"), map[string]any{"id": id, "display_name": id}))
	}
	writeJSON(w, 200, map[string]any{"object": "list", "data": data})
}

// groupExhausted is the fork's answer to every routing or upstream failure.
func groupExhausted(w http.ResponseWriter) {
	gwErr(w, 503, "GROUP_EXHAUSTED", "all accounts in the group have been exhausted")
}

func (s *Server) noAccount(w http.ResponseWriter) {
	if s.prof.fork {
		groupExhausted(w)
		return
	}
	gwErr(w, 503, "api_error", "Service temporarily unavailable")
}

type attempt struct {
	id     int64
	key    string
	base   string // the account's base URL, for the outbound policy
	route  upstreamRoute
	target string
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var req map[string]any
	s.mu.Lock()
	_, g, authed := s.gatewayAuth(w, r, false)
	if !authed {
		s.mu.Unlock()
		return
	}
	if err := json.Unmarshal(raw, &req); err != nil {
		s.mu.Unlock()
		gwErr(w, 400, "invalid_request_error", "Failed to parse request body")
		return
	}
	model := str(req, "model")
	stream, _ := req["stream"].(bool)
	if !g.allows(model) {
		// 0.2.3+: an enabled model_allowlist refuses before routing (404; the exact body
		// is not recorded, the release notes say it names the group).
		s.mu.Unlock()
		gwErr(w, 404, "not_found_error", fmt.Sprintf("The model %q is not available for this group", model))
		return
	}
	cands := s.routable(g)
	if len(cands) == 0 {
		s.mu.Unlock()
		s.noAccount(w)
		return
	}
	var tries []attempt
	for _, a := range cands {
		if t, ok := mapModel(a.mapping(), model); ok {
			s.touchNative(a)
			tries = append(tries, attempt{id: a.id, key: a.apiKey, base: a.baseURL, route: s.upstreamFor(a), target: t})
		}
	}
	s.mu.Unlock()
	if len(tries) == 0 {
		switch {
		case s.prof.fork:
			groupExhausted(w)
		case s.prof.line179:
			gwErr(w, 404, "model_not_found", fmt.Sprintf("Model %q is not supported by any configured account in this group", model))
		default:
			s.noAccount(w)
		}
		return
	}
	if len(tries) > 3 {
		tries = tries[:3]
	}
	lastStatus := 0
	for _, t := range tries {
		status, done := s.forward(w, r, req, model, stream, t)
		if done {
			return
		}
		lastStatus = status
	}
	s.upstreamFailure(w, lastStatus)
}

// upstreamFailure maps the last upstream error to the client answer (§11.6, §15.3).
func (s *Server) upstreamFailure(w http.ResponseWriter, status int) {
	if s.prof.fork {
		if status == 404 {
			gwErr(w, 404, "not_found_error", "Not Found")
			return
		}
		groupExhausted(w)
		return
	}
	switch {
	case status == 401:
		gwErr(w, 502, "upstream_error", "Upstream authentication failed, please contact administrator")
	case status == 429:
		gwErr(w, 429, "rate_limit_error", "Upstream rate limit exceeded, please retry later")
	case status >= 500:
		gwErr(w, 502, "upstream_error", "Upstream service temporarily unavailable")
	default:
		gwErr(w, 502, "upstream_error", "Upstream request failed")
	}
}

// forward calls one account's upstream. done=true means a response was
// written; otherwise status is the upstream failure to fail over from.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, req map[string]any, alias string, stream bool, t attempt) (int, bool) {
	if s.forwardRefusal(t.base) != "" {
		// The outbound policy forbids the account's base URL: nothing is sent, and the
		// client gets the generic "Upstream request failed".
		return 0, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
	defer cancel()
	var body map[string]any
	if t.route.responses {
		body = toResponsesRequest(req, t.target)
	} else {
		body = deepCopyMap(req)
		body["model"] = t.target
		if stream && !s.prof.fork {
			so, _ := body["stream_options"].(map[string]any)
			if so == nil {
				so = map[string]any{}
			}
			so["include_usage"] = true
			body["stream_options"] = so
		}
	}
	resp, err := s.post(ctx, t.route.url, t.key, body, r.UserAgent())
	if err != nil {
		return 502, false
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		s.mu.Lock()
		if a := s.accounts[t.id]; a != nil {
			s.markUpstreamFailure(a, resp.StatusCode, b, false, false)
		}
		s.mu.Unlock()
		switch resp.StatusCode {
		case 401, 402, 429:
			return resp.StatusCode, false
		}
		if resp.StatusCode >= 500 {
			return resp.StatusCode, false
		}
		// Other 4xx are the client's problem: no failover.
		s.upstreamFailure(w, resp.StatusCode)
		return resp.StatusCode, true
	}
	now := s.now()
	s.mu.Lock()
	if a := s.accounts[t.id]; a != nil {
		a.lastUsedAt = &now
	}
	s.mu.Unlock()
	w.Header().Add("X-Request-Id", "sim-"+randHex(8))
	if rid := resp.Header.Get("X-Request-Id"); rid != "" {
		w.Header().Add("X-Request-Id", rid)
	}
	if t.route.responses {
		s.writeConverted(w, resp.Body, alias, stream, req)
		return 200, true
	}
	ct := resp.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/json"
	}
	if stream {
		ct = "text/event-stream"
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(200)
	copyFlush(w, resp.Body)
	return 200, true
}

// copyFlush passes an upstream body through, flushing as it goes (SSE).
func copyFlush(w http.ResponseWriter, r io.Reader) {
	f, _ := w.(http.Flusher)
	buf := make([]byte, 8192)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			_, _ = w.Write(buf[:n])
			if f != nil {
				f.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

// writeConverted turns a Responses event stream into a chat completion
// (labelled text/event-stream even when not streamed, as 129 and the fork do).
func (s *Server) writeConverted(w http.ResponseWriter, r io.Reader, alias string, stream bool, req map[string]any) {
	created := s.now().Unix()
	if !stream {
		// 129 and the fork label the converted JSON body as an event stream.
		if s.prof.line179 {
			w.Header().Set("Content-Type", "application/json")
		} else {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Cache-Control", "no-cache")
		}
		res := readResponses(r, nil)
		w.WriteHeader(200)
		b, _ := json.Marshal(map[string]any{"id": res.id, "object": "chat.completion", "created": created, "model": alias,
			"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": strings.Join(res.deltas, "")}, "finish_reason": "stop"}},
			"usage":   map[string]any{"prompt_tokens": res.promptTok, "completion_tokens": res.complTok, "total_tokens": res.promptTok + res.complTok}})
		_, _ = w.Write(b)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(200)
	f, _ := w.(http.Flusher)
	id := "chatcmpl-sim" + randHex(6)
	chunk := func(delta map[string]any, finish any) {
		b, _ := json.Marshal(map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": alias,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}})
		_, _ = fmt.Fprintf(w, "data: %s\n\n", b)
		if f != nil {
			f.Flush()
		}
	}
	chunk(map[string]any{"role": "assistant"}, nil)
	res := readResponses(r, func(d string) { chunk(map[string]any{"content": d}, nil) })
	chunk(map[string]any{"content": ""}, "stop")
	if so, _ := req["stream_options"].(map[string]any); so != nil && so["include_usage"] == true {
		b, _ := json.Marshal(map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": alias, "choices": []any{},
			"usage": map[string]any{"prompt_tokens": res.promptTok, "completion_tokens": res.complTok, "total_tokens": res.promptTok + res.complTok}})
		_, _ = fmt.Fprintf(w, "data: %s\n\n", b)
	}
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
}
