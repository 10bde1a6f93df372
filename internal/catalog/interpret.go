package catalog

import (
	"errors"
	"fmt"
	"strings"
)

// Input is one pasted line: what the operator gave for one key.
type Input struct {
	BaseURL string
	APIKey  string
	Hint    string // provider the operator named, "" if none
}

// Interpretation is what the product makes of one pasted line before anything is probed:
// the normalised bases, the provider and where its model list applies. Refusal is set
// when the line cannot be imported as given; it says what the operator can do about it.
type Interpretation struct {
	URL       Normalized
	Detection Detection
	// Scope is the region and plan the models are resolved for; nil when the host is not
	// in the catalog (a relay or mirror named by a hint: nothing is known about its region).
	Scope   *Scope
	Refusal string
	Err     error // the NormalizeURL error behind Refusal, if any
	// Notes say what normalisation changed and what looks off (a plan key on a
	// pay-as-you-go base), for the operator.
	Notes []string
}

// Interpret normalises the base URL, detects the provider and works out the scope of its
// model list, exactly as the import step does.
func (c *Catalog) Interpret(in Input) Interpretation {
	var it Interpretation
	it.Detection = c.Detect(in.BaseURL, in.APIKey, in.Hint)
	n, err := c.NormalizeURL(in.BaseURL)
	if err != nil {
		it.Err = err
		it.Refusal = err.Error()
		if errors.Is(err, ErrEmptyURL) {
			it.Refusal += c.keyOnlyAdvice(in.APIKey)
		}
		return it
	}
	it.URL = n
	it.Scope = c.ScopeOf(n, it.Detection)
	it.Notes = append([]string(nil), n.Notes...)
	if w := c.planMismatch(n, in.APIKey); w != "" {
		it.Notes = append(it.Notes, w)
	}
	return it
}

// ScopeOf is the region and plan a normalised base and a detection put the models in:
// the surface's region and plan, the plan named by the key's shape when the surface does
// not tell. It is nil when the provider was not decided by the host.
func (c *Catalog) ScopeOf(n Normalized, d Detection) *Scope {
	if n.ProviderID == "" || n.ProviderID != d.ProviderID {
		return nil
	}
	s := &Scope{Region: n.Region, Plan: n.PlanName}
	if s.Plan == "" && !n.Plan {
		s.Plan = d.Plan
	}
	return s
}

// keyOnlyAdvice tells an operator who gave a key without a base URL which bases the key's
// shape points at.
func (c *Catalog) keyOnlyAdvice(key string) string {
	kh := c.keyHint(key)
	if kh == nil {
		return "; paste the provider's base URL together with the key"
	}
	var bases, names []string
	for _, id := range append([]string{kh.Provider}, kh.Also...) {
		if p, ok := c.Provider(id); ok {
			bases = append(bases, keyBases(p, kh)...)
			names = append(names, p.Name)
		}
	}
	who := strings.Join(names, " or ")
	return fmt.Sprintf("; the key's shape points at %s — paste the base URL of the account it belongs to, e.g. %s", who, strings.Join(bases, ", "))
}

// keyBases lists the OpenAI bases of p's surfaces that take keys of this shape: the
// surfaces of its plans, else the pay-as-you-go ones. Wildcard and legacy hosts are left
// out: they cannot be pasted as they are, or should not be.
func keyBases(p *Provider, kh *KeyHint) []string {
	pick := func(want func(*Surface) bool) []string {
		var out []string
		for i := range p.Surfaces {
			s := &p.Surfaces[i]
			if !s.Legacy && !strings.Contains(s.Hosts[0], "*") && want(s) {
				out = append(out, "https://"+s.Hosts[0]+s.OpenAI)
			}
		}
		return out
	}
	if len(kh.Plans) > 0 && kh.Provider == p.ID {
		if out := pick(func(s *Surface) bool { return contains(kh.Plans, s.Plan) }); len(out) > 0 {
			return out
		}
	}
	return pick(func(s *Surface) bool { return s.Plan == "" })
}

// planMismatch says when a key shape that belongs to plan bases meets a base of another
// plan: plan keys and pay-as-you-go keys fail (401) on each other's bases.
func (c *Catalog) planMismatch(n Normalized, key string) string {
	kh := c.keyHint(key)
	if kh == nil || len(kh.Plans) == 0 || kh.Provider != n.ProviderID || n.Surface == "" || contains(kh.Plans, n.PlanName) {
		return ""
	}
	return fmt.Sprintf("the key looks like a %s plan key but this base is %s; plan keys and pay-as-you-go keys fail on each other's bases",
		strings.Join(kh.Plans, "/"), planWords(n.PlanName))
}
