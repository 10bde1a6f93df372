package catalog

import (
	"strings"
)

// Correction records how one requested model name was resolved.
type Correction struct {
	Requested string // as the user gave it
	Resolved  string // id to send upstream; "" when unresolved or ambiguous
	// Method is "exact", "case", "separator", "alias", "retired", "fuzzy", "ambiguous",
	// "unresolved" or "default" (picked because nothing was requested).
	Method string
	// Note says why a name was not resolved when the catalog knows (the model is served
	// only in another region or on another plan); "" otherwise.
	Note string
}

// Resolution is the outcome of ResolveModels.
type Resolution struct {
	Corrections []Correction
	Models      []string // unique resolved ids, in request order
	Unresolved  []string // requested names (trimmed) that could not be resolved
	SmokeModel  string   // first resolved chat model, "" if none
}

// Resolution methods.
const (
	MethodExact      = "exact"
	MethodCase       = "case"
	MethodSeparator  = "separator"
	MethodAlias      = "alias"
	MethodRetired    = "retired"
	MethodFuzzy      = "fuzzy"
	MethodAmbiguous  = "ambiguous"
	MethodUnresolved = "unresolved"
	MethodDefault    = "default"
)

// maxDefaultModels bounds the default pick for providers the catalog does not know.
const maxDefaultModels = 5

// ResolveModels resolves requested model names against every model of the provider,
// wherever it is served; ResolveModelsAt is the same for one region and plan.
func (c *Catalog) ResolveModels(providerID string, requested []string, available []string) Resolution {
	return c.ResolveModelsAt(providerID, nil, requested, available)
}

// ResolveModelsAt maps requested model names onto ids the upstream serves. available is the
// upstream's /models list; when it is empty the catalog's current models served in scope
// (nil = anywhere) stand in, and a name of a model served only elsewhere is unresolved
// with a note saying where it is served. Each name goes through exact, case-only,
// separator, alias, retired→successor and fuzzy matching, in that order; ties are reported
// as "ambiguous" rather than guessed, because sending the wrong model silently is worse
// than asking. The exact case of the upstream id is always what is returned (MiniMax and
// relays are case-sensitive).
func (c *Catalog) ResolveModelsAt(providerID string, scope *Scope, requested []string, available []string) Resolution {
	r := newResolver(c, providerID, scope, available)
	var res Resolution
	seen := map[string]bool{}
	add := func(id string) {
		if id != "" && !seen[id] {
			seen[id] = true
			res.Models = append(res.Models, id)
		}
	}
	asked := false
	for _, req := range requested {
		t := cleanName(req)
		if t == "" {
			continue
		}
		asked = true
		corr := r.resolve(req, t)
		res.Corrections = append(res.Corrections, corr)
		if corr.Resolved == "" {
			res.Unresolved = append(res.Unresolved, t)
			continue
		}
		add(corr.Resolved)
	}
	if !asked {
		for _, id := range r.defaults() {
			res.Corrections = append(res.Corrections, Correction{Resolved: id, Method: MethodDefault})
			add(id)
		}
	}
	for _, id := range res.Models {
		if r.isChat(id) {
			res.SmokeModel = id
			break
		}
	}
	return res
}

// cleanName trims whitespace and a trailing Claude Code context hint such as "[1m]"
// ("glm-5.2[1m]" → "glm-5.2").
func cleanName(s string) string {
	t := strings.TrimSpace(s)
	if strings.HasSuffix(t, "]") {
		if i := strings.LastIndexByte(t, '['); i > 0 {
			t = strings.TrimSpace(t[:i])
		}
	}
	return t
}

type resolver struct {
	prov   *Provider // nil for unknown providers
	cands  []string  // ids that may be sent
	listed bool      // cands came from the upstream
	known  bool      // the catalog has models for this provider
	// elsewhere are catalog models not served in scope, with the reason (only when the
	// catalog stands in for the upstream's list).
	elsewhere map[string]string
}

