package upstreamsim

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/cn-relay-manager/cn-relay-manager/internal/catalog"
)

const testKey = "sk-simtest0123456789abcdef"

func start(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	s.AddKey(testKey, ModeOK)
	return s
}

func call(t *testing.T, method, url, key, body string, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestBaseURL(t *testing.T) {
	s := start(t, Options{})
	for id, suffix := range map[string]string{
		"deepseek": "/deepseek", "kimi": "/kimi/v1", "glm": "/glm/api/paas/v4",
		"qwen": "/qwen/compatible-mode/v1", "ark": "/ark/api/v3", catalog.OpenAICompatible: "/relay/v1",
	} {
		if got := s.BaseURL(id); got != s.URL()+suffix {
			t.Errorf("BaseURL(%s) = %q, want %q", id, got, s.URL()+suffix)
		}
	}
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Errorf("URL %q", s.URL())
	}
	if got := s.AnthropicBaseURL("glm"); got != s.URL()+"/glm/api/anthropic" {
		t.Errorf("AnthropicBaseURL(glm) = %q", got)
	}
}

func TestModelsServeCatalogIDs(t *testing.T) {
	s := start(t, Options{})
	for _, p := range catalog.Default().Providers() {
		st, _, body := call(t, "GET", s.BaseURL(p.ID)+"/models", testKey, "", nil)
		if !p.ListsModels {
			if st != 404 {
				t.Errorf("%s: /models status %d, provider lists none", p.ID, st)
			}
			continue
		}
		var list struct {
			Object string                `json:"object"`
			Data   []struct{ ID string } `json:"data"`
		}
		if st != 200 || json.Unmarshal([]byte(body), &list) != nil || list.Object != "list" || len(list.Data) == 0 {
			t.Errorf("%s: /models %d %s", p.ID, st, body)
			continue
		}
		for _, m := range p.Models {
			found := false
			for _, d := range list.Data {
				found = found || d.ID == m.ID
			}
			if found == m.Retired {
				t.Errorf("%s: model %s listed=%v retired=%v", p.ID, m.ID, found, m.Retired)
			}
		}
	}
	if s.Calls() == 0 {
		t.Error("Calls not counted")
	}
}

func TestUnknownKeyGetsProviderBody(t *testing.T) {
	s := start(t, Options{})
	const unknown = "sk-unknownkey0123456789abcd"
	st, _, body := call(t, "POST", s.BaseURL("deepseek")+"/chat/completions", unknown, `{"model":"deepseek-flash","messages":[{"role":"user","content":"hi"}]}`, nil)
	if st != 401 || !strings.Contains(body, "Authentication Fails, Your api key: ****abcd is invalid") {
		t.Errorf("deepseek 401: %d %s", st, body)
	}
	if strings.Contains(body, unknown) {
		t.Error("401 body echoes the whole key")
	}
	st, hdr, body := call(t, "GET", s.BaseURL("siliconflow")+"/models", "", "", nil)
	if st != 401 || !strings.Contains(body, `"code":30014`) || hdr.Get("Www-Authenticate") == "" {
		t.Errorf("siliconflow 401: %d %s", st, body)
	}
	st, _, body = call(t, "GET", s.BaseURL("minimax")+"/models", unknown, "", nil)
	if st != 401 || !strings.Contains(body, "(1004)") {
		t.Errorf("minimax 401: %d %s", st, body)
	}
}

func TestChatPlainStreamTools(t *testing.T) {
	s := start(t, Options{})
	st, _, body := call(t, "POST", s.BaseURL("kimi")+"/chat/completions", testKey,
		`{"model":"kimi-k2.6","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":1}`, nil)
	if st != 200 || !strings.Contains(body, "Hello from kimi (model=kimi-k2.6)") {
		t.Errorf("chat: %d %s", st, body)
	}
	st, _, body = call(t, "POST", s.BaseURL("deepseek")+"/chat/completions", testKey,
		`{"model":"deepseek-flash","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`, nil)
	if st != 200 || !strings.HasPrefix(body, ": keep-alive") || !strings.HasSuffix(body, "data: [DONE]\n\n") || !strings.Contains(body, `"usage"`) {
		t.Errorf("stream: %d %q", st, body)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	events := 0
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: {") {
			events++
		}
	}
	if events < 3 {
		t.Errorf("stream has %d data events", events)
	}
	st, _, body = call(t, "POST", s.BaseURL("glm")+"/chat/completions", testKey,
		`{"model":"glm-5.3","messages":[{"role":"user","content":"time?"}],"tools":[{"type":"function","function":{"name":"get_time","parameters":{"type":"object"}}}]}`, nil)
	if st != 200 || !strings.Contains(body, `"tool_calls"`) || !strings.Contains(body, `"get_time"`) {
		t.Errorf("tools: %d %s", st, body)
	}
}

