package catalog

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeURL(t *testing.T) {
	c := Default()
	cases := []struct {
		in, want, stripped, provider, protocol string
	}{
		{"https://api.deepseek.com", "https://api.deepseek.com", "", "deepseek", "openai"},
		{"  https://api.deepseek.com/  ", "https://api.deepseek.com", "", "deepseek", "openai"},
		{"https://api.deepseek.com/v1", "https://api.deepseek.com/v1", "", "deepseek", "openai"},
		{"https://api.deepseek.com/chat/completions", "https://api.deepseek.com", "/chat/completions", "deepseek", "openai"},
		{"https://api.deepseek.com/v1/chat/completions", "https://api.deepseek.com/v1", "/chat/completions", "deepseek", "openai"},
		{"https://api.deepseek.com/anthropic/v1/messages", "https://api.deepseek.com/anthropic", "/v1/messages", "deepseek", "anthropic"},
		{"https://api.deepseek.com/anthropic/v1", "https://api.deepseek.com/anthropic", "/v1", "deepseek", "anthropic"},
		{"api.deepseek.com", "https://api.deepseek.com", "", "deepseek", "openai"},
		{`"https://API.Moonshot.cn"`, "https://api.moonshot.cn/v1", "", "kimi", "openai"},
		{"https://api.moonshot.ai/v1/", "https://api.moonshot.ai/v1", "", "kimi", "openai"},
		{"https://api.moonshot.cn/v1/models", "https://api.moonshot.cn/v1", "/models", "kimi", "openai"},
		{"https://api.moonshot.cn/v1/responses", "https://api.moonshot.cn/v1", "/responses", "kimi", "openai"},
		{"https://api.kimi.com/coding", "https://api.kimi.com/coding/v1", "", "kimi_coding", "openai"},
		{"https://api.minimaxi.com", "https://api.minimaxi.com/v1", "", "minimax", "openai"},
		{"https://api.minimax.io/v1/text/chatcompletion_v2", "https://api.minimax.io/v1", "/text/chatcompletion_v2", "minimax", "openai"},
		{"https://api.minimaxi.com/anthropic", "https://api.minimaxi.com/anthropic", "", "minimax", "anthropic"},
		{"https://open.bigmodel.cn", "https://open.bigmodel.cn/api/paas/v4", "", "glm", "openai"},
		{"https://open.bigmodel.cn/v1", "https://open.bigmodel.cn/api/paas/v4", "", "glm", "openai"},
		{"https://open.bigmodel.cn/api/paas/v4/chat/completions", "https://open.bigmodel.cn/api/paas/v4", "/chat/completions", "glm", "openai"},
		{"https://api.z.ai/api/coding/paas/v4", "https://api.z.ai/api/coding/paas/v4", "", "glm", "openai"},
		{"https://api.z.ai/api/anthropic", "https://api.z.ai/api/anthropic", "", "glm", "anthropic"},
		{"https://dashscope.aliyuncs.com", "https://dashscope.aliyuncs.com/compatible-mode/v1", "", "qwen", "openai"},
		{"https://dashscope.aliyuncs.com/v1", "https://dashscope.aliyuncs.com/compatible-mode/v1", "", "qwen", "openai"},
		{"https://dashscope.aliyuncs.com/api/v1", "https://dashscope.aliyuncs.com/compatible-mode/v1", "", "qwen", "openai"},
		{"https://dashscope-intl.aliyuncs.com/compatible-mode/v1/chat/completions", "https://dashscope-intl.aliyuncs.com/compatible-mode/v1", "/chat/completions", "qwen", "openai"},
		{"https://ws1.ap-southeast-1.maas.aliyuncs.com", "https://ws1.ap-southeast-1.maas.aliyuncs.com/compatible-mode/v1", "", "qwen", "openai"},
		{"https://coding.dashscope.aliyuncs.com", "https://coding.dashscope.aliyuncs.com/v1", "", "qwen", "openai"},
		{"https://coding.dashscope.aliyuncs.com/v1", "https://coding.dashscope.aliyuncs.com/v1", "", "qwen", "openai"},
		{"https://dashscope.aliyuncs.com/apps/anthropic/v1/messages", "https://dashscope.aliyuncs.com/apps/anthropic", "/v1/messages", "qwen", "anthropic"},
		{"https://api.stepfun.com", "https://api.stepfun.com/v1", "", "stepfun", "openai"},
		{"https://api.stepfun.ai/v1/chat/completions", "https://api.stepfun.ai/v1", "/chat/completions", "stepfun", "openai"},
		{"https://ark.cn-beijing.volces.com", "https://ark.cn-beijing.volces.com/api/v3", "", "ark", "openai"},
		{"https://ark.cn-beijing.volces.com/api/v3/chat/completions", "https://ark.cn-beijing.volces.com/api/v3", "/chat/completions", "ark", "openai"},
		{"https://ark.cn-beijing.volces.com/api/compatible", "https://ark.cn-beijing.volces.com/api/compatible", "", "ark", "anthropic"},
		{"https://ark.cn-beijing.volces.com/api/coding/v3", "https://ark.cn-beijing.volces.com/api/coding/v3", "", "ark", "openai"},
		{"https://ark.ap-southeast.bytepluses.com", "https://ark.ap-southeast.bytepluses.com/api/v3", "", "ark", "openai"},
		{"https://qianfan.baidubce.com", "https://qianfan.baidubce.com/v2", "", "qianfan", "openai"},
		{"https://tokenhub.tencentmaas.com", "https://tokenhub.tencentmaas.com/v1", "", "tokenhub", "openai"},
		{"https://tokenhub-intl.tencentcloudmaas.com", "https://tokenhub-intl.tencentcloudmaas.com/v1", "", "tokenhub", "openai"},
		{"https://api.lkeap.cloud.tencent.com", "https://api.lkeap.cloud.tencent.com/coding/v3", "", "tokenhub", "openai"},
		{"https://api.siliconflow.cn/v1/embeddings", "https://api.siliconflow.cn/v1", "/embeddings", "siliconflow", "openai"},
		{"https://api.siliconflow.com", "https://api.siliconflow.com/v1", "", "siliconflow", "openai"},
		{"https://openrouter.ai", "https://openrouter.ai/api/v1", "", "openrouter", "openai"},
		{"https://api-inference.modelscope.cn", "https://api-inference.modelscope.cn/v1", "", "modelscope", "openai"},
		{"https://api.xiaomimimo.com", "https://api.xiaomimimo.com/v1", "", "mimo", "openai"},
		// Unknown hosts keep their path: no blind /v1.
		{"https://relay.example.com", "https://relay.example.com", "", "", "openai"},
		{"https://relay.example.com//openai///v1//", "https://relay.example.com/openai/v1", "", "", "openai"},
		{"https://relay.example.com/v1/chat/completions", "https://relay.example.com/v1", "/chat/completions", "", "openai"},
		{"https://relay.example.com/v1/completions", "https://relay.example.com/v1", "/completions", "", "openai"},
		{"http://127.0.0.1:8080/kimi/v1", "http://127.0.0.1:8080/kimi/v1", "", "", "openai"},
		{"localhost:3000/v1", "https://localhost:3000/v1", "", "", "openai"},
		{"HTTPS://Relay.Example.COM/V1", "https://relay.example.com/V1", "", "", "openai"},
	}
	for _, tc := range cases {
		n, err := c.NormalizeURL(tc.in)
		if err != nil {
			t.Errorf("NormalizeURL(%q): %v", tc.in, err)
			continue
		}
		if n.BaseURL != tc.want || n.Stripped != tc.stripped || n.ProviderID != tc.provider || n.Protocol != tc.protocol {
			t.Errorf("NormalizeURL(%q) = {%q %q %q %q}, want {%q %q %q %q}", tc.in,
				n.BaseURL, n.Stripped, n.ProviderID, n.Protocol, tc.want, tc.stripped, tc.provider, tc.protocol)
		}
		if n.Host == "" || n.Host != strings.ToLower(n.Host) {
			t.Errorf("NormalizeURL(%q).Host = %q", tc.in, n.Host)
		}
	}
}

