package hostsim

import (
	"context"
	"io"
	"strings"
	"time"
)

// startProbe runs the 129/179 Responses capability probe in the background,
// as the hosts do after creating a plain openai apikey account, and records
// extra.openai_responses_supported. Caller holds s.mu.
func (s *Server) startProbe(a *account) {
	if s.prof.fork || a.platform != "openai" || a.typ != "apikey" || a.baseURL == "" {
		return
	}
	id, url, key := a.id, endpointURL(a.baseURL, "responses"), a.apiKey
	model := "gpt-5.4"
	if s.prof.line179 {
		for _, t := range a.mapping() {
			model = t
			break
		}
	}
	s.probes.Add(1)
	go func() {
		defer s.probes.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		body := map[string]any{"model": model, "input": "hi", "stream": false}
		if s.prof.line179 {
			body["tool_choice"] = "required"
			body["max_output_tokens"] = 512
			body["tools"] = []any{map[string]any{"type": "function", "name": "probe_ping", "description": "Capability probe. Call to acknowledge.",
				"parameters": map[string]any{"type": "object", "properties": map[string]any{"ok": map[string]any{"type": "boolean"}}, "required": []any{"ok"}}}}
		}
		resp, err := s.post(ctx, url, key, body, "")
		if err != nil {
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var supported bool
		switch {
		case resp.StatusCode == 404 || resp.StatusCode == 405:
			supported = false
		case resp.StatusCode/100 == 2:
			// 179 only trusts an upstream that really called the function.
			supported = !s.prof.line179 || strings.Contains(string(b), "function_call")
		default:
			supported = true
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if a := s.accounts[id]; a != nil {
			if a.extra == nil {
				a.extra = map[string]any{}
			}
			a.extra["openai_responses_supported"] = supported
			s.bumpAccounts()
		}
	}()
}

// WaitProbes blocks until the background Responses probes have finished
// (tests that read accounts right after create use it).
func (s *Server) WaitProbes() { s.probes.Wait() }