func newResolver(c *Catalog, providerID string, scope *Scope, available []string) *resolver {
	r := &resolver{}
	if p, ok := c.Provider(providerID); ok {
		r.prov = p
		r.known = len(p.Models) > 0
	}
	seen := map[string]bool{}
	for _, a := range available {
		a = strings.TrimSpace(a)
		if a != "" && !seen[a] {
			seen[a] = true
			r.cands = append(r.cands, a)
		}
	}
	r.listed = len(r.cands) > 0
	if !r.listed && r.prov != nil {
		for i := range r.prov.Models {
			m := &r.prov.Models[i]
			if m.Retired {
				continue
			}
			if ok, why := m.servedAt(scope); !ok {
				if r.elsewhere == nil {
					r.elsewhere = map[string]string{}
				}
				r.elsewhere[m.ID] = why
				continue
			}
			r.cands = append(r.cands, m.ID)
		}
	}
	return r
}

// servedElsewhere reports a name that means a catalog model not served in scope.
func (r *resolver) servedElsewhere(t string) (string, bool) {
	if len(r.elsewhere) == 0 {
		return "", false
	}
	for _, m := range r.prov.Models {
		why, ok := r.elsewhere[m.ID]
		if !ok {
			continue
		}
		hit := sepKey(m.ID) == sepKey(t)
		for _, a := range m.Aliases {
			hit = hit || (!strings.HasSuffix(a, "*") && aliasMatches(a, t))
		}
		if hit {
			return why, true
		}
	}
	return "", false
}

func (r *resolver) resolve(req, t string) Correction {
	out := func(id, method string) Correction {
		return Correction{Requested: req, Resolved: id, Method: method}
	}
	for _, c := range r.cands {
		if c == t {
			return out(c, MethodExact)
		}
	}
	if r.prov != nil && r.prov.passthrough != nil && r.prov.passthrough.MatchString(t) {
		// Ark inference endpoint ids (ep-…) are account specific and never listed.
		return out(t, MethodExact)
	}
	if !r.listed && !r.known {
		// Nothing to check against: an unknown relay without /models. Let the chat probe decide.
		return out(t, MethodExact)
	}
	if ids := r.match(func(c string) bool { return strings.EqualFold(c, t) }); len(ids) == 1 {
		return out(ids[0], MethodCase)
	} else if len(ids) > 1 {
		return out("", MethodAmbiguous)
	}
	if ids := r.match(func(c string) bool { return sepKey(c) == sepKey(t) }); len(ids) == 1 {
		return out(ids[0], MethodSeparator)
	} else if len(ids) > 1 {
		return out("", MethodAmbiguous)
	}
	if id, method := r.byAlias(t); method != "" {
		return out(id, method)
	}
	if id, method := r.byRetired(t); method != "" {
		return out(id, method)
	}
	if id, method := r.byAliasPattern(t); method != "" {
		return out(id, method)
	}
	if why, ok := r.servedElsewhere(t); ok {
		return Correction{Requested: req, Method: MethodUnresolved, Note: why}
	}
	return r.fuzzy(req, t)
}

// match returns the candidates accepted by f.
func (r *resolver) match(f func(string) bool) []string {
	var ids []string
	for _, c := range r.cands {
		if f(c) {
			ids = append(ids, c)
		}
	}
	return ids
}

// locate finds the candidate spelling of a catalog id (the upstream may list it in another
// case or with other separators).
func (r *resolver) locate(id string) (string, bool) {
	for _, f := range []func(string) bool{
		func(c string) bool { return c == id },
		func(c string) bool { return strings.EqualFold(c, id) },
		func(c string) bool { return sepKey(c) == sepKey(id) },
	} {
		if ids := r.match(f); len(ids) == 1 {
			return ids[0], true
		}
	}
	return "", false
}

// byAlias resolves catalog aliases, then vendor-prefixed relay ids in either direction
// ("moonshotai/Kimi-K2.6" → "kimi-k2.6", "deepseek-v4-pro" → "deepseek-ai/DeepSeek-V4-Pro").
func (r *resolver) byAlias(t string) (string, string) {
	if r.prov != nil {
		var targets []string
		for _, m := range r.prov.Models {
			if m.Retired {
				continue
			}
			for _, a := range m.Aliases {
				if !strings.HasSuffix(a, "*") && aliasMatches(a, t) {
					if id, ok := r.locate(m.ID); ok && !contains(targets, id) {
						targets = append(targets, id)
					}
				}
			}
		}
		if len(targets) == 1 {
			return targets[0], MethodAlias
		}
		if len(targets) > 1 {
			return "", MethodAmbiguous
		}
	}
	if strings.Contains(t, "/") {
		if id, ok := r.locate(lastSegment(t)); ok {
			return id, MethodAlias
		}
	}
	ids := r.match(func(c string) bool {
		return strings.Contains(c, "/") && sepKey(lastSegment(c)) == sepKey(t)
	})
	if len(ids) == 1 {
		return ids[0], MethodAlias
	}
	if len(ids) > 1 {
		return "", MethodAmbiguous
	}
	return "", ""
}

