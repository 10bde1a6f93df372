package catalog

import (
	"net/url"
	"strings"
)

// Detection is the provider a base URL and key most likely belong to.
type Detection struct {
	ProviderID string
	By         string // "host", "key_hint", "hint" or "default"
}

// Detect decides the provider following providers.md §12.3: the host wins; when the host
// is unknown, an explicit hint (a provider id or name) is trusted next; the key shape is
// only a weak hint because relays issue sk- keys indistinguishable from DeepSeek/Kimi;
// otherwise the upstream is treated as a generic OpenAI-compatible relay.
func (c *Catalog) Detect(baseURL, apiKey, hint string) Detection {
	if host := c.hostOf(baseURL); host != "" {
		if p := c.providerForHost(host); p != nil && p.ID != OpenAICompatible {
			return Detection{ProviderID: p.ID, By: "host"}
		}
	}
	if id, ok := c.providerByHint(hint); ok {
		return Detection{ProviderID: id, By: "hint"}
	}
	if id, ok := c.providerByKey(apiKey); ok {
		return Detection{ProviderID: id, By: "key_hint"}
	}
	return Detection{ProviderID: OpenAICompatible, By: "default"}
}

// hostOf extracts the lower-case hostname, tolerating inputs NormalizeURL would reject
// (detection should still work for a URL with a stray query string).
func (c *Catalog) hostOf(raw string) string {
	if n, err := c.NormalizeURL(raw); err == nil {
		return n.Host
	}
	s := strings.TrimSpace(raw)
	if s == "" {
		return ""
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

// providerByHint accepts a provider id or name, case-insensitively, plus a few common
// spellings users type ("moonshot", "zhipu", "dashscope", ...).
func (c *Catalog) providerByHint(hint string) (string, bool) {
	h := strings.ToLower(strings.TrimSpace(hint))
	if h == "" {
		return "", false
	}
	if _, ok := c.byID[h]; ok {
		return h, true
	}
	for _, p := range c.providers {
		if strings.EqualFold(p.Name, h) {
			return p.ID, true
		}
	}
	if id, ok := hintSynonyms[h]; ok {
		if _, known := c.byID[id]; known {
			return id, true
		}
	}
	return "", false
}

var hintSynonyms = map[string]string{
	"moonshot": "kimi", "moonshotai": "kimi", "kimi-code": "kimi_coding", "kimi_for_coding": "kimi_coding",
	"zhipu": "glm", "zhipuai": "glm", "bigmodel": "glm", "z.ai": "glm", "zai": "glm",
	"dashscope": "qwen", "alibaba": "qwen", "aliyun": "qwen", "bailian": "qwen", "model_studio": "qwen",
	"volcengine": "ark", "doubao": "ark", "byteplus": "ark", "volces": "ark",
	"baidu": "qianfan", "ernie": "qianfan", "tencent": "tokenhub", "hunyuan": "tokenhub",
	"step": "stepfun", "xiaomi": "mimo", "openai": OpenAICompatible, "relay": OpenAICompatible,
	"custom": OpenAICompatible, "siliconcloud": "siliconflow",
}

// providerByKey applies the key-shape rules (§12.2) in order.
func (c *Catalog) providerByKey(key string) (string, bool) {
	k := strings.TrimSpace(key)
	if k == "" {
		return "", false
	}
	for _, h := range c.keyHints {
		if h.re.MatchString(k) {
			return h.Provider, true
		}
	}
	return "", false
}
