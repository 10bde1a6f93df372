package host

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// TestEvent is one event of the account-test stream.
type TestEvent struct {
	Type    string // test_start, status, content, test_complete, error, blacklist_advice (fork)
	Model   string // test_start: the model sent upstream (after mapping)
	Text    string // content/status text (redacted)
	Error   string // error text (redacted)
	Success bool   // test_complete
	// Kind is data.kind on fork events ("runtime_meta" for the fork's diagnostic lines).
	Kind string
}

// TestResult is the outcome of POST /api/v1/admin/accounts/:id/test.
type TestResult struct {
	Success     bool   // a test_complete event with success:true arrived before EOF
	Model       string // model named by test_start
	Error       string // first error event text, or why the stream was not a success (redacted)
	Events      []TestEvent
	ContentType string
}

// BaseURLRefused reports whether the test failed because the host refused the account's
// base URL before calling it ("Invalid base URL: <why>"): 0.1.129 and 0.1.179 check a base
// URL against their outbound URL policy only when they test or forward, not when the
// account is saved.
func (r *TestResult) BaseURLRefused() bool {
	return !r.Success && strings.HasPrefix(r.Error, "Invalid base URL:")
}

// Warmup reports whether the failed test is one of the answers a fresh account gives
// while the host is still warming up (HTTP 403 from the host's own path): the test is to
// be repeated inside the confirmation window, not judged.
func (r *TestResult) Warmup() bool {
	return !r.Success && (strings.Contains(r.Error, "returned 403") || strings.Contains(r.Error, " 403:") ||
		strings.Contains(strings.ToLower(r.Error), "warming up"))
}

// Output joins the content texts that are model output (fork runtime_meta lines excluded).
func (r *TestResult) Output() string {
	var b strings.Builder
	for _, e := range r.Events {
		if e.Type == "content" && e.Kind == "" {
			b.WriteString(e.Text)
		}
	}
	return b.String()
}

type testEventWire struct {
	Type    string `json:"type"`
	Model   string `json:"model"`
	Text    string `json:"text"`
	Error   string `json:"error"`
	Success bool   `json:"success"`
	Data    struct {
		Kind string `json:"kind"`
	} `json:"data"`
}

// TestAccount runs the host's account test with modelID (always pass a public id; the
// defaults are OpenAI/Claude ids). The host answers 200 even when the test fails, so a
// failed test is (result with Success false, nil); a non-200 answer (fork 400
// TEST_MODEL_NOT_ALLOWED, 404 ACCOUNT_NOT_FOUND) is returned as *Error. The test is a real,
// billed upstream call and an upstream 401/402 puts the account in status "error".
func (c *Client) TestAccount(ctx context.Context, id int64, modelID string) (*TestResult, error) {
	r := adminRequest(http.MethodPost, idPath("/api/v1/admin/accounts/%d/test", id), map[string]string{"model_id": modelID})
	r.accept = "text/event-stream"
	resp, err := c.send(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("test account: %w", err)
	}
	secrets := append(c.secretsFor(ctx, &r), bodySecrets(resp.body)...)
	if resp.status != http.StatusOK {
		return nil, fmt.Errorf("test account: %w", decodeError(resp, r.method, r.path, secrets))
	}
	res := &TestResult{ContentType: resp.header.Get("Content-Type")}
	for _, data := range sseData(resp.body) {
		var w testEventWire
		if json.Unmarshal([]byte(data), &w) != nil || w.Type == "" {
			continue
		}
		ev := TestEvent{Type: w.Type, Model: w.Model, Success: w.Success, Kind: w.Data.Kind,
			Text: redactText(w.Text, secrets...), Error: redactText(w.Error, secrets...)}
		res.Events = append(res.Events, ev)
		switch ev.Type {
		case "test_start":
			if res.Model == "" {
				res.Model = ev.Model
			}
		case "test_complete":
			if ev.Success {
				res.Success = true
			} else if res.Error == "" {
				res.Error = "test_complete without success"
			}
		case "error":
			if res.Error == "" {
				res.Error = ev.Error
			}
		}
	}
	if !res.Success && res.Error == "" {
		if len(res.Events) == 0 {
			// Not an event stream at all: a 200 JSON error envelope or something unexpected.
			if e := decodeError(resp, r.method, r.path, secrets); e.Code != "" {
				return nil, fmt.Errorf("test account: %w", e)
			}
			res.Error = "no test events in answer: " + snippet(resp.body, secrets)
		} else {
			res.Error = "stream ended without test_complete"
		}
	}
	return res, nil
}

// sseData returns the payload of every "data:" line of an event stream, in order. Multi-line
// data fields are joined with "\n" as the SSE spec says.
func sseData(body []byte) []string {
	var out []string
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.Join(cur, "\n"))
			cur = nil
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64*1024), maxBody)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case line == "":
			flush()
		case strings.HasPrefix(line, "data:"):
			cur = append(cur, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	flush()
	return out
}
