package catalog

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
)

// docs/providers.md documents the catalog. Every table between a pair of
// "<!-- catalog:NAME:begin -->" / "<!-- catalog:NAME:end -->" markers is rendered here from
// the embedded providers.json and by calling NormalizeURL, Detect and ResolveModels, so the
// document cannot drift from the code: TestProvidersDocMatchesCatalog fails when it does,
// and UPDATE_DOCS=1 rewrites the tables.

const providersDocPath = "../../docs/providers.md"

// docSection is one generated block of docs/providers.md.
type docSection struct {
	name   string
	render func(t *testing.T, c *Catalog) string
}

var providersDocSections = []docSection{
	{"providers", renderProvidersTable},
	{"surfaces", renderSurfaces},
	{"suffixes", renderSuffixes},
	{"path-fixes", renderPathFixes},
	{"normalize-examples", renderNormalizeExamples},
	{"key-hints", renderKeyHints},
	{"hint-synonyms", renderHintSynonyms},
	{"detect-examples", renderDetectExamples},
	{"fuzzy-thresholds", renderFuzzyThresholds},
	{"models", renderModels},
	{"chat-heuristic", renderChatHeuristic},
	{"aliases", renderAliases},
	{"retired", renderRetired},
	{"correction-examples", renderCorrectionExamples},
}

// cell escapes a value for a Markdown table cell.
func cell(s string) string {
	if s == "" {
		return "–"
	}
	return strings.ReplaceAll(s, "|", `\|`)
}

// code renders s as inline code ("–" when empty).
func code(s string) string {
	if s == "" {
		return "–"
	}
	return "`" + strings.ReplaceAll(s, "|", `\|`) + "`"
}

func codeList(items []string) string {
	if len(items) == 0 {
		return "–"
	}
	out := make([]string, len(items))
	for i, s := range items {
		out[i] = code(s)
	}
	return strings.Join(out, ", ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func renderProvidersTable(_ *testing.T, c *Catalog) string {
	var b strings.Builder
	b.WriteString("| id | name | hosts | key prefixes | `/models` | `/responses` | model ids case-sensitive |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, p := range c.Providers() {
		resp := yesNo(p.Responses)
		if p.Responses && len(p.ResponsesModels) > 0 {
			resp = "only " + codeList(p.ResponsesModels)
		}
		hosts := codeList(p.Hosts)
		if len(p.Hosts) == 0 {
			hosts = "any other host"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s | %s |\n", p.ID, cell(p.Name), hosts,
			codeList(p.KeyPrefixes), yesNo(p.ListsModels), resp, yesNo(p.CaseSensitive))
	}
	return b.String()
}

func renderSurfaces(_ *testing.T, c *Catalog) string {
	var b strings.Builder
	b.WriteString("| provider | surface | region | plan | hosts | OpenAI-compatible path | also kept as pasted | Anthropic-compatible path |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, p := range c.Providers() {
		for _, s := range p.Surfaces {
			openai := code(s.OpenAI)
			if s.OpenAI == "" {
				openai = "(the host root)"
			}
			anth := "none documented"
			switch {
			case s.Anthropic == "/":
				anth = "(the host root)"
			case s.Anthropic != "":
				anth = code(s.Anthropic)
			}
			plan := s.Plan
			if plan == "" {
				plan = "pay-as-you-go"
			}
			fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s | %s | %s | %s | %s |\n", p.ID, s.ID, cell(s.Region), plan, codeList(s.Hosts),
				openai, codeList(s.OpenAIAlso), anth)
		}
	}
	return b.String()
}

func renderSuffixes(_ *testing.T, _ *Catalog) string {
	var b strings.Builder
	b.WriteString("| order | stripped suffix | means |\n|---|---|---|\n")
	i := 0
	for _, s := range anthropicSuffixes {
		i++
		fmt.Fprintf(&b, "| %d | `%s` | the pasted URL is an Anthropic base |\n", i, s)
	}
	for _, s := range openAISuffixes {
		i++
		fmt.Fprintf(&b, "| %d | `%s` | the pasted URL is an OpenAI base |\n", i, s)
	}
	return b.String()
}

