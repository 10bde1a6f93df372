package catalog

import (
	"reflect"
	"strings"
	"testing"
)

func TestResolveModelsTable(t *testing.T) {
	c := Default()
	cases := []struct {
		provider  string
		req       string
		available []string
		want      string
		method    string
	}{
		// DeepSeek.
		{"deepseek", "deepseek-flash", nil, "deepseek-flash", MethodExact},
		{"deepseek", "deepseek-v4-flash", nil, "deepseek-flash", MethodAlias},
		{"deepseek", "deepseek-v4-flash-vision-exp", nil, "deepseek-flash", MethodAlias},
		{"deepseek", "deepseek-v4.1-flash", nil, "deepseek-flash", MethodAlias},
		{"deepseek", "deepseek-pro", nil, "deepseek-v4-pro", MethodAlias},
		{"deepseek", "deepseek-ai/DeepSeek-V4-Pro", nil, "deepseek-v4-pro", MethodAlias},
		{"deepseek", "deepseek-chat", nil, "deepseek-flash", MethodRetired},
		{"deepseek", "deepseek-v3", nil, "deepseek-flash", MethodRetired},
		{"deepseek", "deepseek-v3.2", nil, "deepseek-flash", MethodRetired},
		{"deepseek", "DeepSeek-V3", nil, "deepseek-flash", MethodRetired},
		{"deepseek", "deepseek-reasoner", nil, "deepseek-flash", MethodRetired},
		{"deepseek", "deepseek-r1", nil, "deepseek-flash", MethodRetired},
		{"deepseek", "deepseek-chat", []string{"deepseek-flash", "deepseek-v4-pro"}, "deepseek-flash", MethodRetired},
		{"deepseek", "deepseek-flsh", nil, "deepseek-flash", MethodFuzzy},
		{"deepseek", "gpt-4o", nil, "", MethodUnresolved},
		// Kimi.
		{"kimi", "kimi-k2.6", nil, "kimi-k2.6", MethodExact},
		{"kimi", "Kimi-K2.6 ", nil, "kimi-k2.6", MethodCase},
		{"kimi", "kimi-k2-6", nil, "kimi-k2.6", MethodSeparator},
		{"kimi", "kimi k2.6", nil, "kimi-k2.6", MethodSeparator},
		{"kimi", "kimi-k2-7-code", nil, "kimi-k2.7-code", MethodSeparator},
		{"kimi", "kimi-k2.7", nil, "kimi-k2.7-code", MethodAlias},
		{"kimi", "kimi-k3-preview", nil, "kimi-k3", MethodAlias},
		{"kimi", "moonshotai/kimi-k3", nil, "kimi-k3", MethodAlias},
		{"kimi", "moonshotai/Kimi-K2.6", nil, "kimi-k2.6", MethodAlias},
		{"kimi", "kimi-k2", nil, "kimi-k2.6", MethodRetired},
		{"kimi", "kimi-k2-0905-preview", nil, "kimi-k2.6", MethodRetired},
		{"kimi", "kimi-k2-0711-preview", nil, "kimi-k2.6", MethodRetired},
		{"kimi", "kimi-k2-turbo-preview", nil, "kimi-k2.6", MethodRetired},
		{"kimi", "kimi-k2-thinking", nil, "kimi-k2.6", MethodRetired},
		{"kimi", "kimi-k2-thinking-turbo", nil, "kimi-k2.6", MethodRetired},
		{"kimi", "kimi-latest", nil, "kimi-k2.6", MethodRetired},
		{"kimi", "kimi-k2.5", nil, "kimi-k2.6", MethodRetired},
		{"kimi", "kimi-thinking-preview", nil, "kimi-k2.6", MethodRetired},
		{"kimi", "moonshot-v1-8k", nil, "moonshot-v1-8k", MethodExact},
		{"kimi", "kimi-k2-0905-preview", []string{"kimi-k2.6", "kimi-k3"}, "kimi-k2.6", MethodRetired},
		{"kimi", "kimi-k2.7-code", []string{"kimi-k2.6", "kimi-k3"}, "", MethodUnresolved},
		{"kimi_coding", "k2p6", nil, "kimi-for-coding", MethodAlias},
		// MiniMax: exact case matters.
		{"minimax", "MiniMax-M3", nil, "MiniMax-M3", MethodExact},
		{"minimax", "minimax-m3", nil, "MiniMax-M3", MethodCase},
		{"minimax", "Minimax-M3", nil, "MiniMax-M3", MethodCase},
		{"minimax", "MiniMaxAI/MiniMax-M3", nil, "MiniMax-M3", MethodAlias},
		{"minimax", "minimax/minimax-m3", nil, "MiniMax-M3", MethodAlias},
		{"minimax", "minimax-m2.7", nil, "MiniMax-M2.7", MethodCase},
		{"minimax", "minimax-m2", nil, "MiniMax-M2", MethodCase},
		{"minimax", "MiniMax-M2.1-lightning", nil, "MiniMax-M2.1-highspeed", MethodAlias},
		// GLM.
		{"glm", "GLM-5.3", nil, "glm-5.3", MethodCase},
		{"glm", "z-ai/glm-5.3", nil, "glm-5.3", MethodAlias},
		{"glm", "zai-org/GLM-5.3", nil, "glm-5.3", MethodAlias},
		{"glm", "glm-5.2[1m]", nil, "glm-5.2", MethodExact},
		{"glm", "GLM-4.6", nil, "glm-4.6", MethodCase},
		{"glm", "glm4.6", nil, "glm-4.6", MethodSeparator},
		{"glm", "glm-4-7-251222", nil, "glm-4.7", MethodAlias},
		// A different version is never a typo.
		{"glm", "glm-5.4", nil, "", MethodUnresolved},
		{"qwen", "qwen3.9-max", nil, "", MethodUnresolved},
		// Qwen.
		{"qwen", "Qwen3.8-Max", nil, "qwen3.8-max", MethodCase},
		{"qwen", "alibaba/qwen3.8-max", nil, "qwen3.8-max", MethodAlias},
		{"qwen", "qwen-3-max", nil, "qwen3-max", MethodSeparator},
		{"qwen", "Qwen3-Max", nil, "qwen3-max", MethodCase},
		{"qwen", "Qwen/Qwen3-235B-A22B", nil, "qwen3-235b-a22b", MethodAlias},
		// StepFun.
		{"stepfun", "step-3", nil, "step-3.7-flash", MethodRetired},
		{"stepfun", "stepfun/step-3.5-flash", nil, "step-3.5-flash", MethodAlias},
		{"stepfun", "step-1-8k", nil, "step-1o-turbo-vision", MethodRetired},
		{"stepfun", "step-1-32k", nil, "step-1o-turbo-vision", MethodRetired},
		{"stepfun", "step-1v-8k", nil, "step-1o-turbo-vision", MethodRetired},
		{"stepfun", "step-1v-32k", nil, "step-1o-turbo-vision", MethodRetired},
		{"stepfun", "step-2-mini", nil, "step-1o-turbo-vision", MethodRetired},
		{"stepfun", "step-2-16k", nil, "step-1o-turbo-vision", MethodRetired},
		{"stepfun", "step-1o-vision-32k", nil, "step-1o-turbo-vision", MethodRetired},
		{"stepfun", "step-1x-medium", nil, "step-2x-large", MethodRetired},
		// Ark.
		{"ark", "doubao-seed-2.1-pro", nil, "doubao-seed-2-1-pro-260628", MethodAlias},
		{"ark", "doubao-seed-2.0-pro", nil, "doubao-seed-2-0-pro-260215", MethodAlias},
		{"ark", "deepseek-v4-flash", nil, "deepseek-v4-flash-ga-260731", MethodAlias},
		{"ark", "deepseek-v4-pro", nil, "deepseek-v4-pro-ga-260813", MethodAlias},
		{"ark", "Doubao-pro-32k", nil, "doubao-seed-2-1-pro-260628", MethodRetired},
		{"ark", "doubao-pro-4k", nil, "doubao-seed-2-1-pro-260628", MethodRetired},
		{"ark", "ep-20260101123456-abcde", nil, "ep-20260101123456-abcde", MethodExact},
		// Qianfan.
		{"qianfan", "ernie-5.1-preview", nil, "ernie-5.1", MethodAlias},
		{"qianfan", "ernie-bot-4", nil, "ernie-4.0-8k", MethodAlias},
		{"qianfan", "ERNIE-Bot-turbo", nil, "", MethodUnresolved},
		// TokenHub.
		{"tokenhub", "hunyuan-turbos-latest", nil, "hy3", MethodRetired},
		{"tokenhub", "hunyuan-t1-latest", nil, "hy3", MethodRetired},
		{"tokenhub", "hunyuan-lite", nil, "hy3", MethodAlias},
		{"tokenhub", "MiniMax-M2.7", nil, "minimax-m2.7", MethodCase},
		// SiliconFlow: org/Model ids.
		{"siliconflow", "deepseek-v4-pro", nil, "deepseek-ai/DeepSeek-V4-Pro", MethodAlias},
		{"siliconflow", "kimi-k2.6", nil, "moonshotai/Kimi-K2.6", MethodAlias},
		{"siliconflow", "qwen3.6-27b", nil, "Qwen/Qwen3.6-27B", MethodAlias},
		// Relays: unknown provider.
		{OpenAICompatible, "anything-goes", nil, "anything-goes", MethodExact},
		{OpenAICompatible, "DeepSeek-V4-Pro", []string{"deepseek-v4-pro", "glm-5.1"}, "deepseek-v4-pro", MethodCase},
		{OpenAICompatible, "deepseek-v4-pro", []string{"deepseek-ai/DeepSeek-V4-Pro"}, "deepseek-ai/DeepSeek-V4-Pro", MethodAlias},
		{OpenAICompatible, "FOO-1", []string{"Foo-1", "foo-1"}, "", MethodAmbiguous},
		{OpenAICompatible, "model-ab", []string{"model-aa", "model-ac"}, "", MethodAmbiguous},
		{OpenAICompatible, "gpt-5", []string{"glm-5.1"}, "", MethodUnresolved},
		{"no-such-provider", "x-model", nil, "x-model", MethodExact},
	}
	for _, tc := range cases {
		res := c.ResolveModels(tc.provider, []string{tc.req}, tc.available)
		if len(res.Corrections) != 1 {
			t.Errorf("%s %q: %d corrections", tc.provider, tc.req, len(res.Corrections))
			continue
		}
		got := res.Corrections[0]
		if got.Resolved != tc.want || got.Method != tc.method || got.Requested != tc.req {
			t.Errorf("%s %q (available %v) = %+v, want %q by %q", tc.provider, tc.req, tc.available, got, tc.want, tc.method)
		}
		if tc.want == "" {
			if len(res.Models) != 0 || len(res.Unresolved) != 1 || res.Unresolved[0] != strings.TrimSpace(tc.req) {
				t.Errorf("%s %q: Models %v Unresolved %v", tc.provider, tc.req, res.Models, res.Unresolved)
			}
		} else if !reflect.DeepEqual(res.Models, []string{tc.want}) {
			t.Errorf("%s %q: Models %v", tc.provider, tc.req, res.Models)
		}
	}
}