func TestModelNotFoundBodies(t *testing.T) {
	s := start(t, Options{})
	for id, want := range map[string]string{
		"deepseek": "Model Not Exist", "kimi": "Not found the model", "glm": `"1211"`,
		"qwen": "model_not_found", "siliconflow": "20012", "minimax": "unknown model",
		"ark": "InvalidEndpointOrModel.NotFound", "openrouter": "not a valid model ID",
	} {
		st, _, body := call(t, "POST", s.BaseURL(id)+"/chat/completions", testKey, `{"model":"no-such-model","messages":[{"role":"user","content":"hi"}]}`, nil)
		if st < 400 || !strings.Contains(body, want) {
			t.Errorf("%s: %d %s", id, st, body)
		}
	}
	// MiniMax is case-sensitive.
	st, _, _ := call(t, "POST", s.BaseURL("minimax")+"/chat/completions", testKey, `{"model":"minimax-m3","messages":[{"role":"user","content":"hi"}]}`, nil)
	if st != 400 {
		t.Errorf("minimax lower-case id accepted: %d", st)
	}
}

func TestModes(t *testing.T) {
	s := start(t, Options{})
	chat := `{"model":"MiniMax-M3","messages":[{"role":"user","content":"hi"}]}`
	s.SetKeyMode(testKey, ModeErrorIn200)
	st, _, body := call(t, "POST", s.BaseURL("minimax")+"/chat/completions", testKey, chat, nil)
	if st != 200 || !strings.Contains(body, `"status_code":1008`) {
		t.Errorf("error_in_200: %d %s", st, body)
	}
	s.SetKeyMode(testKey, ModeRateLimited)
	st, hdr, _ := call(t, "POST", s.BaseURL("minimax")+"/chat/completions", testKey, chat, nil)
	if st != 429 || hdr.Get("Retry-After") != "7" {
		t.Errorf("rate_limited: %d %v", st, hdr)
	}
	s.SetKeyMode(testKey, ModeNoQuota)
	st, _, body = call(t, "POST", s.BaseURL("deepseek")+"/chat/completions", testKey, `{"model":"deepseek-flash","messages":[{"role":"user","content":"hi"}]}`, nil)
	if st != 402 || !strings.Contains(body, "Insufficient Balance") {
		t.Errorf("no_quota: %d %s", st, body)
	}
	st, _, _ = call(t, "GET", s.BaseURL("deepseek")+"/models", testKey, "", nil)
	if st != 200 {
		t.Errorf("no_quota key must still list models: %d", st)
	}
	s.SetKeyMode(testKey, ModeBanned)
	st, _, body = call(t, "GET", s.BaseURL("kimi")+"/models", testKey, "", nil)
	if st != 403 || !strings.Contains(body, "account_deactivated") {
		t.Errorf("banned: %d %s", st, body)
	}
	s.SetKeyMode(testKey, ModeChatOnly)
	st, _, _ = call(t, "POST", s.BaseURL("deepseek")+"/responses", testKey, `{"model":"deepseek-flash","input":"hi"}`, nil)
	if st != 404 {
		t.Errorf("chat_only responses: %d", st)
	}
	st, _, _ = call(t, "POST", s.BaseURL("deepseek")+"/chat/completions", testKey, `{"model":"deepseek-flash","messages":[{"role":"user","content":"hi"}]}`, nil)
	if st != 200 {
		t.Errorf("chat_only chat: %d", st)
	}
}

func TestResponsesAndAnthropic(t *testing.T) {
	s := start(t, Options{})
	st, _, body := call(t, "POST", s.BaseURL("qwen")+"/responses", testKey, `{"model":"qwen3.8-max","input":"hi"}`, nil)
	if st != 200 || !strings.Contains(body, `"object":"response"`) {
		t.Errorf("qwen responses: %d %s", st, body)
	}
	if st, _, _ = call(t, "POST", s.BaseURL("glm")+"/responses", testKey, `{"model":"glm-5.3","input":"hi"}`, nil); st != 404 {
		t.Errorf("glm has no /responses, got %d", st)
	}
	if st, _, _ = call(t, "POST", s.BaseURL("stepfun")+"/responses", testKey, `{"model":"step-5-preview","input":"hi"}`, nil); st < 400 {
		t.Errorf("stepfun /responses only for step-3.7-flash, got %d", st)
	}
	msg := `{"model":"claude-sonnet-4","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}`
	st, _, body = call(t, "POST", s.AnthropicBaseURL("deepseek")+"/v1/messages", "", msg, map[string]string{"x-api-key": testKey})
	if st != 200 || !strings.Contains(body, `"type":"message"`) {
		t.Errorf("anthropic x-api-key: %d %s", st, body)
	}
	st, _, body = call(t, "POST", s.AnthropicBaseURL("stepfun")+"/v1/messages", testKey, msg, nil)
	if st != 200 {
		t.Errorf("stepfun anthropic at host root: %d %s", st, body)
	}
	st, _, body = call(t, "POST", s.AnthropicBaseURL("kimi")+"/v1/messages", "", msg, map[string]string{"x-api-key": "sk-wrong-key-123456"})
	if st != 401 || !strings.Contains(body, `"authentication_error"`) {
		t.Errorf("anthropic 401: %d %s", st, body)
	}
	if st, _, _ = call(t, "POST", s.URL()+"/qianfan/anthropic/v1/messages", testKey, msg, nil); st != 404 {
		t.Errorf("qianfan has no anthropic endpoint, got %d", st)
	}
}

