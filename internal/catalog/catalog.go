// Package catalog knows the Chinese LLM providers that cn-relay-manager imports: their
// surfaces (one per region and plan: the hosts, the OpenAI-compatible base path and the
// Anthropic-compatible base path on the same host), key shapes, model ids (with aliases,
// retired names and where each is served) and provider-specific error patterns. The data
// lives in the embedded providers.json so that it can be reviewed and updated without
// touching code; docs/providers.md renders it.
package catalog

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
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
	// Regions and Plans restrict where the model is served (empty = everywhere): DashScope
	// serves third-party models only in Beijing, Ark's ark-code-latest only on the Coding
	// Plan, MiniMax's Flash preview only to Token Plan keys.
	Regions []string `json:"regions,omitempty"`
	Plans   []string `json:"plans,omitempty"`
}

// Scope says where a base URL sits among a provider's surfaces, for the model lists that
// differ by region and plan. Plan "" is pay-as-you-go; Region "" is not known.
type Scope struct {
	Region string
	Plan   string
}

// servedAt reports whether the model is served in scope (always, for a nil scope) and, when
// it is not, why, in words the operator can act on.
func (m *Model) servedAt(s *Scope) (bool, string) {
	if s == nil {
		return true, ""
	}
	if len(m.Regions) > 0 && !slices.Contains(m.Regions, s.Region) {
		where := "the region of this base is not known"
		if s.Region != "" {
			where = "this base is in " + s.Region
		}
		return false, fmt.Sprintf("%s is served only in region %s; %s", m.ID, strings.Join(m.Regions, ", "), where)
	}
	if len(m.Plans) > 0 && !slices.Contains(m.Plans, s.Plan) {
		on := "pay-as-you-go"
		if s.Plan != "" {
			on = "the " + s.Plan + " plan"
		}
		return false, fmt.Sprintf("%s is served only on the %s plan; this base and key are %s", m.ID, strings.Join(m.Plans, "/"), on)
	}
	return true, ""
}

// Surface is one way in to a provider: a region and plan, the hosts that serve it, and its
// OpenAI-compatible and Anthropic-compatible base paths on those hosts. Providers that offer
// both protocols keep the two bases side by side, so a pasted Anthropic base can be mapped
// to the OpenAI base of the same region and plan.
type Surface struct {
	ID     string   `json:"id"`
	Region string   `json:"region,omitempty"`
	Plan   string   `json:"plan,omitempty"` // "" = pay-as-you-go; plan keys and PAYG keys do not work on each other's bases
	Hosts  []string `json:"hosts"`          // lower-case hostnames; "*" matches any run of characters
	// Legacy marks hosts that still answer but only with older native endpoints; they are
	// accepted when pasted and never suggested.
	Legacy bool `json:"legacy,omitempty"`
	// OpenAI is the path of the OpenAI-compatible base (clients append /chat/completions).
	OpenAI string `json:"openai"`
	// OpenAIAlso are other paths that are equally valid OpenAI bases and are kept as pasted
	// (DeepSeek answers with and without /v1).
	OpenAIAlso []string `json:"openai_also,omitempty"`
	// Anthropic is the path of the Anthropic-compatible base (clients append /v1/messages):
	// "/" is the host root, "" means none is documented.
	Anthropic string `json:"anthropic,omitempty"`
	// Fixes are wrong-but-common paths that mean OpenAI (open.bigmodel.cn/v1, DashScope's
	// native /api/v1).
	Fixes []string `json:"fixes,omitempty"`
}

// HasAnthropic reports whether the surface documents an Anthropic-compatible base.
func (s *Surface) HasAnthropic() bool { return s.Anthropic != "" }

// anthropicPath is the Anthropic base path ("" for the host root).
func (s *Surface) anthropicPath() string { return strings.TrimSuffix(s.Anthropic, "/") }

