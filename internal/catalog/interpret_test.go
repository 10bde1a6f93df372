package catalog

import (
	"strings"
	"testing"
)

func TestInterpret(t *testing.T) {
	c := Default()
	cases := []struct {
		in                    Input
		base, anthropic, note string
		provider, by, refusal string
		scope                 *Scope
	}{
		{in: Input{BaseURL: "https://api.minimaxi.com/anthropic", APIKey: "sk-cp-abcdef0123456789"},
			base: "https://api.minimaxi.com/v1", anthropic: "https://api.minimaxi.com/anthropic", note: "mapped the pasted Anthropic",
			provider: "minimax", by: ByHost, scope: &Scope{Region: "cn", Plan: "token"}},
		{in: Input{BaseURL: "https://dashscope.aliyuncs.com/compatible-mode/v1", APIKey: "sk-sp-0123456789abcdef0123456789abcdef"},
			base: "https://dashscope.aliyuncs.com/compatible-mode/v1", anthropic: "https://dashscope.aliyuncs.com/apps/anthropic",
			note: "plan key but this base is pay-as-you-go", provider: "qwen", by: ByHost, scope: &Scope{Region: "cn-beijing"}},
		{in: Input{BaseURL: "https://coding.dashscope.aliyuncs.com/v1", APIKey: "sk-sp-0123456789abcdef0123456789abcdef"},
			base: "https://coding.dashscope.aliyuncs.com/v1", anthropic: "https://coding.dashscope.aliyuncs.com/apps/anthropic",
			provider: "qwen", by: ByHost, scope: &Scope{Region: "cn-beijing", Plan: "coding"}},
		{in: Input{BaseURL: "http://127.0.0.1:9/glm/api/paas/v4", APIKey: "k", Hint: "zhipu"},
			base: "http://127.0.0.1:9/glm/api/paas/v4", provider: "glm", by: ByHint},
		{in: Input{APIKey: "sk-ws-0123456789abcdef0123456789abcdef"}, provider: "qwen", by: ByKeyHint,
			refusal: "base URL is empty; the key's shape points at Alibaba Qwen (DashScope / Model Studio) — paste the base URL of the account it belongs to, e.g. https://coding.dashscope.aliyuncs.com/v1, https://coding-intl.dashscope.aliyuncs.com/v1"},
		{in: Input{BaseURL: "https://qianfan.baidubce.com/anthropic", APIKey: "bce-v3/ALTAK-a/b"}, provider: "qianfan", by: ByHost,
			refusal: "does not say which base of Baidu Qianfan is meant"},
	}
	for _, tc := range cases {
		it := c.Interpret(tc.in)
		if it.Detection.ProviderID != tc.provider || it.Detection.By != tc.by {
			t.Errorf("%+v: detection %+v", tc.in, it.Detection)
		}
		if tc.refusal != "" {
			if !strings.Contains(it.Refusal, tc.refusal) || it.Err == nil {
				t.Errorf("%+v: refusal %q (%v), want %q", tc.in, it.Refusal, it.Err, tc.refusal)
			}
			continue
		}
		if it.Refusal != "" || it.URL.BaseURL != tc.base || it.URL.AnthropicBase != tc.anthropic {
			t.Errorf("%+v: %q, bases %q / %q", tc.in, it.Refusal, it.URL.BaseURL, it.URL.AnthropicBase)
		}
		if (tc.scope == nil) != (it.Scope == nil) || (tc.scope != nil && *tc.scope != *it.Scope) {
			t.Errorf("%+v: scope %+v, want %+v", tc.in, it.Scope, tc.scope)
		}
		if joined := strings.Join(it.Notes, "; "); (tc.note == "") != (joined == "") || !strings.Contains(joined, tc.note) {
			t.Errorf("%+v: notes %q, want %q", tc.in, it.Notes, tc.note)
		}
	}
}
