// Package catalog knows the Chinese LLM providers that cn-relay-manager imports: their
// hosts, default API paths, Anthropic-compatible bases, key shapes, model ids (with
// aliases and retired names) and provider-specific error patterns. The data lives in the
// embedded providers.json (sourced from docs/providers.md) so that it can be reviewed and
// updated without touching code.
package catalog

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
)

// OpenAICompatible is the id of the generic provider used for unknown hosts (relays).
const OpenAICompatible = "openai_compatible"

//go:embed providers.json
var providersJSON []byte

// Model is one model id of a provider.
type Model struct {
	ID         string   `json:"id"`
	Aliases    []string `json:"aliases,omitempty"` // other spellings that mean this model; a trailing "*" matches a prefix
	Retired    bool     `json:"retired,omitempty"` // no longer served; requests are rewritten to Successor
	Successor  string   `json:"successor,omitempty"`
	Chat       bool     `json:"chat"`                 // usable with chat/completions
	Deprecated bool     `json:"deprecated,omitempty"` // still served, accepted when asked for, never picked by default
}

// ErrorRule maps a provider error answer to a failure class (the string value of a
// failure.Class). A rule matches when every non-empty criterion matches: Status lists HTTP
// statuses, Codes the provider's business/error codes (also found as "(NNNN)" in messages),
// Contains lower-case substrings of the code/type/message text.
type ErrorRule struct {
	Status    []int    `json:"status,omitempty"`
	Codes     []string `json:"codes,omitempty"`
	Contains  []string `json:"contains,omitempty"`
	Class     string   `json:"class"`
	Retryable bool     `json:"retryable,omitempty"`
	Note      string   `json:"note,omitempty"`
}

// Provider is one catalog entry.
type Provider struct {
	ID            string   `json:"id"`
	Name          string   `json:"name"`
	Hosts         []string `json:"hosts"`          // lower-case hostnames; "*" matches any run of characters
	DefaultPath   string   `json:"default_path"`   // path the OpenAI-compatible base ends with
	AnthropicBase string   `json:"anthropic_base"` // documented Anthropic-compatible base, "" if none
	KeyPrefixes   []string `json:"key_prefixes,omitempty"`
	Models        []Model  `json:"models"`
	CaseSensitive bool     `json:"case_sensitive,omitempty"`

	// HostPaths overrides DefaultPath for particular hosts (e.g. DashScope Coding Plan).
	HostPaths map[string]string `json:"host_paths,omitempty"`
	// PathFixes rewrites known wrong-but-common paths (e.g. open.bigmodel.cn/v1).
	PathFixes map[string]string `json:"path_fixes,omitempty"`
	// LegacyHosts are hosts that are shut down or unsupported, with the reason.
	LegacyHosts map[string]string `json:"legacy_hosts,omitempty"`
	// Responses says whether POST {base}/responses is documented.
	Responses bool `json:"responses,omitempty"`
	// ResponsesModels restricts /responses to these models when non-empty.
	ResponsesModels []string `json:"responses_models,omitempty"`
	// Passthrough is a regexp of model ids passed through unchecked (Ark endpoint ids).
	Passthrough string `json:"passthrough,omitempty"`
	// ListsModels is false when GET {base}/models is not offered or unreliable.
	ListsModels bool `json:"lists_models"`
	// Errors are provider-specific classification rules, tried in order before generic ones.
	Errors []ErrorRule `json:"errors,omitempty"`

	passthrough *regexp.Regexp
}

// AnthropicPath returns the path of the provider's Anthropic base (the part a client
// appends "/v1/messages" to), and whether the provider has one. It lets callers build the
// Anthropic base for any host that serves this provider, e.g. a simulator or a mirror.
func (p *Provider) AnthropicPath() (string, bool) {
	if p.AnthropicBase == "" {
		return "", false
	}
	u, err := url.Parse(p.AnthropicBase)
	if err != nil {
		return "", false
	}
	return strings.TrimRight(u.Path, "/"), true
}

// AnthropicBaseFor derives the Anthropic base that belongs to an OpenAI-compatible base of
// this provider: the default path is cut off and the Anthropic path appended. It returns ""
// when the provider has no Anthropic endpoint.
func (p *Provider) AnthropicBaseFor(openAIBase string) string {
	ap, ok := p.AnthropicPath()
	if !ok {
		return ""
	}
	root := strings.TrimRight(openAIBase, "/")
	if p.DefaultPath != "" && strings.HasSuffix(root, p.DefaultPath) {
		root = strings.TrimSuffix(root, p.DefaultPath)
	} else {
		for _, hp := range p.HostPaths {
			if hp != "" && strings.HasSuffix(root, hp) {
				root = strings.TrimSuffix(root, hp)
				break
			}
		}
	}
	return root + ap
}