// Every alias and retired name in the catalog resolves to its model (data-driven, so new
// catalog entries are covered automatically).
func TestResolveEveryCatalogName(t *testing.T) {
	c := Default()
	for _, p := range c.Providers() {
		for _, m := range p.Models {
			names := append([]string{m.ID}, m.Aliases...)
			want := m.ID
			if m.Retired {
				want = m.Successor
			}
			for _, name := range names {
				if strings.HasSuffix(name, "*") {
					name = strings.TrimSuffix(name, "*") + "something"
				}
				res := c.ResolveModels(p.ID, []string{name}, nil)
				got := res.Corrections[0]
				if got.Resolved != want {
					t.Errorf("%s: %q resolved to %q by %s, want %q", p.ID, name, got.Resolved, got.Method, want)
				}
			}
		}
	}
}

func TestResolveModelsDefaults(t *testing.T) {
	c := Default()
	cases := []struct {
		provider  string
		available []string
		want      []string
		smoke     string
	}{
		{"deepseek", []string{"deepseek-flash", "deepseek-v4-pro"}, []string{"deepseek-flash", "deepseek-v4-pro"}, "deepseek-flash"},
		{"deepseek", nil, []string{"deepseek-flash", "deepseek-v4-pro"}, "deepseek-flash"},
		{"kimi", []string{"moonshot-v1-8k", "kimi-k2.6", "kimi-k3"}, []string{"kimi-k3", "kimi-k2.6"}, "kimi-k3"},
		{"minimax", []string{"minimax-m3"}, []string{"minimax-m3"}, "minimax-m3"},
		{OpenAICompatible, []string{"text-embedding-3", "bge-m3", "gpt-x", "rerank-1", "glm-5.1"}, []string{"gpt-x", "glm-5.1"}, "gpt-x"},
		{OpenAICompatible, nil, nil, ""},
		{"mimo", []string{"mimo-v2"}, []string{"mimo-v2"}, "mimo-v2"},
		{"deepseek", []string{"some-relay-model"}, []string{"some-relay-model"}, "some-relay-model"},
	}
	for _, tc := range cases {
		res := c.ResolveModels(tc.provider, nil, tc.available)
		if !reflect.DeepEqual(res.Models, tc.want) || res.SmokeModel != tc.smoke {
			t.Errorf("%s defaults (available %v) = %v smoke %q, want %v smoke %q", tc.provider, tc.available, res.Models, res.SmokeModel, tc.want, tc.smoke)
		}
		for _, corr := range res.Corrections {
			if corr.Method != MethodDefault || corr.Requested != "" {
				t.Errorf("%s default correction %+v", tc.provider, corr)
			}
		}
	}
}