// servesHost reports whether host is one of the surface's hosts.
func (s *Surface) servesHost(host string) bool {
	for _, h := range s.Hosts {
		if hostMatch(h, host) {
			return true
		}
	}
	return false
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
	ID   string `json:"id"`
	Name string `json:"name"`
	// Surfaces lists the regions and plans in order; the first surface listing a host is
	// that host's default (what a bare host means).
	Surfaces      []Surface `json:"surfaces"`
	KeyPrefixes   []string  `json:"key_prefixes,omitempty"`
	Models        []Model   `json:"models"`
	CaseSensitive bool      `json:"case_sensitive,omitempty"`

	// Hosts are the host patterns of all surfaces, in order (derived).
	Hosts []string `json:"-"`
	// DefaultPath is the OpenAI base path of the first surface (derived).
	DefaultPath string `json:"-"`

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

// AnthropicPath returns the Anthropic base path of the provider's first surface (the part
// a client appends "/v1/messages" to; "" is the host root), and whether it has one. It lets
// callers build the Anthropic base for any host that serves this provider, e.g. a
// simulator or a mirror.
func (p *Provider) AnthropicPath() (string, bool) {
	if len(p.Surfaces) == 0 || !p.Surfaces[0].HasAnthropic() {
		return "", false
	}
	return p.Surfaces[0].anthropicPath(), true
}

// AnthropicBaseFor derives the Anthropic base that belongs to an OpenAI-compatible base of
// this provider on any host (a mirror, a simulator): the surface whose OpenAI path ends the
// base (longest first) is cut off and its Anthropic path appended. It returns "" when that
// surface has no Anthropic base.
func (p *Provider) AnthropicBaseFor(openAIBase string) string {
	root := strings.TrimRight(openAIBase, "/")
	var best *Surface
	for i := range p.Surfaces {
		s := &p.Surfaces[i]
		if strings.HasSuffix(root, s.OpenAI) && (best == nil || len(s.OpenAI) > len(best.OpenAI)) {
			best = s
		}
	}
	if best == nil || !best.HasAnthropic() {
		return ""
	}
	return strings.TrimSuffix(root, best.OpenAI) + best.anthropicPath()
}

// Surface returns the surface with this id.
func (p *Provider) Surface(id string) (*Surface, bool) {
	for i := range p.Surfaces {
		if p.Surfaces[i].ID == id {
			return &p.Surfaces[i], true
		}
	}
	return nil, false
}

// surfacesFor returns the surfaces that serve host, default first.
func (p *Provider) surfacesFor(host string) []*Surface {
	var out []*Surface
	for i := range p.Surfaces {
		if p.Surfaces[i].servesHost(host) {
			out = append(out, &p.Surfaces[i])
		}
	}
	return out
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

// KeyHint is one key-shape rule, tried in file order (more specific prefixes first). A key
// shape is only a hint: relays issue sk- keys that look exactly like DeepSeek or Kimi keys.
type KeyHint struct {
	Pattern  string `json:"pattern"`
	Provider string `json:"provider"`
	// Also lists other providers whose keys have the same shape (sk- + 32 hex digits is
	// DeepSeek or Alibaba pay-as-you-go).
	Also []string `json:"also,omitempty"`
	// Plan is the plan this key shape belongs to when the provider's hosts do not tell
	// (MiniMax sk-cp- keys are Token Plan keys on the same hosts as sk-api- keys).
	Plan string `json:"plan,omitempty"`
	// Plans are the plans whose bases take this key shape when the bases tell plans apart
	// (Alibaba sk-sp- keys: Token or Coding Plan); empty = pay-as-you-go.
	Plans []string `json:"plans,omitempty"`
	// Weak marks shapes other services share; a weak hint never contradicts a known host.
	Weak bool `json:"weak,omitempty"`
	re   *regexp.Regexp
}

// names reports whether the hint points at provider id.
func (h *KeyHint) names(id string) bool {
	return h.Provider == id || slices.Contains(h.Also, id)
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
		if err := prepareSurfaces(&p); err != nil {
			return nil, err
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
		for _, id := range h.Also {
			if _, ok := c.byID[id]; !ok {
				return nil, fmt.Errorf("parse catalog: key hint #%d names unknown provider %q", i, id)
			}
		}
		h.re = re
		c.keyHints = append(c.keyHints, h)
	}
	if err := c.validateScopes(); err != nil {
		return nil, err
	}
	return c, nil
}

// validateScopes checks that every region and plan a model is restricted to exists: a
// typo would otherwise hide the model everywhere.
func (c *Catalog) validateScopes() error {
	for _, p := range c.providers {
		regions, plans := map[string]bool{}, map[string]bool{}
		for _, s := range p.Surfaces {
			regions[s.Region], plans[s.Plan] = true, true
		}
		for _, h := range c.keyHints {
			if h.Provider == p.ID && h.Plan != "" {
				plans[h.Plan] = true
			}
		}
		for _, m := range p.Models {
			for _, r := range m.Regions {
				if !regions[r] {
					return fmt.Errorf("parse catalog: provider %q model %q: no surface is in region %q", p.ID, m.ID, r)
				}
			}
			for _, pl := range m.Plans {
				if !plans[pl] {
					return fmt.Errorf("parse catalog: provider %q model %q: no surface or key shape is on plan %q", p.ID, m.ID, pl)
				}
			}
		}
	}
	return nil
}

// prepareSurfaces checks the surfaces and derives Hosts and DefaultPath from them.
func prepareSurfaces(p *Provider) error {
	if len(p.Surfaces) == 0 && p.ID != OpenAICompatible {
		return fmt.Errorf("parse catalog: provider %q has no surfaces", p.ID)
	}
	seen := map[string]bool{}
	p.Hosts = nil
	for _, s := range p.Surfaces {
		if s.ID == "" || seen[s.ID] {
			return fmt.Errorf("parse catalog: provider %q: surface id %q empty or repeated", p.ID, s.ID)
		}
		seen[s.ID] = true
		if len(s.Hosts) == 0 {
			return fmt.Errorf("parse catalog: provider %q surface %q has no hosts", p.ID, s.ID)
		}
		paths := append([]string{s.OpenAI}, s.OpenAIAlso...)
		paths = append(paths, s.Fixes...)
		if s.Anthropic != "/" {
			paths = append(paths, s.Anthropic)
		}
		for _, pth := range paths {
			if pth != "" && (!strings.HasPrefix(pth, "/") || strings.HasSuffix(pth, "/")) {
				return fmt.Errorf("parse catalog: provider %q surface %q: path %q must start and not end with /", p.ID, s.ID, pth)
			}
		}
		for _, h := range s.Hosts {
			if h != strings.ToLower(h) || h == "" {
				return fmt.Errorf("parse catalog: provider %q surface %q: host %q must be lower-case", p.ID, s.ID, h)
			}
			if !slices.Contains(p.Hosts, h) {
				p.Hosts = append(p.Hosts, h)
			}
		}
	}
	if len(p.Surfaces) > 0 {
		p.DefaultPath = p.Surfaces[0].OpenAI
	}
	return nil
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