func renderPathFixes(_ *testing.T, c *Catalog) string {
	var b strings.Builder
	b.WriteString("| provider | surface | pasted path | becomes |\n|---|---|---|---|\n")
	for _, p := range c.Providers() {
		for _, s := range p.Surfaces {
			for _, from := range s.Fixes {
				fmt.Fprintf(&b, "| `%s` | `%s` | `%s` | `%s` |\n", p.ID, s.ID, from, s.OpenAI)
			}
		}
	}
	b.WriteString("\n| provider | retired host (refused) | reason given to the operator |\n|---|---|---|\n")
	for _, p := range c.Providers() {
		for _, h := range sortedKeys(p.LegacyHosts) {
			fmt.Fprintf(&b, "| `%s` | `%s` | %s |\n", p.ID, h, cell(p.LegacyHosts[h]))
		}
	}
	return b.String()
}

// normalizeExamples are the inputs of the normalisation table; the outcome column is
// whatever NormalizeURL returns.
var normalizeExamples = []string{
	"api.deepseek.com",
	` "https://api.moonshot.cn/" `,
	"https://API.MoonShot.ai",
	"https://api.deepseek.com/v1/chat/completions",
	"https://api.minimaxi.com/v1/text/chatcompletion_v2",
	"https://open.bigmodel.cn",
	"https://open.bigmodel.cn/v1",
	"https://open.bigmodel.cn/api/paas/v4/chat/completions",
	"https://open.bigmodel.cn/api/coding/paas/v4",
	"https://dashscope.aliyuncs.com/api/v1",
	"https://coding.dashscope.aliyuncs.com",
	"https://ark.cn-beijing.volces.com",
	"https://ark.cn-beijing.volces.com/api/coding/v3",
	"https://ark.cn-beijing.volces.com/api/compatible/v1/messages",
	"https://api.kimi.com/coding",
	"https://qianfan.baidubce.com",
	"openrouter.ai",
	"https://api.lkeap.cloud.tencent.com",
	"https://api.deepseek.com/anthropic",
	"https://api.moonshot.cn/anthropic/v1/messages",
	"https://open.bigmodel.cn/api/anthropic",
	"https://dashscope-intl.aliyuncs.com/apps/anthropic",
	"https://api.kimi.com/coding/",
	"https://ark.cn-beijing.volces.com/api/coding",
	"https://api.stepfun.com/step_plan",
	"https://qianfan.baidubce.com/anthropic/tokenplan/personal",
	"https://tokenhub.tencentmaas.com/anthropic",
	"http://api.moonshot.ai",
	"https://relay.example.com",
	"https://relay.example.com//v1//models",
	"http://127.0.0.1:8080/v1/",
	"",
	"ftp://files.example.com",
	"https://user:pass@relay.example.com/v1",
	"https://relay.example.com/v1?key=abc",
	"https://relay.example.com/v1#frag",
	"https://relay.example.com/anthropic",
	"https://qianfan.baidubce.com/anthropic",
	"https://api.deepseek.com/beta",
	"https://aip.baidubce.com/rpc/2.0/ai_custom/v1",
	"https://api.hunyuan.cloud.tencent.com/v1",
}

func renderNormalizeExamples(_ *testing.T, c *Catalog) string {
	var b strings.Builder
	b.WriteString("| input | OpenAI-compatible base | Anthropic-compatible base | provider | surface | pasted protocol | stripped suffix | plan surface | notes |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, in := range normalizeExamples {
		shown := code(in)
		if in == "" {
			shown = "(empty)"
		}
		n, err := c.NormalizeURL(in)
		if err != nil {
			fmt.Fprintf(&b, "| %s | refused: %s | | | | | | | |\n", shown, cell(err.Error()))
			continue
		}
		prov := n.ProviderID
		if prov == "" {
			prov = "(unknown host)"
		} else {
			prov = code(prov)
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s | %s | %s | %s | %s | %s |\n", shown, n.BaseURL, code(n.AnthropicBase), prov, code(n.Surface),
			n.Protocol, code(n.Stripped), yesNo(n.Plan), cell(strings.Join(n.Notes, "; ")))
	}
	return b.String()
}

func renderKeyHints(_ *testing.T, c *Catalog) string {
	var b strings.Builder
	b.WriteString("| order | key pattern (regexp) | provider hint | same shape also | plan it names (same hosts) | bases of plans | strength |\n|---|---|---|---|---|---|---|\n")
	for i, h := range c.KeyHints() {
		strength := "strong"
		if h.Weak {
			strength = "weak: never contradicts a known host"
		}
		fmt.Fprintf(&b, "| %d | `%s` | `%s` | %s | %s | %s | %s |\n", i+1, h.Pattern, h.Provider, codeList(h.Also), cell(h.Plan),
			cell(strings.Join(h.Plans, ", ")), strength)
	}
	return b.String()
}

