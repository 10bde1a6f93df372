package host

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// gatewayRequest is a /v1/* call on the public URL with an end-user key.
func gatewayRequest(method, path, key string, body any) request {
	return request{target: "gateway", method: method, path: path, body: body, auth: authGateway, token: key}
}

// GatewayModels lists the model ids the key's group serves (GET /v1/models). A non-empty
// list does not prove an account exists: with no account 129/179 answer a built-in GPT
// catalog. Compare the ids with the mapping.
func (c *Client) GatewayModels(ctx context.Context, key string) ([]string, error) {
	r := gatewayRequest(http.MethodGet, "/v1/models", key, nil)
	resp, err := c.send(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("gateway models: %w", err)
	}
	secrets := c.secretsFor(ctx, &r)
	if resp.status < 200 || resp.status > 299 {
		return nil, fmt.Errorf("gateway models: %w", decodeError(resp, r.method, r.path, secrets))
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(resp.body, &list); err != nil {
		return nil, fmt.Errorf("gateway models: %w", &Error{Status: resp.status, Code: CodeBadResponse,
			Method: r.method, Path: r.path, Message: "cannot decode model list: " + snippet(resp.body, secrets), Err: err})
	}
	ids := make([]string, 0, len(list.Data))
	for _, m := range list.Data {
		ids = append(ids, m.ID)
	}
	return ids, nil
}

// ChatRequest is a minimal chat completion for smoke tests.
type ChatRequest struct {
	Model     string
	Prompt    string // default "hi"
	MaxTokens int    // 0 = not sent
	Stream    bool
}

// ChatResult is what a smoke chat returned. Model is whatever the host wrote (the alias on
// the Responses path, the upstream id on the chat passthrough path): do not compare it with
// the request.
type ChatResult struct {
	Status      int
	ContentType string
	ID          string
	Model       string
	Content     string // assistant text; joined deltas when streaming
}

type chatWire struct {
	Model     string        `json:"model"`
	Messages  []chatMessage `json:"messages"`
	MaxTokens int           `json:"max_tokens,omitempty"`
	Stream    bool          `json:"stream,omitempty"`
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// chatChunk covers both a chat.completion and a chat.completion.chunk, plus an in-band error.
type chatChunk struct {
	ID      string `json:"id"`
	Model   string `json:"model"`
	Choices []struct {
		Message *struct {
			Content string `json:"content"`
		} `json:"message"`
		Delta *struct {
			Content string `json:"content"`
		} `json:"delta"`
	} `json:"choices"`
	Error json.RawMessage `json:"error"`
}

// GatewayChat sends POST /v1/chat/completions with key. The body is parsed as JSON whatever
// the Content-Type says (129 and the fork label non-stream answers text/event-stream), and
// as an event stream otherwise. A non-2xx answer, or an error carried inside a 200 body, is
// an *Error whose Code is error.type or the middleware code (api_error, model_not_found,
// GROUP_EXHAUSTED, INVALID_API_KEY, ...).
func (c *Client) GatewayChat(ctx context.Context, key string, req ChatRequest) (*ChatResult, error) {
	prompt := req.Prompt
	if prompt == "" {
		prompt = "hi"
	}
	body := chatWire{Model: req.Model, Messages: []chatMessage{{Role: "user", Content: prompt}},
		MaxTokens: req.MaxTokens, Stream: req.Stream}
	r := gatewayRequest(http.MethodPost, "/v1/chat/completions", key, body)
	if req.Stream {
		r.accept = "text/event-stream"
	}
	resp, err := c.send(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("gateway chat: %w", err)
	}
	secrets := c.secretsFor(ctx, &r)
	if resp.status < 200 || resp.status > 299 {
		return nil, fmt.Errorf("gateway chat: %w", decodeError(resp, r.method, r.path, secrets))
	}
	res := &ChatResult{Status: resp.status, ContentType: resp.header.Get("Content-Type")}
	trimmed := bytes.TrimSpace(resp.body)
	var chunks []string
	if len(trimmed) > 0 && trimmed[0] == '{' {
		chunks = []string{string(trimmed)}
	} else {
		chunks = sseData(resp.body)
	}
	var text strings.Builder
	parsed := 0
	for _, data := range chunks {
		if data == "[DONE]" {
			continue
		}
		var ch chatChunk
		if json.Unmarshal([]byte(data), &ch) != nil {
			continue
		}
		if len(ch.Error) > 0 && string(ch.Error) != "null" {
			e := decodeError(&response{status: resp.status, header: resp.header, body: []byte(data)}, r.method, r.path, secrets)
			return nil, fmt.Errorf("gateway chat: %w", e)
		}
		parsed++
		if res.ID == "" {
			res.ID = ch.ID
		}
		if res.Model == "" {
			res.Model = ch.Model
		}
		for _, choice := range ch.Choices {
			if choice.Message != nil {
				text.WriteString(choice.Message.Content)
			}
			if choice.Delta != nil {
				text.WriteString(choice.Delta.Content)
			}
		}
	}
	if parsed == 0 {
		return nil, fmt.Errorf("gateway chat: %w", &Error{Status: resp.status, Code: CodeBadResponse,
			Method: r.method, Path: r.path, Message: "no chat completion in answer: " + snippet(resp.body, secrets)})
	}
	res.Content = text.String()
	return res, nil
}
