package catalog

import (
	"net/url"
	"strings"
)

// How a Detection was decided.
const (
	ByHost    = "host"     // the base URL's host belongs to a catalog provider
	ByHint    = "hint"     // the operator named the provider
	ByKeyHint = "key_hint" // no base URL was given; the key's shape decided
	ByDefault = "default"  // nothing known: a generic OpenAI-compatible relay
)

// Detection is the provider a base URL and key belong to.
type Detection struct {
	ProviderID string
	By         string // ByHost, ByHint, ByKeyHint or ByDefault
	// Suggested is the provider the key's shape points at when the shape did not decide:
	// the host is unknown (a relay, a look-alike domain, a private address), the operator
	// gave a hint, or a strong shape contradicts a known host. It is shown to the operator
	// and never used as the provider.
	Suggested string
	// Plan is the plan the key's shape names when it belongs to the detected provider and
	// the provider's hosts do not tell plans apart (MiniMax sk-cp- keys).
	Plan string
}

// Detect decides the provider. The host decides whenever it is known. When a base URL is
// given but its host is unknown, the answer is the operator's hint, else the generic
// openai_compatible relay: relays, look-alike domains and private addresses hand out sk-
// keys indistinguishable from DeepSeek, Kimi or SiliconFlow keys, so the key's shape is
// reported as a suggestion only. The key's shape decides only when no base URL is given.
func (c *Catalog) Detect(baseURL, apiKey, hint string) Detection {
	kh := c.keyHint(apiKey)
	urlGiven := strings.TrimSpace(baseURL) != ""
	var d Detection
	if urlGiven {
		if host := c.hostOf(baseURL); host != "" {
			if p := c.providerForHost(host); p != nil {
				d = Detection{ProviderID: p.ID, By: ByHost}
			}
		}
	}
	if d.ProviderID == "" {
		if id, ok := c.providerByHint(hint); ok {
			d = Detection{ProviderID: id, By: ByHint}
		} else if !urlGiven && kh != nil {
			d = Detection{ProviderID: kh.Provider, By: ByKeyHint}
		} else {
			d = Detection{ProviderID: OpenAICompatible, By: ByDefault}
		}
	}
	if kh == nil {
		return d
	}
	switch {
	case kh.names(d.ProviderID):
		if kh.Provider == d.ProviderID {
			d.Plan = kh.Plan
		}
	case d.By != ByHost || !kh.Weak:
		d.Suggested = kh.Provider
	}
	return d
}

// hostOf extracts the lower-case hostname, tolerating inputs NormalizeURL refuses
// (detection still names the provider of a retired host or an undocumented path).
func (c *Catalog) hostOf(raw string) string {
	if n, err := c.NormalizeURL(raw); err == nil {
		return n.Host
	}
	s := strings.Trim(strings.TrimSpace(raw), "\"'` ")
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

// keyHint returns the first key-shape rule the key matches, or nil.
func (c *Catalog) keyHint(key string) *KeyHint {
	k := strings.TrimSpace(key)
	if k == "" {
		return nil
	}
	for i := range c.keyHints {
		if c.keyHints[i].re.MatchString(k) {
			return &c.keyHints[i]
		}
	}
	return nil
}