func TestNormalizeURLPlan(t *testing.T) {
	c := Default()
	for in, want := range map[string]bool{
		"https://api.z.ai/api/coding/paas/v4":                            true,
		"https://api.stepfun.com/step_plan/v1":                           true,
		"https://ark.cn-beijing.volces.com/api/plan/v3":                  true,
		"https://qianfan.baidubce.com/v2/tokenplan/personal":             true,
		"https://token-plan.cn-beijing.maas.aliyuncs.com":                true,
		"https://coding-intl.dashscope.aliyuncs.com/v1":                  true,
		"https://api.deepseek.com":                                       false,
		"https://dashscope.aliyuncs.com/compatible-mode/v1":              false,
		"https://ark.cn-beijing.volces.com/api/v3":                       false,
		"https://ws.ap-southeast-1.maas.aliyuncs.com/compatible-mode/v1": false,
	} {
		n, err := c.NormalizeURL(in)
		if err != nil {
			t.Fatalf("NormalizeURL(%q): %v", in, err)
		}
		if n.Plan != want {
			t.Errorf("NormalizeURL(%q).Plan = %v, want %v", in, n.Plan, want)
		}
	}
}

func TestNormalizeURLErrors(t *testing.T) {
	c := Default()
	cases := []struct {
		in     string
		want   error
		secret string
	}{
		{"", ErrEmptyURL, ""},
		{"   ", ErrEmptyURL, ""},
		{`""`, ErrEmptyURL, ""},
		{"ftp://api.deepseek.com", ErrBadScheme, ""},
		{"file:///etc/passwd", ErrBadScheme, ""},
		{"mailto:someone", ErrBadScheme, ""},
		{"https://user:sup3rs3cretpass@api.deepseek.com", ErrCredentialsURL, "sup3rs3cretpass"},
		{"https://sk-abcdef0123456789@relay.example.com/v1", ErrCredentialsURL, "sk-abcdef0123456789"},
		{"https://relay.example.com/v1?key=sk-querysecret123", ErrQueryInURL, "sk-querysecret123"},
		{"https://relay.example.com/v1?", ErrQueryInURL, ""},
		{"https://relay.example.com/v1#frag-secret-1234", ErrFragmentInURL, "frag-secret-1234"},
		{"https:///v1", ErrNoHost, ""},
		{"http://", ErrNoHost, ""},
		{"https://aip.baidubce.com/rpc/2.0/ai_custom/v1", ErrLegacyHost, ""},
		{"https://api.hunyuan.cloud.tencent.com/v1", ErrLegacyHost, ""},
	}
	for _, tc := range cases {
		_, err := c.NormalizeURL(tc.in)
		if !errors.Is(err, tc.want) {
			t.Errorf("NormalizeURL(%q) error = %v, want %v", tc.in, err, tc.want)
			continue
		}
		if tc.secret != "" && strings.Contains(err.Error(), tc.secret) {
			t.Errorf("NormalizeURL(%q) error leaks secret: %v", tc.in, err)
		}
	}
}

func TestNormalizeURLIdempotent(t *testing.T) {
	c := Default()
	for _, in := range []string{"https://api.deepseek.com/v1/chat/completions", "open.bigmodel.cn",
		"https://api.moonshot.cn", "https://relay.example.com/x/v1/models", "https://api.minimaxi.com/anthropic/v1/messages"} {
		a, err := c.NormalizeURL(in)
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.NormalizeURL(a.BaseURL)
		if err != nil {
			t.Fatal(err)
		}
		if a.BaseURL != b.BaseURL {
			t.Errorf("not idempotent: %q -> %q -> %q", in, a.BaseURL, b.BaseURL)
		}
	}
}
