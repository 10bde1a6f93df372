package catalog

import (
	"strings"
	"testing"
)

func TestEmbeddedCatalogParses(t *testing.T) {
	c, err := Parse(providersJSON)
	if err != nil {
		t.Fatalf("embedded providers.json: %v", err)
	}
	if len(c.Providers()) == 0 {
		t.Fatal("no providers")
	}
	if Default() == nil {
		t.Fatal("Default returned nil")
	}
}

func TestEveryDocumentedProviderPresent(t *testing.T) {
	c := Default()
	for _, id := range []string{"deepseek", "kimi", "kimi_coding", "minimax", "glm", "qwen", "stepfun",
		"ark", "qianfan", "tokenhub", "siliconflow", "openrouter", "modelscope", "mimo", OpenAICompatible} {
		p, ok := c.Provider(id)
		if !ok {
			t.Errorf("provider %q missing", id)
			continue
		}
		if p.Name == "" {
			t.Errorf("provider %q has no name", id)
		}
		if id != OpenAICompatible && len(p.Hosts) == 0 {
			t.Errorf("provider %q has no hosts", id)
		}
	}
}

func TestCatalogInvariants(t *testing.T) {
	for _, p := range Default().Providers() {
		for _, h := range p.Hosts {
			if h != strings.ToLower(h) {
				t.Errorf("%s: host %q not lower-case", p.ID, h)
			}
		}
		if p.DefaultPath != "" && (!strings.HasPrefix(p.DefaultPath, "/") || strings.HasSuffix(p.DefaultPath, "/")) {
			t.Errorf("%s: default path %q must start and not end with /", p.ID, p.DefaultPath)
		}
		for _, r := range p.Errors {
			switch r.Class {
			case "invalid_key", "key_banned", "no_quota", "rate_limited", "region_blocked",
				"model_not_found", "upstream_unreachable", "upstream_incompatible":
			default:
				t.Errorf("%s: error rule with unknown class %q", p.ID, r.Class)
			}
			for _, s := range r.Contains {
				if s != strings.ToLower(s) {
					t.Errorf("%s: contains pattern %q must be lower-case", p.ID, s)
				}
			}
		}
		for _, m := range p.Models {
			if m.Retired && m.Successor == "" && p.ID != "qianfan" {
				t.Errorf("%s: retired model %q without successor", p.ID, m.ID)
			}
		}
	}
}

func TestParseRejectsBrokenData(t *testing.T) {
	for name, data := range map[string]string{
		"syntax":         `{`,
		"no id":          `{"providers":[{"name":"x"}]}`,
		"no generic":     `{"providers":[{"id":"x"}]}`,
		"dup":            `{"providers":[{"id":"openai_compatible"},{"id":"openai_compatible"}]}`,
		"bad successor":  `{"providers":[{"id":"openai_compatible","models":[{"id":"a","retired":true,"successor":"b"}]}]}`,
		"bad key regexp": `{"providers":[{"id":"openai_compatible"}],"key_hints":[{"pattern":"(","provider":"openai_compatible"}]}`,
		"bad key prov":   `{"providers":[{"id":"openai_compatible"}],"key_hints":[{"pattern":"^x","provider":"nope"}]}`,
		"no surfaces":    `{"providers":[{"id":"x"},{"id":"openai_compatible"}]}`,
		"surface path":   `{"providers":[{"id":"x","surfaces":[{"id":"a","hosts":["h"],"openai":"v1/"}]},{"id":"openai_compatible"}]}`,
		"surface host":   `{"providers":[{"id":"x","surfaces":[{"id":"a","hosts":["H"],"openai":"/v1"}]},{"id":"openai_compatible"}]}`,
		"region typo":    `{"providers":[{"id":"x","surfaces":[{"id":"a","region":"cn","hosts":["h"],"openai":"/v1"}],"models":[{"id":"m","regions":["cm"]}]},{"id":"openai_compatible"}]}`,
		"plan typo":      `{"providers":[{"id":"x","surfaces":[{"id":"a","plan":"coding","hosts":["h"],"openai":"/v1"}],"models":[{"id":"m","plans":["codin"]}]},{"id":"openai_compatible"}]}`,
	} {
		if _, err := Parse([]byte(data)); err == nil {
			t.Errorf("%s: Parse accepted broken data", name)
		}
	}
}

func TestAnthropicBaseFor(t *testing.T) {
	c := Default()
	cases := []struct{ id, base, want string }{
		{"deepseek", "https://api.deepseek.com", "https://api.deepseek.com/anthropic"},
		{"kimi", "https://api.moonshot.ai/v1", "https://api.moonshot.ai/anthropic"},
		{"glm", "https://api.z.ai/api/paas/v4", "https://api.z.ai/api/anthropic"},
		{"qwen", "https://dashscope-intl.aliyuncs.com/compatible-mode/v1", "https://dashscope-intl.aliyuncs.com/apps/anthropic"},
		{"stepfun", "https://api.stepfun.ai/v1", "https://api.stepfun.ai"},
		{"minimax", "http://127.0.0.1:9/minimax/v1", "http://127.0.0.1:9/minimax/anthropic"},
		{"ark", "https://ark.cn-beijing.volces.com/api/v3", "https://ark.cn-beijing.volces.com/api/compatible"},
		{"qianfan", "https://qianfan.baidubce.com/v2", ""},
		{"qianfan", "https://mirror.example/qianfan/v2/coding", "https://mirror.example/qianfan/anthropic/coding"},
		{"ark", "http://127.0.0.1:9/ark/api/coding/v3", "http://127.0.0.1:9/ark/api/coding"},
		{"kimi_coding", "http://127.0.0.1:9/kimi_coding/coding/v1", "http://127.0.0.1:9/kimi_coding/coding"},
	}
	for _, tc := range cases {
		p, _ := c.Provider(tc.id)
		if got := p.AnthropicBaseFor(tc.base); got != tc.want {
			t.Errorf("%s AnthropicBaseFor(%q) = %q, want %q", tc.id, tc.base, got, tc.want)
		}
	}
}
