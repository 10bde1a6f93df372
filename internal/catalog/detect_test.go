package catalog

import "testing"

func TestDetect(t *testing.T) {
	c := Default()
	cases := []struct {
		base, key, hint string
		want            Detection
	}{
		// Every host pattern of the catalog.
		{"https://api.deepseek.com", "", "", Detection{ProviderID: "deepseek", By: "host"}},
		{"https://api.deepseek.com/anthropic", "", "", Detection{ProviderID: "deepseek", By: "host"}},
		{"https://api.moonshot.cn/v1", "", "", Detection{ProviderID: "kimi", By: "host"}},
		{"https://api.moonshot.ai/v1", "", "", Detection{ProviderID: "kimi", By: "host"}},
		{"https://api.kimi.com/coding/v1", "", "", Detection{ProviderID: "kimi_coding", By: "host"}},
		{"https://api.minimaxi.com/v1", "", "", Detection{ProviderID: "minimax", By: "host"}},
		{"https://api.minimaxi.chat/v1", "", "", Detection{ProviderID: "minimax", By: "host"}},
		{"https://api.minimax.io/v1", "", "", Detection{ProviderID: "minimax", By: "host"}},
		{"https://api.minimax.chat/v1", "", "", Detection{ProviderID: "minimax", By: "host"}},
		{"https://open.bigmodel.cn/api/paas/v4", "", "", Detection{ProviderID: "glm", By: "host"}},
		{"https://api.z.ai/api/paas/v4", "", "", Detection{ProviderID: "glm", By: "host"}},
		{"https://dashscope.aliyuncs.com/compatible-mode/v1", "", "", Detection{ProviderID: "qwen", By: "host"}},
		{"https://dashscope-intl.aliyuncs.com/compatible-mode/v1", "", "", Detection{ProviderID: "qwen", By: "host"}},
		{"https://dashscope-us.aliyuncs.com/compatible-mode/v1", "", "", Detection{ProviderID: "qwen", By: "host"}},
		{"https://cn-hongkong.dashscope.aliyuncs.com/compatible-mode/v1", "", "", Detection{ProviderID: "qwen", By: "host"}},
		{"https://ws-1.ap-northeast-1.maas.aliyuncs.com/compatible-mode/v1", "", "", Detection{ProviderID: "qwen", By: "host"}},
		{"https://trial.us-east-1.maas.aliyuncs.com/compatible-mode/v1", "", "", Detection{ProviderID: "qwen", By: "host"}},
		{"https://token-plan.cn-beijing.maas.aliyuncs.com/compatible-mode/v1", "", "", Detection{ProviderID: "qwen", By: "host"}},
		{"https://coding.dashscope.aliyuncs.com/v1", "", "", Detection{ProviderID: "qwen", By: "host"}},
		{"https://coding-intl.dashscope.aliyuncs.com/v1", "", "", Detection{ProviderID: "qwen", By: "host"}},
		{"https://api.stepfun.com/v1", "", "", Detection{ProviderID: "stepfun", By: "host"}},
		{"https://api.stepfun.ai/step_plan/v1", "", "", Detection{ProviderID: "stepfun", By: "host"}},
		{"https://ark.cn-beijing.volces.com/api/v3", "", "", Detection{ProviderID: "ark", By: "host"}},
		{"https://ark.ap-southeast.bytepluses.com/api/v3", "", "", Detection{ProviderID: "ark", By: "host"}},
		{"https://qianfan.baidubce.com/v2", "", "", Detection{ProviderID: "qianfan", By: "host"}},
		{"https://aip.baidubce.com/rpc/2.0", "", "", Detection{ProviderID: "qianfan", By: "host"}},
		{"https://tokenhub.tencentmaas.com/v1", "", "", Detection{ProviderID: "tokenhub", By: "host"}},
		{"https://tokenhub.tencentmaas.cn/v1", "", "", Detection{ProviderID: "tokenhub", By: "host"}},
		{"https://tokenhub-intl.tencentmaas.com/v1", "", "", Detection{ProviderID: "tokenhub", By: "host"}},
		{"https://tokenhub-intl.tencentcloudmaas.com/v1", "", "", Detection{ProviderID: "tokenhub", By: "host"}},
		{"https://tokenhub.tencentcloudmaas.tech/v1", "", "", Detection{ProviderID: "tokenhub", By: "host"}},
		{"https://api.lkeap.cloud.tencent.com/coding/v3", "", "", Detection{ProviderID: "tokenhub", By: "host"}},
		{"https://api.siliconflow.cn/v1", "", "", Detection{ProviderID: "siliconflow", By: "host"}},
		{"https://api.siliconflow.com/v1", "", "", Detection{ProviderID: "siliconflow", By: "host"}},
		{"https://openrouter.ai/api/v1", "", "", Detection{ProviderID: "openrouter", By: "host"}},
		{"https://api-inference.modelscope.cn/v1", "", "", Detection{ProviderID: "modelscope", By: "host"}},
		{"https://api.xiaomimimo.com/v1", "", "", Detection{ProviderID: "mimo", By: "host"}},
		// Host wins over key shape and hint.
		{"https://api.deepseek.com", "sk-or-v1-abc", "kimi", Detection{ProviderID: "deepseek", By: "host", Suggested: "openrouter"}},
		// A weak key shape never contradicts a known host; one that names it gives its plan.
		{"https://api.moonshot.cn/v1", "sk-0123456789abcdef0123456789abcdef", "", Detection{ProviderID: "kimi", By: "host"}},
		{"https://dashscope.aliyuncs.com/compatible-mode/v1", "sk-0123456789abcdef0123456789abcdef", "", Detection{ProviderID: "qwen", By: "host"}},
		{"https://api.minimaxi.com/v1", "sk-cp-abcdefghijklmnop", "", Detection{ProviderID: "minimax", By: "host", Plan: "token"}},
		{"https://api.minimaxi.com/v1", "sk-api-abcdefghijklmnop", "", Detection{ProviderID: "minimax", By: "host"}},
		// Unknown host: the hint, else the generic relay; the key's shape is only a suggestion.
		{"https://relay.example.com/v1", "sk-0123456789abcdef0123456789abcdef", "Kimi", Detection{ProviderID: "kimi", By: "hint", Suggested: "deepseek"}},
		{"https://api.deepseek.com.relay.example/v1", "sk-0123456789abcdef0123456789abcdef", "", Detection{ProviderID: OpenAICompatible, By: "default", Suggested: "deepseek"}},
		{"http://192.168.1.20:3000/v1", "sk-abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuv", "", Detection{ProviderID: OpenAICompatible, By: "default", Suggested: "siliconflow"}},
		{"http://127.0.0.1:8080", "sk-kimi-abcdefghijklmnop", "", Detection{ProviderID: OpenAICompatible, By: "default", Suggested: "kimi_coding"}},
		{"https://relay.example.com/v1", "", "moonshot", Detection{ProviderID: "kimi", By: "hint"}},
		{"http://127.0.0.1:9999/glm/api/paas/v4", "", "glm", Detection{ProviderID: "glm", By: "hint"}},
		{"https://relay.example.com/v1", "", "no-such-provider", Detection{ProviderID: OpenAICompatible, By: "default"}},
		// No base URL: the key shape decides.
		{"", "sk-or-v1-0123456789abcdef", "", Detection{ProviderID: "openrouter", By: "key_hint"}},
		{"", "sk-kimi-abcdefghijklmnop", "", Detection{ProviderID: "kimi_coding", By: "key_hint"}},
		{"", "sk-cp-abcdefghijklmnop", "", Detection{ProviderID: "minimax", By: "key_hint", Plan: "token"}},
		{"", "sk-api-abcdefghijklmnop", "", Detection{ProviderID: "minimax", By: "key_hint"}},
		{"", "sk-sp-abcdefghijklmnop", "", Detection{ProviderID: "qwen", By: "key_hint"}},
		{"", "sk-ws-abcdefghijklmnop", "", Detection{ProviderID: "qwen", By: "key_hint"}},
		{"", "bce-v3/ALTAK-abcdef/0123456789", "", Detection{ProviderID: "qianfan", By: "key_hint"}},
		{"", "0123456789abcdef0123456789abcdef.AbCdEfGhIjKlMnOp", "", Detection{ProviderID: "glm", By: "key_hint"}},
		{"", "01234567-89ab-cdef-0123-456789abcdef", "", Detection{ProviderID: "ark", By: "key_hint"}},
		{"", "sk-0123456789abcdef0123456789abcdef", "", Detection{ProviderID: "deepseek", By: "key_hint"}},
		{"", "sk-abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuv", "", Detection{ProviderID: "siliconflow", By: "key_hint"}},
		{"https://relay.example.com/v1", "sk-or-v1-xyz", "", Detection{ProviderID: OpenAICompatible, By: "default", Suggested: "openrouter"}},
		{"", "sk-cp-abcdefghijklmnop", "", Detection{ProviderID: "minimax", By: "key_hint", Plan: "token"}},
		// Nothing known.
		{"https://relay.example.com/v1", "sk-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefgh", "", Detection{ProviderID: OpenAICompatible, By: "default"}},
		{"", "", "", Detection{ProviderID: OpenAICompatible, By: "default"}},
		{"https://relay.example.com/v1", "sk-ant-api03-xyz", "", Detection{ProviderID: OpenAICompatible, By: "default"}},
		{"not a url at all", "", "", Detection{ProviderID: OpenAICompatible, By: "default"}},
	}
	for _, tc := range cases {
		if got := c.Detect(tc.base, tc.key, tc.hint); got != tc.want {
			t.Errorf("Detect(%q, %q, %q) = %+v, want %+v", tc.base, tc.key, tc.hint, got, tc.want)
		}
	}
}