func renderHintSynonyms(_ *testing.T, _ *Catalog) string {
	byProvider := map[string][]string{}
	for syn, id := range hintSynonyms {
		byProvider[id] = append(byProvider[id], syn)
	}
	ids := make([]string, 0, len(byProvider))
	for id := range byProvider {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var b strings.Builder
	b.WriteString("| provider | accepted hint spellings besides its id and name |\n|---|---|\n")
	for _, id := range ids {
		syns := byProvider[id]
		sort.Strings(syns)
		fmt.Fprintf(&b, "| `%s` | %s |\n", id, codeList(syns))
	}
	return b.String()
}

type detectExample struct {
	base, key, hint string
	note            string
}

// Example keys are fake; they only have the documented shapes.
var detectExamples = []detectExample{
	{"https://api.moonshot.cn/v1", "sk-0123456789abcdef0123456789abcdef", "", "host wins over a DeepSeek-shaped key"},
	{"https://aip.baidubce.com/rpc/2.0/ai_custom/v1", "", "", "host still read from a URL NormalizeURL refuses (retired)"},
	{"https://ws-abc.cn-beijing.maas.aliyuncs.com", "", "", "wildcard host pattern"},
	{"https://ark.ap-southeast.bytepluses.com/api/v3", "", "", "wildcard host pattern"},
	{"https://relay.example.com/v1", "sk-or-v1-0123456789abcdef", "zhipu", "unknown host: the hint beats the key"},
	{"https://relay.example.com/v1", "sk-or-v1-0123456789abcdef", "", "unknown host, no hint: generic relay, the key shape only suggests"},
	{"https://api.deepseek.com.relay.example/v1", "sk-0123456789abcdef0123456789abcdef", "", "look-alike domain: an unknown host"},
	{"http://10.0.0.8:3000/v1", "sk-kimi-AbCdEf0123456789", "", "private address: an unknown host"},
	{"https://api.deepseek.com", "sk-or-v1-0123456789abcdef", "", "a strong key shape that contradicts the host is suggested"},
	{"https://api.minimax.io/v1", "sk-cp-AbCdEf0123456789", "", "the key shape names MiniMax's Token Plan"},
	{"", "sk-kimi-AbCdEf0123456789", "", "key shape"},
	{"", "0123456789abcdef0123456789abcdef.AbCdEfGh01234567", "", "key shape (Zhipu / Z.ai)"},
	{"", "bce-v3/ALTAK-AbCdEf0123/0123456789abcdef", "", "key shape"},
	{"", "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0", "", "key shape (older Ark console keys)"},
	{"", "sk-0123456789abcdef0123456789abcdef", "", "ambiguous shape (DeepSeek or Qwen PAYG); without a base URL the line is refused anyway"},
	{"https://relay.example.com/v1", "sk-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCd", "", "nothing known: generic relay"},
	{"https://relay.example.com/v1", "", "Moonshot", "hint synonym"},
	{"", "", "", "nothing given"},
}

func renderDetectExamples(_ *testing.T, c *Catalog) string {
	var b strings.Builder
	b.WriteString("| base URL | key | hint | provider | decided by | suggested by the key | plan from the key | note |\n|---|---|---|---|---|---|---|---|\n")
	for _, e := range detectExamples {
		d := c.Detect(e.base, e.key, e.hint)
		fmt.Fprintf(&b, "| %s | %s | %s | `%s` | %s | %s | %s | %s |\n", code(e.base), code(e.key), code(e.hint), d.ProviderID, d.By,
			code(d.Suggested), cell(d.Plan), cell(e.note))
	}
	return b.String()
}

func renderFuzzyThresholds(_ *testing.T, _ *Catalog) string {
	var b strings.Builder
	b.WriteString("| requested name length | largest accepted edit distance |\n|---|---|\n")
	prev, start := fuzzyThreshold(0), 0
	for n := 1; n <= 40; n++ {
		if d := fuzzyThreshold(n); d != prev || n == 40 {
			rng := fmt.Sprintf("%d–%d", start, n-1)
			if n == 40 {
				rng = fmt.Sprintf("%d and more", start)
			}
			fmt.Fprintf(&b, "| %s | %d |\n", rng, prev)
			prev, start = d, n
		}
	}
	fmt.Fprintf(&b, "| over %d characters | not compared |\n", maxFuzzyLen)
	return b.String()
}

func renderModels(_ *testing.T, c *Catalog) string {
	var b strings.Builder
	b.WriteString("| provider | current models (picked by default, in this order) | deprecated (accepted, never picked by default) | not chat (never the smoke model) | served only | passthrough ids |\n|---|---|---|---|---|---|\n")
	for _, p := range c.Providers() {
		var cur, dep, nonChat, only []string
		for _, m := range p.Models {
			if !m.Retired && len(m.Regions)+len(m.Plans) > 0 {
				var where []string
				if len(m.Regions) > 0 {
					where = append(where, "region "+strings.Join(m.Regions, ", "))
				}
				if len(m.Plans) > 0 {
					where = append(where, "plan "+strings.Join(m.Plans, ", "))
				}
				only = append(only, fmt.Sprintf("`%s`: %s", m.ID, strings.Join(where, "; ")))
			}
			switch {
			case m.Retired:
				continue
			case !m.Chat:
				nonChat = append(nonChat, m.ID)
			case m.Deprecated:
				dep = append(dep, m.ID)
			default:
				cur = append(cur, m.ID)
			}
		}
		curS := codeList(cur)
		if len(p.Models) == 0 {
			curS = "(none in the catalog: the upstream's `/models` list decides)"
		}
		onlyS := "–"
		if len(only) > 0 {
			onlyS = strings.Join(only, "<br>")
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s |\n", p.ID, curS, codeList(dep), codeList(nonChat), onlyS, code(p.Passthrough))
	}
	return b.String()
}

func renderChatHeuristic(_ *testing.T, _ *Catalog) string {
	return "Markers that make an id \"not chat\": " + codeList(nonChatMarkers) + ".\n"
}

func renderAliases(_ *testing.T, c *Catalog) string {
	var b strings.Builder
	b.WriteString("| provider | alias | means |\n|---|---|---|\n")
	for _, p := range c.Providers() {
		for _, m := range p.Models {
			if m.Retired {
				continue
			}
			for _, a := range m.Aliases {
				fmt.Fprintf(&b, "| `%s` | `%s` | `%s` |\n", p.ID, a, m.ID)
			}
		}
	}
	return b.String()
}

func renderRetired(_ *testing.T, c *Catalog) string {
	var b strings.Builder
	b.WriteString("| provider | retired id (and its aliases) | successor |\n|---|---|---|\n")
	for _, p := range c.Providers() {
		for _, m := range p.Models {
			if !m.Retired {
				continue
			}
			names := append([]string{m.ID}, m.Aliases...)
			succ := code(m.Successor)
			if m.Successor == "" {
				succ = "none: unresolved"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", p.ID, codeList(names), succ)
		}
	}
	return b.String()
}

type correctionExample struct {
	provider  string
	requested []string // nil = nothing requested (default pick)
	available []string // the upstream's /models list; nil = the catalog stands in
	method    string   // expected method of the first correction, so examples stay meaningful
	scope     *Scope   // where the base sits; nil = anywhere
}

var correctionExamples = []correctionExample{
	{"deepseek", []string{"deepseek-flash"}, nil, MethodExact, nil},
	{"glm", []string{"glm-5.2[1m]"}, nil, MethodExact, nil},
	{"ark", []string{"ep-20260101123456-abcde"}, nil, MethodExact, nil},
	{OpenAICompatible, []string{"my-private-model"}, nil, MethodExact, nil},
	{"minimax", []string{"minimax-m2.7"}, nil, MethodCase, nil},
	{"kimi", []string{"Kimi K2.6"}, nil, MethodSeparator, nil},
	{"kimi", []string{"kimi-k2-7-code"}, nil, MethodSeparator, nil},
	{"deepseek", []string{"deepseek-v4-flash"}, nil, MethodAlias, nil},
	{"kimi", []string{"moonshotai/Kimi-K2.6"}, nil, MethodAlias, nil},
	{OpenAICompatible, []string{"deepseek-v4-pro"}, []string{"deepseek-ai/DeepSeek-V4-Pro", "Qwen/Qwen3.6-27B"}, MethodAlias, nil},
	{"tokenhub", []string{"hunyuan-lite"}, nil, MethodAlias, nil},
	{"deepseek", []string{"deepseek-chat"}, nil, MethodRetired, nil},
	{"kimi", []string{"kimi-k2-0905-preview"}, []string{"kimi-k2.6", "kimi-k3"}, MethodRetired, nil},
	{"tokenhub", []string{"hunyuan-t1-latest"}, nil, MethodRetired, nil},
	{"deepseek", []string{"deepseek-flsh"}, nil, MethodFuzzy, nil},
	{"glm", []string{"glm-5.4"}, nil, MethodUnresolved, nil},
	{OpenAICompatible, []string{"FOO-1"}, []string{"Foo-1", "foo-1"}, MethodAmbiguous, nil},
	{"glm", []string{"gpt-4o"}, nil, MethodUnresolved, nil},
	{"qianfan", []string{"ERNIE-Bot-turbo"}, nil, MethodUnresolved, nil},
	{"kimi", []string{"kimi-k2.7-code"}, []string{"kimi-k2.6", "kimi-k3"}, MethodUnresolved, nil},
	{"deepseek", nil, nil, MethodDefault, nil},
	{"kimi", nil, []string{"kimi-k3", "kimi-k2.6", "moonshot-v1-8k"}, MethodDefault, nil},
	{OpenAICompatible, nil, []string{"text-embedding-v4", "qwen3.8-max", "glm-5.1"}, MethodDefault, nil},
	{"qwen", []string{"deepseek-v4-pro"}, nil, MethodExact, &Scope{Region: "cn-beijing"}},
	{"qwen", []string{"deepseek-v4-pro"}, nil, MethodUnresolved, &Scope{Region: "ap-southeast-1"}},
	{"ark", []string{"ark-code-latest"}, nil, MethodExact, &Scope{Region: "cn", Plan: "coding"}},
	{"ark", []string{"ark-code-latest"}, nil, MethodUnresolved, &Scope{Region: "cn"}},
	{"minimax", []string{"minimax-m3.1-flash-preview"}, nil, MethodCase, &Scope{Region: "intl", Plan: "token"}},
	{"qwen", nil, nil, MethodDefault, &Scope{Region: "ap-southeast-1", Plan: "coding"}},
}

func renderCorrectionExamples(t *testing.T, c *Catalog) string {
	var b strings.Builder
	b.WriteString("| provider | where | requested | upstream `/models` list | sent upstream | method | smoke model | note |\n|---|---|---|---|---|---|---|---|\n")
	seen := map[string]bool{}
	for _, e := range correctionExamples {
		res := c.ResolveModelsAt(e.provider, e.scope, e.requested, e.available)
		if len(res.Corrections) == 0 {
			t.Errorf("correction example %s %q: no correction", e.provider, e.requested)
			continue
		}
		method := res.Corrections[0].Method
		if method != e.method {
			t.Errorf("correction example %s %q (available %q): method %q, the example is listed as %q; update the example",
				e.provider, e.requested, e.available, method, e.method)
		}
		seen[method] = true
		req := codeList(e.requested)
		if e.requested == nil {
			req = "(nothing)"
		}
		avail := codeList(e.available)
		if e.available == nil {
			avail = "(none: catalog)"
		}
		sent := codeList(res.Models)
		if len(res.Models) == 0 {
			sent = "(nothing)"
		}
		where := "anywhere"
		if e.scope != nil {
			where = "region " + cell(e.scope.Region) + ", " + planWords(e.scope.Plan)
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s | %s | %s |\n", e.provider, where, req, avail, sent, method, code(res.SmokeModel),
			cell(res.Corrections[0].Note))
	}
	for _, m := range []string{MethodExact, MethodCase, MethodSeparator, MethodAlias, MethodRetired, MethodFuzzy,
		MethodAmbiguous, MethodUnresolved, MethodDefault} {
		if !seen[m] {
			t.Errorf("correction examples lack method %q", m)
		}
	}
	return b.String()
}

// TestProvidersDocMatchesCatalog checks every generated block of docs/providers.md
// (UPDATE_DOCS=1 rewrites them).
func TestProvidersDocMatchesCatalog(t *testing.T) {
	raw, err := os.ReadFile(providersDocPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	c := Default()
	var stale []string
	for _, s := range providersDocSections {
		begin := "<!-- catalog:" + s.name + ":begin -->\n"
		end := "<!-- catalog:" + s.name + ":end -->"
		i, j := strings.Index(doc, begin), strings.Index(doc, end)
		if i < 0 || j < i {
			t.Errorf("%s lacks the markers of section %q", providersDocPath, s.name)
			continue
		}
		want := s.render(t, c)
		if doc[i+len(begin):j] != want {
			stale = append(stale, s.name)
			doc = doc[:i+len(begin)] + want + doc[j:]
		}
	}
	if t.Failed() || len(stale) == 0 {
		return
	}
	if os.Getenv("UPDATE_DOCS") == "1" {
		if err := os.WriteFile(providersDocPath, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote sections %v of %s", stale, providersDocPath)
		return
	}
	t.Fatalf("docs/providers.md sections %v are out of date; run UPDATE_DOCS=1 go test ./internal/catalog -run TestProvidersDocMatchesCatalog", stale)
}