func TestServeHTTPWithoutStartAndConcurrency(t *testing.T) {
	s := New(Options{})
	ts := httptest.NewServer(s)
	defer ts.Close()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := "sk-concurrent-key-" + string(rune('a'+i))
			s.AddKey(key, ModeOK)
			req, _ := http.NewRequest("GET", ts.URL+"/kimi/v1/models", nil)
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("status %d", resp.StatusCode)
			}
			s.SetKeyMode(key, ModeNoQuota)
		}()
	}
	wg.Wait()
	if s.Calls() != 20 {
		t.Errorf("Calls = %d", s.Calls())
	}
	s.Close() // no-op without Start
}

func TestBalanceEndpoints(t *testing.T) {
	s := start(t, Options{})
	for id, path := range map[string]string{
		"deepseek":    "/deepseek/user/balance",
		"kimi":        "/kimi/v1/users/me/balance",
		"siliconflow": "/siliconflow/v1/user/info",
		"stepfun":     "/stepfun/v1/accounts",
	} {
		s.SetBalance(testKey, 12.5)
		st, _, body := call(t, "GET", s.URL()+path, testKey, "", nil)
		if st != 200 || !strings.Contains(body, "12.5") {
			t.Errorf("%s: %d %s", id, st, body)
		}
		if st, _, _ := call(t, "POST", s.URL()+path, testKey, "{}", nil); st != 404 {
			t.Errorf("%s: POST answered %d", id, st)
		}
		if st, _, _ := call(t, "GET", s.URL()+path, "sk-unknown-key-000000000000", "", nil); st != 401 {
			t.Errorf("%s: unknown key answered %d", id, st)
		}
	}
	// The documented field names, as the provider spells them.
	_, _, body := call(t, "GET", s.URL()+"/deepseek/user/balance", testKey, "", nil)
	for _, f := range []string{`"is_available":true`, `"total_balance":"12.50"`, `"granted_balance"`, `"topped_up_balance"`, `"currency":"CNY"`} {
		if !strings.Contains(body, f) {
			t.Errorf("deepseek balance lacks %s: %s", f, body)
		}
	}
	_, _, body = call(t, "GET", s.URL()+"/kimi/v1/users/me/balance", testKey, "", nil)
	for _, f := range []string{`"available_balance":12.5`, `"voucher_balance":0`, `"cash_balance":12.5`, `"code":0`} {
		if !strings.Contains(body, f) {
			t.Errorf("kimi balance lacks %s: %s", f, body)
		}
	}
	// Providers without a balance endpoint answer 404.
	if st, _, _ := call(t, "GET", s.URL()+"/glm/api/paas/v4/user/balance", testKey, "", nil); st != 404 {
		t.Errorf("glm balance answered %d", st)
	}

	// No money left: inference answers the provider's no-balance error; topped up, it works.
	s.SetBalance(testKey, 0)
	chat := `{"model":"deepseek-v4-pro","messages":[{"role":"user","content":"hi"}],"max_tokens":1}`
	if st, _, body := call(t, "POST", s.BaseURL("deepseek")+"/chat/completions", testKey, chat, nil); st != 402 || !strings.Contains(body, "Insufficient Balance") {
		t.Errorf("zero balance chat: %d %s", st, body)
	}
	_, _, body = call(t, "GET", s.URL()+"/deepseek/user/balance", testKey, "", nil)
	if !strings.Contains(body, `"is_available":false`) {
		t.Errorf("zero balance: %s", body)
	}
	s.SetBalance(testKey, 1)
	if st, _, body := call(t, "POST", s.BaseURL("deepseek")+"/chat/completions", testKey, chat, nil); st != 200 {
		t.Errorf("topped-up chat: %d %s", st, body)
	}
}
