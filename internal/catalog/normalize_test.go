package catalog

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeURL(t *testing.T) {
	c := Default()
	cases := []struct {
		in, base, anthropic, stripped, provider, protocol, surface string
	}{
		{"https://api.deepseek.com", "https://api.deepseek.com", "https://api.deepseek.com/anthropic", "", "deepseek", "openai", "global"},
		{"  https://api.deepseek.com/  ", "https://api.deepseek.com", "https://api.deepseek.com/anthropic", "", "deepseek", "openai", "global"},
		{"https://api.deepseek.com/v1", "https://api.deepseek.com/v1", "https://api.deepseek.com/anthropic", "", "deepseek", "openai", "global"},
		{"https://api.deepseek.com/chat/completions", "https://api.deepseek.com", "https://api.deepseek.com/anthropic", "/chat/completions", "deepseek", "openai", "global"},
		{"https://api.deepseek.com/v1/chat/completions", "https://api.deepseek.com/v1", "https://api.deepseek.com/anthropic", "/chat/completions", "deepseek", "openai", "global"},
		{"https://api.deepseek.com/anthropic/v1/messages", "https://api.deepseek.com", "https://api.deepseek.com/anthropic", "/v1/messages", "deepseek", "anthropic", "global"},
		{"https://api.deepseek.com/anthropic/v1", "https://api.deepseek.com", "https://api.deepseek.com/anthropic", "/v1", "deepseek", "anthropic", "global"},
		{"http://api.deepseek.com:443/v1/models/models", "https://api.deepseek.com/v1", "https://api.deepseek.com/anthropic", "/models/models", "deepseek", "openai", "global"},
		{`"https://API.Moonshot.cn"`, "https://api.moonshot.cn/v1", "https://api.moonshot.cn/anthropic", "", "kimi", "openai", "cn"},
		{"https://api.moonshot.ai/v1/", "https://api.moonshot.ai/v1", "https://api.moonshot.ai/anthropic", "", "kimi", "openai", "intl"},
		{"https://api.moonshot.ai/anthropic/v1/messages", "https://api.moonshot.ai/v1", "https://api.moonshot.ai/anthropic", "/v1/messages", "kimi", "anthropic", "intl"},
		{"https://api.kimi.com/coding/", "https://api.kimi.com/coding/v1", "https://api.kimi.com/coding", "", "kimi_coding", "anthropic", "coding"},
		{"https://api.kimi.com/coding/v1/chat/completions", "https://api.kimi.com/coding/v1", "https://api.kimi.com/coding", "/chat/completions", "kimi_coding", "openai", "coding"},
		{"https://api.minimax.io/v1/text/chatcompletion_v2", "https://api.minimax.io/v1", "https://api.minimax.io/anthropic", "/text/chatcompletion_v2", "minimax", "openai", "intl"},
		{"https://api.minimaxi.com/anthropic", "https://api.minimaxi.com/v1", "https://api.minimaxi.com/anthropic", "", "minimax", "anthropic", "cn"},
		{"https://api.minimaxi.chat/v1/text/chatcompletion_v2", "https://api.minimaxi.chat/v1", "", "/text/chatcompletion_v2", "minimax", "openai", "cn-legacy"},
		{"https://open.bigmodel.cn/v1", "https://open.bigmodel.cn/api/paas/v4", "https://open.bigmodel.cn/api/anthropic", "", "glm", "openai", "cn"},
		{"https://api.z.ai/api/coding/paas/v4", "https://api.z.ai/api/coding/paas/v4", "https://api.z.ai/api/anthropic", "", "glm", "openai", "intl-coding"},
		{"https://api.z.ai/api/anthropic", "https://api.z.ai/api/paas/v4", "https://api.z.ai/api/anthropic", "", "glm", "anthropic", "intl"},
		{"https://dashscope.aliyuncs.com/api/v1", "https://dashscope.aliyuncs.com/compatible-mode/v1", "https://dashscope.aliyuncs.com/apps/anthropic", "", "qwen", "openai", "beijing"},
		{"https://dashscope-intl.aliyuncs.com/apps/anthropic/v1/messages", "https://dashscope-intl.aliyuncs.com/compatible-mode/v1", "https://dashscope-intl.aliyuncs.com/apps/anthropic", "/v1/messages", "qwen", "anthropic", "singapore"},
		{"https://ws1.ap-southeast-1.maas.aliyuncs.com", "https://ws1.ap-southeast-1.maas.aliyuncs.com/compatible-mode/v1", "https://ws1.ap-southeast-1.maas.aliyuncs.com/apps/anthropic", "", "qwen", "openai", "workspace-ap-southeast-1"},
		{"https://token-plan.cn-beijing.maas.aliyuncs.com", "https://token-plan.cn-beijing.maas.aliyuncs.com/compatible-mode/v1", "https://token-plan.cn-beijing.maas.aliyuncs.com/apps/anthropic", "", "qwen", "openai", "token-plan-cn"},
		{"https://coding.dashscope.aliyuncs.com/apps/anthropic", "https://coding.dashscope.aliyuncs.com/v1", "https://coding.dashscope.aliyuncs.com/apps/anthropic", "", "qwen", "anthropic", "coding-cn"},
		{"https://api.stepfun.com/v1/messages", "https://api.stepfun.com/v1", "https://api.stepfun.com", "/v1/messages", "stepfun", "anthropic", "cn"},
		{"https://api.stepfun.ai/step_plan", "https://api.stepfun.ai/step_plan/v1", "https://api.stepfun.ai/step_plan", "", "stepfun", "anthropic", "intl-step-plan"},
		{"https://ark.cn-beijing.volces.com/api/compatible", "https://ark.cn-beijing.volces.com/api/v3", "https://ark.cn-beijing.volces.com/api/compatible", "", "ark", "anthropic", "volcengine"},
		{"https://ark.cn-beijing.volces.com/api/coding", "https://ark.cn-beijing.volces.com/api/coding/v3", "https://ark.cn-beijing.volces.com/api/coding", "", "ark", "anthropic", "volcengine-coding"},
		{"https://ark.cn-beijing.volces.com/api/coding/v1/messages", "https://ark.cn-beijing.volces.com/api/coding/v3", "https://ark.cn-beijing.volces.com/api/coding", "/v1/messages", "ark", "anthropic", "volcengine-coding"},
		{"https://ark.cn-beijing.volces.com/api/plan/v3", "https://ark.cn-beijing.volces.com/api/plan/v3", "https://ark.cn-beijing.volces.com/api/plan", "", "ark", "openai", "volcengine-agent"},
		{"https://ark.ap-southeast.bytepluses.com", "https://ark.ap-southeast.bytepluses.com/api/v3", "", "", "ark", "openai", "byteplus"},
		{"https://qianfan.baidubce.com/anthropic/coding", "https://qianfan.baidubce.com/v2/coding", "https://qianfan.baidubce.com/anthropic/coding", "", "qianfan", "anthropic", "coding"},
		{"https://tokenhub.tencentmaas.com/anthropic", "https://tokenhub.tencentmaas.com/v1", "https://tokenhub.tencentmaas.com/anthropic", "", "tokenhub", "anthropic", "cn"},
		{"https://api.lkeap.cloud.tencent.com", "https://api.lkeap.cloud.tencent.com/coding/v3", "", "", "tokenhub", "openai", "coding-plan"},
		{"https://api.siliconflow.cn/v1/embeddings", "https://api.siliconflow.cn/v1", "https://api.siliconflow.cn", "/embeddings", "siliconflow", "openai", "cn"},
		{"https://openrouter.ai/api", "https://openrouter.ai/api/v1", "https://openrouter.ai/api", "", "openrouter", "anthropic", "global"},
		{"https://api-inference.modelscope.cn", "https://api-inference.modelscope.cn/v1", "https://api-inference.modelscope.cn", "", "modelscope", "openai", "cn"},
		{"https://api.xiaomimimo.com/anthropic", "https://api.xiaomimimo.com/v1", "https://api.xiaomimimo.com/anthropic", "", "mimo", "anthropic", "global"},
		{"HTTPS://API.MOONSHOT.CN/V1/CHAT/COMPLETIONS", "https://api.moonshot.cn/v1", "https://api.moonshot.cn/anthropic", "/chat/completions", "kimi", "openai", "cn"},
		{"https://OPEN.BIGMODEL.CN/API/PAAS/V4/", "https://open.bigmodel.cn/api/paas/v4", "https://open.bigmodel.cn/api/anthropic", "", "glm", "openai", "cn"},
		// Unknown hosts keep their path: no blind /v1, no Anthropic base.
		{"https://relay.example.com", "https://relay.example.com", "", "", "", "openai", ""},
		{"https://relay.example.com//openai///v1//", "https://relay.example.com/openai/v1", "", "", "", "openai", ""},
		{"https://relay.example.com/v1/chat/completions", "https://relay.example.com/v1", "", "/chat/completions", "", "openai", ""},
		{"https://relay.example.com/anthropic-proxy/v1", "https://relay.example.com/anthropic-proxy/v1", "", "", "", "openai", ""},
		{"http://127.0.0.1:8080/kimi/v1", "http://127.0.0.1:8080/kimi/v1", "", "", "", "openai", ""},
		{"localhost:3000/v1", "https://localhost:3000/v1", "", "", "", "openai", ""},
		{"HTTPS://Relay.Example.COM/V1", "https://relay.example.com/V1", "", "", "", "openai", ""},
		{"https://relay.example.com/v1?key=abc#top", "https://relay.example.com/v1", "", "", "", "openai", ""},
	}
	for _, tc := range cases {
		n, err := c.NormalizeURL(tc.in)
		if err != nil {
			t.Errorf("NormalizeURL(%q): %v", tc.in, err)
			continue
		}
		got := [...]string{n.BaseURL, n.AnthropicBase, n.Stripped, n.ProviderID, n.Protocol, n.Surface}
		want := [...]string{tc.base, tc.anthropic, tc.stripped, tc.provider, tc.protocol, tc.surface}
		if got != want {
			t.Errorf("NormalizeURL(%q) = %q, want %q", tc.in, got, want)
		}
		if n.Host == "" || n.Host != strings.ToLower(n.Host) {
			t.Errorf("NormalizeURL(%q).Host = %q", tc.in, n.Host)
		}
	}
}