func TestResolveModelsMixed(t *testing.T) {
	c := Default()
	res := c.ResolveModels("stepfun", []string{" ", "step-2x-large", "step-3", "step-3.7-flash", "nonsense-model-xyz"}, nil)
	if want := []string{"step-2x-large", "step-3.7-flash"}; !reflect.DeepEqual(res.Models, want) {
		t.Errorf("Models = %v, want %v (unique, request order)", res.Models, want)
	}
	if res.SmokeModel != "step-3.7-flash" {
		t.Errorf("SmokeModel = %q, want the first chat model (step-2x-large is an image model)", res.SmokeModel)
	}
	if !reflect.DeepEqual(res.Unresolved, []string{"nonsense-model-xyz"}) {
		t.Errorf("Unresolved = %v", res.Unresolved)
	}
	if len(res.Corrections) != 4 {
		t.Errorf("blank names must be skipped, got %d corrections", len(res.Corrections))
	}
}

func TestLevenshtein(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"deepseek-flsh", "deepseek-flash", 1}} {
		if got := levenshtein(tc.a, tc.b); got != tc.d {
			t.Errorf("levenshtein(%q,%q) = %d, want %d", tc.a, tc.b, got, tc.d)
		}
	}
}

func TestIsChatModel(t *testing.T) {
	c := Default()
	for _, tc := range []struct {
		provider, id string
		want         bool
	}{
		{"stepfun", "step-2x-large", false},
		{"stepfun", "step-3.7-flash", true},
		{"deepseek", "DEEPSEEK-FLASH", true},
		{OpenAICompatible, "text-embedding-v4", false},
		{OpenAICompatible, "some-llm", true},
		{"nope", "bge-m3", false},
	} {
		if got := c.IsChatModel(tc.provider, tc.id); got != tc.want {
			t.Errorf("IsChatModel(%s, %s) = %v", tc.provider, tc.id, got)
		}
	}
}
