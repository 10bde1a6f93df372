package hostsim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
)

var versionSeg = regexp.MustCompile(`^v\d+[a-z0-9]*$`)

// endpointURL applies the 129/179 URL rule (§8): trim "/", keep a base that
// already ends with the endpoint, append only the endpoint after a version
// segment, else "/v1/" + endpoint.
func endpointURL(base, endpoint string) string {
	base = strings.TrimRight(base, "/")
	if strings.HasSuffix(base, "/"+endpoint) {
		return base
	}
	last := base[strings.LastIndex(base, "/")+1:]
	if versionSeg.MatchString(last) {
		return base + "/" + endpoint
	}
	return base + "/v1/" + endpoint
}

// forkGatewayURL is the fork's protocol_gateway rule: only "/v1" counts as a
// version segment.
func forkGatewayURL(base string) string {
	base = strings.TrimRight(base, "/")
	switch {
	case strings.HasSuffix(base, "/chat/completions"):
		return base
	case strings.HasSuffix(base, "/v1"):
		return base + "/chat/completions"
	}
	return base + "/v1/chat/completions"
}

// route describes how one account is called.
type upstreamRoute struct {
	url       string
	responses bool // Responses API, converted back to chat completions
}

// upstreamFor picks the upstream endpoint of an account per profile.
// Caller holds s.mu.
func (s *Server) upstreamFor(a *account) upstreamRoute {
	if s.prof.fork {
		switch {
		case a.platform == "protocol_gateway":
			return upstreamRoute{url: forkGatewayURL(a.baseURL)}
		case a.platform == "deepseek":
			return upstreamRoute{url: strings.TrimRight(a.baseURL, "/") + "/chat/completions"}
		}
		return upstreamRoute{url: strings.TrimRight(a.baseURL, "/") + "/v1/responses", responses: true}
	}
	if a.platform == "openai" {
		mode, _ := a.extra["openai_responses_mode"].(string)
		supported, _ := a.extra["openai_responses_supported"].(bool)
		// Until the probe has answered, the simulator stays on chat
		// completions (real hosts try /v1/responses in that window), so a
		// smoke call right after create does not depend on probe timing.
		if mode == "force_responses" || (mode != "force_chat_completions" && supported) {
			return upstreamRoute{url: endpointURL(a.baseURL, "responses"), responses: true}
		}
	}
	return upstreamRoute{url: endpointURL(a.baseURL, "chat/completions")}
}

// post sends a JSON body with the account's key.
func (s *Server) post(ctx context.Context, url, apiKey string, body any, ua string) (*http.Response, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if ua != "" {
		req.Header.Set("User-Agent", ua)
	}
	return s.opts.UpstreamClient.Do(req)
}

// sseData calls fn with the payload of every "data:" line of an event stream.
func sseData(r io.Reader, fn func(data string) bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data:") {
			continue
		}
		if !fn(strings.TrimSpace(strings.TrimPrefix(line, "data:"))) {
			return
		}
	}
}

// upstreamErrMessage extracts error.message from an upstream error body.
func upstreamErrMessage(body []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
		return e.Error.Message
	}
	return strings.TrimSpace(string(body))
}

// toResponsesRequest converts a chat request to the Responses request the
// hosts send (always streamed).
func toResponsesRequest(chat map[string]any, model string) map[string]any {
	var input []any
	if msgs, ok := chat["messages"].([]any); ok {
		for _, m := range msgs {
			if mm, ok := m.(map[string]any); ok {
				input = append(input, map[string]any{"role": mm["role"], "content": mm["content"]})
			}
		}
	}
	return map[string]any{"model": model, "input": input, "stream": true, "include": []any{"reasoning.encrypted_content"}, "store": false}
}

// responsesResult is a Responses event stream folded into its parts.
type responsesResult struct {
	id                  string
	deltas              []string
	promptTok, complTok int
}

func readResponses(r io.Reader, onDelta func(string)) responsesResult {
	var res responsesResult
	sseData(r, func(data string) bool {
		var ev struct {
			Type     string `json:"type"`
			Delta    string `json:"delta"`
			Response struct {
				ID    string `json:"id"`
				Usage struct {
					InputTokens  int `json:"input_tokens"`
					OutputTokens int `json:"output_tokens"`
				} `json:"usage"`
			} `json:"response"`
		}
		if json.Unmarshal([]byte(data), &ev) != nil {
			return true
		}
		switch ev.Type {
		case "response.created":
			res.id = ev.Response.ID
		case "response.output_text.delta":
			res.deltas = append(res.deltas, ev.Delta)
			if onDelta != nil {
				onDelta(ev.Delta)
			}
		case "response.completed":
			if ev.Response.ID != "" {
				res.id = ev.Response.ID
			}
			res.promptTok, res.complTok = ev.Response.Usage.InputTokens, ev.Response.Usage.OutputTokens
		}
		return true
	})
	return res
}