// byRetired rewrites a retired id (or one of its aliases) to its successor.
func (r *resolver) byRetired(t string) (string, string) {
	if r.prov == nil {
		return "", ""
	}
	for _, m := range r.prov.Models {
		if !m.Retired {
			continue
		}
		hit := sepKey(m.ID) == sepKey(t)
		for _, a := range m.Aliases {
			hit = hit || aliasMatches(a, t)
		}
		if !hit {
			continue
		}
		if m.Successor == "" {
			return "", MethodUnresolved
		}
		if id, ok := r.locate(m.Successor); ok {
			return id, MethodRetired
		}
		return "", MethodUnresolved
	}
	return "", ""
}

// byAliasPattern tries prefix aliases ("hunyuan-*" → "hy3") after explicit retired
// names, so that a documented retirement wins over the catch-all.
func (r *resolver) byAliasPattern(t string) (string, string) {
	if r.prov == nil {
		return "", ""
	}
	for _, m := range r.prov.Models {
		if m.Retired {
			continue
		}
		for _, a := range m.Aliases {
			if strings.HasSuffix(a, "*") && aliasMatches(a, t) {
				if id, ok := r.locate(m.ID); ok {
					return id, MethodAlias
				}
			}
		}
	}
	return "", ""
}

// fuzzy picks the single closest candidate within the threshold; a tie is ambiguous. A
// candidate whose digits differ is never taken: "qwen3.9-max" is a newer model, not a typo
// of "qwen3.8-max".
func (r *resolver) fuzzy(req, t string) Correction {
	lt := strings.ToLower(t)
	limit := fuzzyThreshold(len(lt))
	best, bestD, ties := "", limit+1, 0
	digits := digitsOf(lt)
	for _, c := range r.cands {
		if digitsOf(c) != digits {
			continue
		}
		d := levenshtein(lt, strings.ToLower(c))
		switch {
		case d < bestD:
			best, bestD, ties = c, d, 1
		case d == bestD:
			ties++
		}
	}
	switch {
	case bestD > limit || best == "":
		return Correction{Requested: req, Method: MethodUnresolved}
	case ties > 1:
		return Correction{Requested: req, Method: MethodAmbiguous}
	default:
		return Correction{Requested: req, Resolved: best, Method: MethodFuzzy}
	}
}

// defaults picks models when none were requested: the provider's current chat models that
// the upstream lists (all of them when it lists nothing), else the first chat-looking ids
// of the upstream list.
func (r *resolver) defaults() []string {
	var ids []string
	if r.known {
		for _, m := range r.prov.Models {
			if _, away := r.elsewhere[m.ID]; m.Retired || m.Deprecated || !m.Chat || away {
				continue
			}
			if !r.listed {
				ids = append(ids, m.ID)
				continue
			}
			if id, ok := r.locate(m.ID); ok && !contains(ids, id) {
				ids = append(ids, id)
			}
		}
		if len(ids) > 0 || !r.listed {
			return ids
		}
	}
	for _, c := range r.cands {
		if looksLikeChat(c) {
			ids = append(ids, c)
			if len(ids) == maxDefaultModels {
				break
			}
		}
	}
	return ids
}

// isChat uses the catalog when it knows the id, the name heuristic otherwise.
func (r *resolver) isChat(id string) bool {
	if r.prov != nil {
		for _, m := range r.prov.Models {
			if strings.EqualFold(m.ID, id) {
				return m.Chat
			}
		}
	}
	return looksLikeChat(id)
}

// digitsOf is the sequence of digits in s, which names a model's version and size.
func digitsOf(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// IsChatModel reports whether id is a chat model of the provider: the catalog decides for
// ids it knows, a name heuristic (no embedding/speech/image markers) for the rest.
func (c *Catalog) IsChatModel(providerID, id string) bool {
	r := &resolver{}
	if p, ok := c.Provider(providerID); ok {
		r.prov = p
	}
	return r.isChat(id)
}