// Model returns the catalog model with this exact id.
func (p *Provider) Model(id string) (*Model, bool) {
	for i := range p.Models {
		if p.Models[i].ID == id {
			return &p.Models[i], true
		}
	}
	return nil, false
}

// SupportsResponses reports whether /responses is documented for model (any model when
// the provider does not restrict it).
func (p *Provider) SupportsResponses(model string) bool {
	if !p.Responses {
		return false
	}
	if len(p.ResponsesModels) == 0 {
		return true
	}
	for _, m := range p.ResponsesModels {
		if strings.EqualFold(m, model) {
			return true
		}
	}
	return false
}

// KeyHint is one key-shape rule of providers.md §12.2, tried in file order.
type KeyHint struct {
	Pattern  string `json:"pattern"`
	Provider string `json:"provider"`
	re       *regexp.Regexp
}

// Catalog is the parsed provider catalog. It is read-only after construction and safe for
// concurrent use.
type Catalog struct {
	providers []Provider
	byID      map[string]int
	keyHints  []KeyHint
}

type file struct {
	Providers []Provider `json:"providers"`
	KeyHints  []KeyHint  `json:"key_hints"`
}

var (
	defaultOnce sync.Once
	defaultCat  *Catalog
)

// Default returns the catalog parsed from the embedded providers.json. The file is
// checked by tests, so a parse failure is a build defect and panics.
func Default() *Catalog {
	defaultOnce.Do(func() {
		c, err := Parse(providersJSON)
		if err != nil {
			panic(fmt.Sprintf("catalog: embedded providers.json is broken: %v", err))
		}
		defaultCat = c
	})
	return defaultCat
}

// Parse builds a catalog from JSON in the providers.json format and validates it.
func Parse(data []byte) (*Catalog, error) {
	var f file
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("parse catalog: %w", err)
	}
	c := &Catalog{byID: map[string]int{}}
	for i := range f.Providers {
		p := f.Providers[i]
		if p.ID == "" {
			return nil, fmt.Errorf("parse catalog: provider #%d has no id", i)
		}
		if _, dup := c.byID[p.ID]; dup {
			return nil, fmt.Errorf("parse catalog: duplicate provider %q", p.ID)
		}
		if p.Passthrough != "" {
			re, err := regexp.Compile(p.Passthrough)
			if err != nil {
				return nil, fmt.Errorf("parse catalog: provider %q passthrough: %w", p.ID, err)
			}
			p.passthrough = re
		}
		if err := validateModels(&p); err != nil {
			return nil, err
		}
		c.byID[p.ID] = len(c.providers)
		c.providers = append(c.providers, p)
	}
	if _, ok := c.byID[OpenAICompatible]; !ok {
		return nil, fmt.Errorf("parse catalog: provider %q missing", OpenAICompatible)
	}
	for i, h := range f.KeyHints {
		re, err := regexp.Compile(h.Pattern)
		if err != nil {
			return nil, fmt.Errorf("parse catalog: key hint #%d: %w", i, err)
		}
		if _, ok := c.byID[h.Provider]; !ok {
			return nil, fmt.Errorf("parse catalog: key hint #%d names unknown provider %q", i, h.Provider)
		}
		h.re = re
		c.keyHints = append(c.keyHints, h)
	}
	return c, nil
}

func validateModels(p *Provider) error {
	seen := map[string]bool{}
	for _, m := range p.Models {
		if m.ID == "" {
			return fmt.Errorf("parse catalog: provider %q has a model without id", p.ID)
		}
		if seen[m.ID] {
			return fmt.Errorf("parse catalog: provider %q lists model %q twice", p.ID, m.ID)
		}
		seen[m.ID] = true
	}
	for _, m := range p.Models {
		if m.Successor == "" {
			continue
		}
		s, ok := p.Model(m.Successor)
		if !ok || s.Retired {
			return fmt.Errorf("parse catalog: provider %q model %q: successor %q is not a current model", p.ID, m.ID, m.Successor)
		}
	}
	return nil
}

// Providers returns a copy of all providers in catalog order.
func (c *Catalog) Providers() []Provider {
	return append([]Provider(nil), c.providers...)
}

// Provider returns the provider with this id.
func (c *Catalog) Provider(id string) (*Provider, bool) {
	i, ok := c.byID[id]
	if !ok {
		return nil, false
	}
	p := c.providers[i]
	return &p, true
}

// KeyHints returns the key-shape rules in the order they are tried.
func (c *Catalog) KeyHints() []KeyHint {
	return append([]KeyHint(nil), c.keyHints...)
}
