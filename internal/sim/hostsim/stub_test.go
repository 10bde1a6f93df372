package hostsim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// stubUpstream mimics the loopback upstreams of the recordings: the root is
// an OpenAI-compatible server (chat + responses), /chatonly/... answers only
// chat completions, /s401, /s402, /s429, /s500 always fail.
type stubUpstream struct {
	*httptest.Server
	mu    sync.Mutex
	calls []string // method + path
}

func newStubUpstream(t *testing.T) *stubUpstream {
	st := &stubUpstream{}
	st.Server = httptest.NewServer(http.HandlerFunc(st.serve))
	t.Cleanup(st.Close)
	return st
}

func (st *stubUpstream) callCount() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.calls)
}

var stubErrors = map[string]struct {
	status int
	body   string
}{
	"/s401": {401, `{"error": {"message": "Authentication Fails, Your api key: ****0001 is invalid", "type": "authentication_error", "param": null, "code": "invalid_request_error"}}`},
	"/s402": {402, `{"error": {"message": "Insufficient Balance", "type": "unknown_error", "param": null, "code": "invalid_request_error"}}`},
	"/s429": {429, `{"error": {"message": "Rate limit reached for requests", "type": "rate_limit_error", "param": null, "code": "rate_limit_exceeded"}}`},
	"/s500": {500, `{"error": {"message": "Internal server error", "type": "server_error", "param": null, "code": "internal_error"}}`},
}

func (st *stubUpstream) serve(w http.ResponseWriter, r *http.Request) {
	st.mu.Lock()
	st.calls = append(st.calls, r.Method+" "+r.URL.Path)
	st.mu.Unlock()
	w.Header().Set("X-Request-Id", "fakeup-"+randHex(6))
	for prefix, e := range stubErrors {
		if strings.HasPrefix(r.URL.Path, prefix+"/") || r.URL.Path == prefix {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(e.status)
			_, _ = io.WriteString(w, e.body)
			return
		}
	}
	var req map[string]any
	_ = json.NewDecoder(r.Body).Decode(&req)
	model, _ := req["model"].(string)
	stream, _ := req["stream"].(bool)
	switch {
	case strings.HasPrefix(r.URL.Path, "/chatonly"):
		if !strings.HasSuffix(r.URL.Path, "/chat/completions") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(404)
			_, _ = io.WriteString(w, `{"error":{"message":"Not Found","type":"invalid_request_error","param":null,"code":"not_found"}}`)
			return
		}
		stubChat(w, req, model, stream, "chatcmpl-stub", []string{"Hello", " from chat-only stub"})
	case r.URL.Path == "/v1/chat/completions":
		stubChat(w, req, model, stream, "chatcmpl-fake", []string{"Hello", " from", " fake", " upstream", " (model=" + model + ")"})
	case r.URL.Path == "/v1/responses":
		stubResponses(w, model, stream)
	case r.URL.Path == "/v1/models":
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"fake-upstream-model","object":"model"},{"id":"gpt-4o","object":"model"},{"id":"gpt-4o-mini","object":"model"},{"id":"deepseek-chat","object":"model"}]}`)
	default:
		http.NotFound(w, r)
	}
}

func stubChat(w http.ResponseWriter, req map[string]any, model string, stream bool, idPrefix string, parts []string) {
	id := idPrefix + randHex(5)
	if !stream {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "object": "chat.completion", "created": 1795780594, "model": model,
			"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": strings.Join(parts, "") + stubSuffix(idPrefix, model)}, "finish_reason": "stop"}},
			"usage":   map[string]any{"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	chunk := func(choices []any, usage any) {
		m := map[string]any{"id": id, "object": "chat.completion.chunk", "created": 1795780594, "model": model, "choices": choices}
		if usage != nil {
			m["usage"] = usage
		}
		b, _ := json.Marshal(m)
		fmt.Fprintf(w, "data: %s\n\n", b)
	}
	chunk([]any{map[string]any{"index": 0, "delta": map[string]any{"role": "assistant", "content": ""}, "finish_reason": nil}}, nil)
	for _, p := range parts {
		chunk([]any{map[string]any{"index": 0, "delta": map[string]any{"content": p}, "finish_reason": nil}}, nil)
	}
	chunk([]any{map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": "stop"}}, nil)
	if so, _ := req["stream_options"].(map[string]any); so != nil && so["include_usage"] == true {
		chunk([]any{}, map[string]any{"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11})
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
}

func stubSuffix(idPrefix, model string) string {
	if idPrefix == "chatcmpl-stub" {
		return " (model=" + model + ")"
	}
	return ""
}

func stubResponses(w http.ResponseWriter, model string, stream bool) {
	id := "resp_fake" + randHex(5)
	text := []string{"Hello", " from", " fake", " upstream", " responses API", " (model=" + model + ")"}
	if !stream {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "object": "response", "model": model, "status": "completed",
			"output": []any{map[string]any{"type": "message", "role": "assistant", "content": []any{map[string]any{"type": "output_text", "text": strings.Join(text, "")}}}}})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	ev := func(m map[string]any) {
		b, _ := json.Marshal(m)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", m["type"], b)
	}
	ev(map[string]any{"type": "response.created", "response": map[string]any{"id": id}})
	for _, t := range text {
		ev(map[string]any{"type": "response.output_text.delta", "delta": t})
	}
	ev(map[string]any{"type": "response.completed", "response": map[string]any{"id": id, "usage": map[string]any{"input_tokens": 11, "output_tokens": 9}}})
}
