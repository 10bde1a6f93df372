package catalog

import "testing"

func TestDetect(t *testing.T) {
	c := Default()
	cases := []struct {
		base, key, hint string
		want            Detection
	}{
		// §12.1 hosts.
		{"https://api.deepseek.com", "", "", Detection{"deepseek", "host"}},
		{"https://api.deepseek.com/anthropic", "", "", Detection{"deepseek", "host"}},
		{"https://api.moonshot.cn/v1", "", "", Detection{"kimi", "host"}},
		{"https://api.moonshot.ai/v1", "", "", Detection{"kimi", "host"}},
		{"https://api.kimi.com/coding/v1", "", "", Detection{"kimi_coding", "host"}},
		{"https://api.minimaxi.com/v1", "", "", Detection{"minimax", "host"}},
		{"https://api.minimaxi.chat/v1", "", "", Detection{"minimax", "host"}},
		{"https://api.minimax.io/v1", "", "", Detection{"minimax", "host"}},
		{"https://api.minimax.chat/v1", "", "", Detection{"minimax", "host"}},
		{"https://open.bigmodel.cn/api/paas/v4", "", "", Detection{"glm", "host"}},
		{"https://api.z.ai/api/paas/v4", "", "", Detection{"glm", "host"}},
		{"https://dashscope.aliyuncs.com/compatible-mode/v1", "", "", Detection{"qwen", "host"}},
		{"https://dashscope-intl.aliyuncs.com/compatible-mode/v1", "", "", Detection{"qwen", "host"}},
		{"https://dashscope-us.aliyuncs.com/compatible-mode/v1", "", "", Detection{"qwen", "host"}},
		{"https://cn-hongkong.dashscope.aliyuncs.com/compatible-mode/v1", "", "", Detection{"qwen", "host"}},
		{"https://ws-1.ap-northeast-1.maas.aliyuncs.com/compatible-mode/v1", "", "", Detection{"qwen", "host"}},
		{"https://trial.us-east-1.maas.aliyuncs.com/compatible-mode/v1", "", "", Detection{"qwen", "host"}},
		{"https://token-plan.cn-beijing.maas.aliyuncs.com/compatible-mode/v1", "", "", Detection{"qwen", "host"}},
		{"https://coding.dashscope.aliyuncs.com/v1", "", "", Detection{"qwen", "host"}},
		{"https://coding-intl.dashscope.aliyuncs.com/v1", "", "", Detection{"qwen", "host"}},
		{"https://api.stepfun.com/v1", "", "", Detection{"stepfun", "host"}},
		{"https://api.stepfun.ai/step_plan/v1", "", "", Detection{"stepfun", "host"}},
		{"https://ark.cn-beijing.volces.com/api/v3", "", "", Detection{"ark", "host"}},
		{"https://ark.ap-southeast.bytepluses.com/api/v3", "", "", Detection{"ark", "host"}},
		{"https://qianfan.baidubce.com/v2", "", "", Detection{"qianfan", "host"}},
		{"https://aip.baidubce.com/rpc/2.0", "", "", Detection{"qianfan", "host"}},
		{"https://tokenhub.tencentmaas.com/v1", "", "", Detection{"tokenhub", "host"}},
		{"https://tokenhub.tencentmaas.cn/v1", "", "", Detection{"tokenhub", "host"}},
		{"https://tokenhub-intl.tencentmaas.com/v1", "", "", Detection{"tokenhub", "host"}},
		{"https://tokenhub-intl.tencentcloudmaas.com/v1", "", "", Detection{"tokenhub", "host"}},
		{"https://tokenhub.tencentcloudmaas.tech/v1", "", "", Detection{"tokenhub", "host"}},
		{"https://api.lkeap.cloud.tencent.com/coding/v3", "", "", Detection{"tokenhub", "host"}},
		{"https://api.siliconflow.cn/v1", "", "", Detection{"siliconflow", "host"}},
		{"https://api.siliconflow.com/v1", "", "", Detection{"siliconflow", "host"}},
		{"https://openrouter.ai/api/v1", "", "", Detection{"openrouter", "host"}},
		{"https://api-inference.modelscope.cn/v1", "", "", Detection{"modelscope", "host"}},
		{"https://api.xiaomimimo.com/v1", "", "", Detection{"mimo", "host"}},
		// Host wins over key shape and hint.
		{"https://api.deepseek.com", "sk-or-v1-abc", "kimi", Detection{"deepseek", "host"}},
		// Unknown host: hint, then key shape.
		{"https://relay.example.com/v1", "sk-0123456789abcdef0123456789abcdef", "Kimi", Detection{"kimi", "hint"}},
		{"https://relay.example.com/v1", "", "moonshot", Detection{"kimi", "hint"}},
		{"http://127.0.0.1:9999/glm/api/paas/v4", "", "glm", Detection{"glm", "hint"}},
		{"https://relay.example.com/v1", "", "no-such-provider", Detection{OpenAICompatible, "default"}},
		// §12.2 key shapes (weak hints).
		{"", "sk-or-v1-0123456789abcdef", "", Detection{"openrouter", "key_hint"}},
		{"", "sk-kimi-abcdefghijklmnop", "", Detection{"kimi_coding", "key_hint"}},
		{"", "sk-cp-abcdefghijklmnop", "", Detection{"minimax", "key_hint"}},
		{"", "sk-api-abcdefghijklmnop", "", Detection{"minimax", "key_hint"}},
		{"", "sk-sp-abcdefghijklmnop", "", Detection{"qwen", "key_hint"}},
		{"", "sk-ws-abcdefghijklmnop", "", Detection{"qwen", "key_hint"}},
		{"", "bce-v3/ALTAK-abcdef/0123456789", "", Detection{"qianfan", "key_hint"}},
		{"", "0123456789abcdef0123456789abcdef.AbCdEfGhIjKlMnOp", "", Detection{"glm", "key_hint"}},
		{"", "01234567-89ab-cdef-0123-456789abcdef", "", Detection{"ark", "key_hint"}},
		{"", "sk-0123456789abcdef0123456789abcdef", "", Detection{"deepseek", "key_hint"}},
		{"", "sk-abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuv", "", Detection{"siliconflow", "key_hint"}},
		{"https://relay.example.com/v1", "sk-or-v1-xyz", "", Detection{"openrouter", "key_hint"}},
		// Nothing known.
		{"https://relay.example.com/v1", "sk-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefgh", "", Detection{OpenAICompatible, "default"}},
		{"", "", "", Detection{OpenAICompatible, "default"}},
		{"https://relay.example.com/v1", "sk-ant-api03-xyz", "", Detection{OpenAICompatible, "default"}},
		{"not a url at all", "", "", Detection{OpenAICompatible, "default"}},
	}
	for _, tc := range cases {
		if got := c.Detect(tc.base, tc.key, tc.hint); got != tc.want {
			t.Errorf("Detect(%q, %q, %q) = %+v, want %+v", tc.base, tc.key, tc.hint, got, tc.want)
		}
	}
}
