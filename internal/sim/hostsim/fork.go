package hostsim

import (
	"sort"
	"strings"
)

// forkRegistry replaces deprecated model ids like the fork's model registry.
var forkRegistry = map[string]string{"deepseek-chat": "deepseek-v4-flash", "deepseek-reasoner": "deepseek-v4-flash"}

func registryTarget(id string) string {
	if r, ok := forkRegistry[id]; ok {
		return r
	}
	return id
}

// providerOf is the registry provider of a model ("" = unknown to the
// fork's registry, and then omitted).
func providerOf(a *account, model string) string {
	switch {
	case a.platform != "protocol_gateway":
		return a.platform
	case strings.HasPrefix(model, "deepseek"):
		return "deepseek"
	case strings.HasPrefix(model, "gpt"):
		return "openai"
	}
	return ""
}

func scopeEntry(a *account, display, target string) map[string]any {
	vis := "direct"
	if display != target {
		vis = "alias"
	}
	e := map[string]any{"display_model_id": display, "target_model_id": target, "visibility_mode": vis}
	if p := providerOf(a, target); p != "" {
		e["provider"] = p
	}
	return e
}

// forkInitExtra models model_scope_v2: extra without a scope drops
// credentials.model_mapping; a scope derives the mapping (through the
// registry); a plain mapping gets a scope added.
func (s *Server) forkInitExtra(a *account, reqExtra map[string]any) {
	mm := a.mapping()
	var entries []any
	scope, hasScope := reqExtra["model_scope_v2"].(map[string]any)
	switch {
	case hasScope:
		newMap := map[string]any{}
		list, _ := scope["entries"].([]any)
		for _, e := range list {
			em, _ := e.(map[string]any)
			d, t := str(em, "display_model_id"), str(em, "target_model_id")
			if d == "" {
				continue
			}
			if t == "" {
				t = d
			}
			newMap[d] = registryTarget(t)
			entries = append(entries, scopeEntry(a, d, t))
		}
		a.credentials["model_mapping"] = newMap
	case reqExtra != nil:
		delete(a.credentials, "model_mapping")
	default:
		keys := make([]string, 0, len(mm))
		for k := range mm {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		newMap := map[string]any{}
		for _, d := range keys {
			t := registryTarget(mm[d])
			entries = append(entries, scopeEntry(a, d, t))
			newMap[d] = t
		}
		if a.platform != "deepseek" && len(keys) > 0 {
			a.credentials["model_mapping"] = newMap
		}
	}
	extra := map[string]any{}
	for k, v := range reqExtra {
		extra[k] = v
	}
	if entries != nil {
		policy := "mapping"
		if hasScope {
			if p := str(scope, "policy_mode"); p != "" {
				policy = p
			}
		}
		extra["model_scope_v2"] = map[string]any{"policy_mode": policy, "entries": entries}
	}
	if a.platform == "openai" {
		extra["image_protocol_mode"] = "native"
	}
	if a.platform == "protocol_gateway" {
		extra["gateway_protocol"] = a.gatewayProtocol
		extra["gateway_accepted_protocols"] = []any{a.gatewayProtocol}
		extra["gateway_openai_image_protocol_mode"] = "native"
		if entries != nil {
			extra["model_probe_snapshot"] = s.probeSnapshot(entries, a.mapping())
		}
	}
	if len(extra) > 0 {
		a.extra = extra
	}
}

// probeSnapshot is the fork's model_scope_preview snapshot of a gateway account.
func (s *Server) probeSnapshot(entries []any, mm map[string]string) map[string]any {
	now := s.now().UTC().Format("2006-01-02T15:04:05Z")
	var snap []any
	models := []any{}
	seen := map[string]bool{}
	for _, e := range entries {
		em := e.(map[string]any)
		snap = append(snap, map[string]any{"availability_state": "unknown", "display_model_id": em["display_model_id"],
			"source": "model_scope_preview", "stale_state": "unverified", "target_model_id": em["target_model_id"], "updated_at": now})
		if t := mm[em["display_model_id"].(string)]; t != "" && !seen[t] {
			seen[t] = true
			models = append(models, t)
		}
	}
	return map[string]any{"entries": snap, "models": models, "probe_source": "model_scope_preview", "source": "model_scope_preview", "updated_at": now}
}