// TestNormalizeURLNotes checks that what changed is said, without quoting the input.
func TestNormalizeURLNotes(t *testing.T) {
	c := Default()
	for in, want := range map[string]string{
		"https://relay.example.com/v1?key=sk-secret-in-query": noteQuery,
		"https://relay.example.com/v1#sk-secret-in-fragment":  noteFragment,
		"http://api.moonshot.cn/v1":                           noteHTTPS,
		"https://open.bigmodel.cn/v1":                         noteFixedPath,
		"https://api.minimaxi.com/anthropic":                  noteMapped,
		"https://tokenhub.tencentmaas.com/anthropic":          noteKeptAnthro,
		"https://open.bigmodel.cn/api/anthropic":              "for a coding plan key paste https://open.bigmodel.cn/api/coding/paas/v4",
	} {
		n, err := c.NormalizeURL(in)
		if err != nil {
			t.Fatalf("NormalizeURL(%q): %v", in, err)
		}
		joined := strings.Join(n.Notes, "; ")
		if !strings.Contains(joined, want) {
			t.Errorf("NormalizeURL(%q) notes %q, want %q", in, n.Notes, want)
		}
		if strings.Contains(joined, "secret") {
			t.Errorf("NormalizeURL(%q) notes quote the input: %q", in, n.Notes)
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
		{"https://relay.example.com/anthropic", ErrAnthropicOnly, ""},
		{"http://10.0.0.8:3000/v1/messages", ErrAnthropicOnly, ""},
		{"https://api.deepseek.com.relay.example/anthropic?key=sk-leak0123456789", ErrAnthropicOnly, "sk-leak0123456789"},
		{"https://qianfan.baidubce.com/anthropic", ErrUnknownSurface, ""},
		{"https://api.lkeap.cloud.tencent.com/anthropic", ErrUnknownSurface, ""},
		{"https://api.deepseek.com/v1/anthropic", ErrUnknownSurface, ""},
		{"https://api.deepseek.com/beta", ErrUnknownSurface, ""},
		{"https://dashscope-intl.aliyuncs.com/api/v1/services/aigc/text-generation/generation", ErrUnknownSurface, ""},
		{"https://api.moonshot.cn/v2?key=sk-leak0123456789", ErrUnknownSurface, "sk-leak0123456789"},
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
