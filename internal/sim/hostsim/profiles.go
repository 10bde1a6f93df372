package hostsim

import (
	"embed"
	"encoding/json"
	"fmt"
	"strings"
)

//go:embed templates/*.json
var templateFS embed.FS

// profile holds the per-version switches and the recorded object templates.
type profile struct {
	name             string
	version          string
	compliance       bool // 179: admin compliance gate and routes
	fork             bool
	groupPlatforms   map[string]bool
	rateMultRequired bool // missing rate_multiplier -> 500
	// schedulableOffOnAuthError: 179 also clears schedulable on upstream 401/402.
	schedulableOffOnAuthError bool
	nativeCN                  map[string]bool // native CN account platforms routed to chat completions
	rateLimitCooldownSeconds  int
	// line179: upstream behaviour of 0.1.179 and later (chat-path account tests, native
	// CN platforms, 404 model_not_found, compliance gate).
	line179 bool
	// allowlist: groups carry model_allowlist (0.2.3+) instead of models_list_config, and an
	// enabled allowlist gates gateway requests (404 before routing).
	allowlist bool
	keyLimits KeyLimits // zero = no limits (before 0.2.11)
	templates map[string]any
}

func loadProfile(name string) (*profile, error) {
	if name == "" {
		name = Profile179
	}
	p := &profile{name: name, version: name, rateLimitCooldownSeconds: 5}
	switch name {
	case Profile179, Profile02:
		p.line179 = true
		p.compliance = true
		p.groupPlatforms = set("anthropic openai gemini antigravity grok kimi zhipu deepseek composite")
		p.rateMultRequired = true
		p.schedulableOffOnAuthError = true
		p.nativeCN = set("deepseek kimi zhipu")
		if name == Profile02 {
			p.allowlist = true
			p.groupPlatforms = set("anthropic openai gemini antigravity grok kimi zhipu deepseek composite minimax opencode_go typesafe cline")
			p.nativeCN = set("deepseek kimi zhipu minimax")
			p.keyLimits = KeyLimits{MaxActive: 200, MaxPerHour: 60}
		}
	case Profile129:
		p.groupPlatforms = set("anthropic openai gemini antigravity")
		p.rateMultRequired = true
		p.nativeCN = set("")
	case ProfileFork:
		p.version = "0.1.321"
		p.fork = true
		p.groupPlatforms = set("anthropic openai gemini antigravity grok kiro deepseek baidu_document_ai")
		p.nativeCN = set("deepseek")
		p.rateLimitCooldownSeconds = 300
	default:
		return nil, fmt.Errorf("hostsim: unknown profile %q", name)
	}
	file := name
	if name == Profile02 {
		file = Profile179 // 0.2.x objects: the 0.1.179 recordings with the renamed group field
	}
	raw, err := templateFS.ReadFile("templates/" + file + ".json")
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &p.templates); err != nil {
		return nil, fmt.Errorf("hostsim: template %s: %w", name, err)
	}
	if p.allowlist {
		renameAllowlist(p.templates)
	}
	return p, nil
}

// renameAllowlist turns 0.1.179's group field models_list_config into 0.2.x's
// model_allowlist {"enabled": false} wherever a template carries it (groups, nested
// groups of keys), following the 0.2.3 release notes.
func renameAllowlist(v any) {
	switch t := v.(type) {
	case map[string]any:
		if _, ok := t["models_list_config"]; ok {
			delete(t, "models_list_config")
			t["model_allowlist"] = map[string]any{"enabled": false}
		}
		for _, c := range t {
			renameAllowlist(c)
		}
	case []any:
		for _, c := range t {
			renameAllowlist(c)
		}
	}
}

func set(words string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}

// tmpl returns a deep copy of the named template object (nil if the profile
// has none), ready to be overlaid with live values.
func (p *profile) tmpl(name string) map[string]any {
	t, ok := p.templates[name].(map[string]any)
	if !ok {
		return nil
	}
	return deepCopy(t).(map[string]any)
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = deepCopy(e)
		}
		return s
	default:
		return v
	}
}

// overlay sets the given values on a template copy; keys the template lacks
// are added too, so callers only pass fields every version has.
func overlay(t map[string]any, vals map[string]any) map[string]any {
	if t == nil {
		t = map[string]any{}
	}
	for k, v := range vals {
		t[k] = v
	}
	return t
}
