package upstreamsim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/catalog"
)

// relayModels are served by the generic relay and by catalog providers without model ids.
var relayModels = []string{"deepseek-v4-pro", "kimi-k2.6", "glm-5.1", "qwen3.8-max", "text-embedding-v4"}

// route is a parsed request path.
type route struct {
	prov     *catalog.Provider
	endpoint string // "models", "chat", "responses", "messages", "balance"
}

// balancePaths are the balance endpoints of the providers that offer one to API keys, as
// paths below the provider's root (DeepSeek's sits at the root, beside /v1).
var balancePaths = map[string]string{
	"deepseek":    "/user/balance",
	"kimi":        "/v1/users/me/balance",
	"siliconflow": "/v1/user/info",
	"stepfun":     "/v1/accounts",
}

// ServeHTTP dispatches /{provider}{default path}/models|chat/completions|responses and
// /{provider}{anthropic path}/v1/messages; the generic relay lives under /relay/v1.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	if !s.wait(r, s.opts.Latency) {
		return
	}
	rt, ok := s.route(r.URL.Path)
	if !ok {
		// Go's mux answer, as MiniMax returns for wrong paths.
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	key := bearer(r)
	if key == "" && rt.endpoint == "messages" {
		key = r.Header.Get("x-api-key")
	}
	mode, known := s.mode(key)
	if mode == ModeSlow && !s.wait(r, s.opts.SlowDelay) {
		return
	}
	anth := rt.endpoint == "messages"
	if !known || mode == ModeInvalid {
		if anth {
			anthropicError(401, "authentication_error", "invalid x-api-key").write(w)
			return
		}
		unauthorized(rt.prov.ID, key).write(w)
		return
	}
	if mode == ModeBanned {
		banned(rt.prov.ID).write(w)
		return
	}
	want := http.MethodPost
	if rt.endpoint == "models" || rt.endpoint == "balance" {
		want = http.MethodGet
	}
	if r.Method != want {
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	if rt.endpoint == "models" {
		s.serveModels(w, rt.prov)
		return
	}
	if rt.endpoint == "balance" {
		s.serveBalance(w, rt.prov, s.balance(key, mode))
		return
	}
	if mode == ModeChatOnly && rt.endpoint != "chat" {
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	// The money is gone: inference answers like ModeNoQuota.
	if s.balance(key, mode) <= 0 && (mode == ModeOK || mode == ModeChatOnly || mode == ModeSlow) {
		mode = ModeNoQuota
	}
	req, err := readRequest(r)
	if err != nil {
		reply{400, fmt.Sprintf(`{"error":{"message":%s,"type":"invalid_request_error"}}`, q(err.Error())), nil}.write(w)
		return
	}
	switch mode {
	case ModeNoQuota:
		s.quotaReply(rt, w)
		return
	case ModeRateLimited:
		if anth {
			rl := rateLimited(rt.prov.ID)
			rl.body = anthropicError(429, "rate_limit_error", "rate limit exceeded").body
			rl.write(w)
			return
		}
		rateLimited(rt.prov.ID).write(w)
		return
	case ModeErrorIn200:
		errorIn200(rt.prov.ID).write(w)
		return
	}
	switch rt.endpoint {
	case "chat":
		s.serveChat(w, rt.prov, req)
	case "responses":
		s.serveResponses(w, rt.prov, req)
	case "messages":
		s.serveMessages(w, rt.prov, req)
	}
}

// wait sleeps d unless the client goes away first.
func (s *Server) wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func (s *Server) route(p string) (route, bool) {
	rest := strings.TrimPrefix(p, "/")
	seg, tail, _ := strings.Cut(rest, "/")
	tail = "/" + tail
	id := seg
	if seg == RelayPrefix {
		id = catalog.OpenAICompatible
	} else if seg == catalog.OpenAICompatible {
		return route{}, false
	}
	prov, ok := s.cat.Provider(id)
	if !ok {
		return route{}, false
	}
	base := prov.DefaultPath
	if id == catalog.OpenAICompatible {
		base = "/v1"
	}
	if bp, ok := balancePaths[id]; ok && tail == bp {
		return route{prov: prov, endpoint: "balance"}, true
	}
	if ap, ok := prov.AnthropicPath(); ok && tail == ap+"/v1/messages" {
		return route{prov: prov, endpoint: "messages"}, true
	}
	bases := []string{base}
	if base == "" {
		bases = append(bases, "/v1") // DeepSeek: "/v1 also accepted"
	}
	for _, b := range bases {
		switch tail {
		case b + "/models":
			if !prov.ListsModels {
				return route{}, false
			}
			return route{prov: prov, endpoint: "models"}, true
		case b + "/chat/completions":
			return route{prov: prov, endpoint: "chat"}, true
		case b + "/responses":
			if !prov.Responses {
				return route{}, false
			}
			return route{prov: prov, endpoint: "responses"}, true
		}
	}
	return route{}, false
}

func bearer(r *http.Request) string {
	v := r.Header.Get("Authorization")
	if k, ok := strings.CutPrefix(v, "Bearer "); ok {
		return strings.TrimSpace(k)
	}
	return ""
}

// models returns the ids a provider serves.
func (s *Server) models(p *catalog.Provider) []string {
	var ids []string
	for _, m := range p.Models {
		if !m.Retired {
			ids = append(ids, m.ID)
		}
	}
	if len(ids) == 0 {
		return relayModels
	}
	return ids
}

func (s *Server) knows(p *catalog.Provider, model string) bool {
	for _, id := range s.models(p) {
		if id == model || (!p.CaseSensitive && strings.EqualFold(id, model)) {
			return true
		}
	}
	return false
}

func (s *Server) serveModels(w http.ResponseWriter, p *catalog.Provider) {
	type item struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	list := struct {
		Object string `json:"object"`
		Data   []item `json:"data"`
	}{Object: "list"}
	for _, id := range s.models(p) {
		list.Data = append(list.Data, item{ID: id, Object: "model", Created: 1767225600, OwnedBy: p.ID})
	}
	writeJSON(w, http.StatusOK, list)
}

// chatRequest is the part of an OpenAI/Anthropic/Responses request the simulator reads.
type chatRequest struct {
	Model         string            `json:"model"`
	Messages      []json.RawMessage `json:"messages"`
	Input         json.RawMessage   `json:"input"`
	Stream        bool              `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Tools []struct {
		Type     string `json:"type"`
		Name     string `json:"name"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	} `json:"tools"`
	MaxTokens           *int `json:"max_tokens"`
	MaxCompletionTokens *int `json:"max_completion_tokens"`
}

func readRequest(r *http.Request) (*chatRequest, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	var req chatRequest
	if err := json.Unmarshal(b, &req); err != nil {
		return nil, fmt.Errorf("invalid JSON body: %w", err)
	}
	return &req, nil
}

func (s *Server) quotaReply(rt route, w http.ResponseWriter) {
	if rt.endpoint != "messages" {
		noQuota(rt.prov.ID).write(w)
		return
	}
	switch rt.prov.ID {
	case "minimax":
		anthropicError(500, "api_error", "insufficient balance (1008)").write(w)
	case "glm":
		anthropicError(429, "1113", "Insufficient balance or no resource package. Please recharge.").write(w)
	default:
		anthropicError(402, "billing_error", "insufficient balance").write(w)
	}
}

func (s *Server) text(p *catalog.Provider, model string) string {
	return fmt.Sprintf("Hello from %s (model=%s)", p.ID, model)
}

func (s *Server) toolName(req *chatRequest) string {
	if len(req.Tools) == 0 {
		return ""
	}
	if n := req.Tools[0].Function.Name; n != "" {
		return n
	}
	return req.Tools[0].Name
}

func (s *Server) serveChat(w http.ResponseWriter, p *catalog.Provider, req *chatRequest) {
	if req.MaxCompletionTokens != nil && slices.Contains(s.opts.RejectMaxCompletionTokens, p.ID) {
		reply{400, `{"error":{"message":"Unrecognized request argument supplied: max_completion_tokens","type":"invalid_request_error","param":null,"code":null}}`, nil}.write(w)
		return
	}
	if req.Model == "" || len(req.Messages) == 0 {
		reply{400, `{"error":{"message":"model and messages are required","type":"invalid_request_error"}}`, nil}.write(w)
		return
	}
	if !s.knows(p, req.Model) {
		modelNotFound(p.ID, req.Model).write(w)
		return
	}
	id := fmt.Sprintf("chatcmpl-sim-%d", s.seq.Add(1))
	tool := s.toolName(req)
	if req.Stream {
		s.streamChat(w, p, req, id, tool)
		return
	}
	msg := map[string]any{"role": "assistant", "content": s.text(p, req.Model)}
	finish := "stop"
	if tool != "" {
		msg = map[string]any{"role": "assistant", "content": nil, "tool_calls": []map[string]any{{
			"id": "call_sim_1", "type": "function",
			"function": map[string]string{"name": tool, "arguments": "{}"},
		}}}
		finish = "tool_calls"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": id, "object": "chat.completion", "created": time.Now().Unix(), "model": req.Model,
		"choices": []map[string]any{{"index": 0, "message": msg, "finish_reason": finish}},
		"usage":   map[string]int{"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
	})
}

func (s *Server) streamChat(w http.ResponseWriter, p *catalog.Provider, req *chatRequest, id, tool string) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	send := func(v any) {
		b, _ := json.Marshal(v)
		_, _ = fmt.Fprintf(w, "data: %s\n\n", b)
		if fl != nil {
			fl.Flush()
		}
	}
	if p.ID == "deepseek" {
		// DeepSeek sends keep-alive comments while a request is queued.
		_, _ = io.WriteString(w, ": keep-alive\n\n")
	}
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{"id": id, "object": "chat.completion.chunk", "created": time.Now().Unix(), "model": req.Model,
			"choices": []map[string]any{{"index": 0, "delta": delta, "finish_reason": finish}}}
	}
	send(chunk(map[string]any{"role": "assistant", "content": ""}, nil))
	finish := "stop"
	if tool != "" {
		send(chunk(map[string]any{"tool_calls": []map[string]any{{"index": 0, "id": "call_sim_1", "type": "function",
			"function": map[string]string{"name": tool, "arguments": "{}"}}}}, nil))
		finish = "tool_calls"
	} else {
		send(chunk(map[string]any{"content": s.text(p, req.Model)}, nil))
	}
	send(chunk(map[string]any{}, finish))
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		send(map[string]any{"id": id, "object": "chat.completion.chunk", "model": req.Model, "choices": []any{},
			"usage": map[string]int{"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
	}
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
	if fl != nil {
		fl.Flush()
	}
}

func (s *Server) serveResponses(w http.ResponseWriter, p *catalog.Provider, req *chatRequest) {
	if req.Model == "" {
		reply{400, `{"error":{"message":"model is required","type":"invalid_request_error"}}`, nil}.write(w)
		return
	}
	if !s.knows(p, req.Model) || !p.SupportsResponses(req.Model) {
		modelNotFound(p.ID, req.Model).write(w)
		return
	}
	n := s.seq.Add(1)
	writeJSON(w, http.StatusOK, map[string]any{
		"id": fmt.Sprintf("resp_sim_%d", n), "object": "response", "created_at": time.Now().Unix(),
		"status": "completed", "model": req.Model,
		"output": []map[string]any{{"type": "message", "id": fmt.Sprintf("msg_sim_%d", n), "role": "assistant", "status": "completed",
			"content": []map[string]any{{"type": "output_text", "text": s.text(p, req.Model), "annotations": []any{}}}}},
		"usage": map[string]int{"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
	})
}

func (s *Server) serveMessages(w http.ResponseWriter, p *catalog.Provider, req *chatRequest) {
	if req.Model == "" || len(req.Messages) == 0 {
		anthropicError(400, "invalid_request_error", "model and messages are required").write(w)
		return
	}
	if !s.knows(p, req.Model) && !strings.HasPrefix(strings.ToLower(req.Model), "claude") {
		anthropicError(404, "not_found_error", "model: "+req.Model).write(w)
		return
	}
	content := []map[string]any{{"type": "text", "text": s.text(p, req.Model)}}
	stop := "end_turn"
	if tool := s.toolName(req); tool != "" {
		content = []map[string]any{{"type": "tool_use", "id": "toolu_sim_1", "name": tool, "input": map[string]any{}}}
		stop = "tool_use"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": fmt.Sprintf("msg_sim_%d", s.seq.Add(1)), "type": "message", "role": "assistant", "model": req.Model,
		"content": content, "stop_reason": stop, "stop_sequence": nil,
		"usage": map[string]int{"input_tokens": 1, "output_tokens": 1},
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
