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
	b.WriteString("| id | name | hosts | default path | per-host paths | Anthropic base | key prefixes | `/models` | `/responses` | model ids case-sensitive |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range c.Providers() {
		var hp []string
		for _, h := range sortedKeys(p.HostPaths) {
			hp = append(hp, fmt.Sprintf("`%s` → `%s`", h, p.HostPaths[h]))
		}
		hostPaths := "–"
		if len(hp) > 0 {
			hostPaths = strings.Join(hp, "<br>")
		}
		def := code(p.DefaultPath)
		if p.DefaultPath == "" {
			def = "(none: keep the path)"
		}
		resp := yesNo(p.Responses)
		if p.Responses && len(p.ResponsesModels) > 0 {
			resp = "only " + codeList(p.ResponsesModels)
		}
		hosts := codeList(p.Hosts)
		if len(p.Hosts) == 0 {
			hosts = "any other host"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", p.ID, cell(p.Name), hosts, def, hostPaths,
			code(p.AnthropicBase), codeList(p.KeyPrefixes), yesNo(p.ListsModels), resp, yesNo(p.CaseSensitive))
	}
	return b.String()
}

func renderSuffixes(_ *testing.T, _ *Catalog) string {
	var b strings.Builder
	b.WriteString("| order | stripped suffix |\n|---|---|\n")
	b.WriteString("| 0 | `/v1/messages` (Anthropic bases only, then a trailing `/v1`) |\n")
	for i, s := range openAISuffixes {
		fmt.Fprintf(&b, "| %d | `%s` |\n", i+1, s)
	}
	return b.String()
}

func renderPathFixes(_ *testing.T, c *Catalog) string {
	var b strings.Builder
	b.WriteString("| provider | pasted path | becomes |\n|---|---|---|\n")
	for _, p := range c.Providers() {
		for _, from := range sortedKeys(p.PathFixes) {
			fmt.Fprintf(&b, "| `%s` | `%s` | `%s` |\n", p.ID, from, p.PathFixes[from])
		}
	}
	b.WriteString("\n| provider | retired host (rejected) | reason given to the operator |\n|---|---|---|\n")
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
	"https://relay.example.com",
	"https://relay.example.com//v1//models",
	"http://127.0.0.1:8080/v1/",
	"",
	"ftp://files.example.com",
	"https://user:pass@relay.example.com/v1",
	"https://relay.example.com/v1?key=abc",
	"https://relay.example.com/v1#frag",
	"https://aip.baidubce.com/rpc/2.0/ai_custom/v1",
	"https://api.hunyuan.cloud.tencent.com/v1",
}

func renderNormalizeExamples(_ *testing.T, c *Catalog) string {
	var b strings.Builder
	b.WriteString("| input | base URL | provider | protocol | stripped suffix | plan surface |\n|---|---|---|---|---|---|\n")
	for _, in := range normalizeExamples {
		shown := code(in)
		if in == "" {
			shown = "(empty)"
		}
		n, err := c.NormalizeURL(in)
		if err != nil {
			fmt.Fprintf(&b, "| %s | rejected: %s | | | | |\n", shown, cell(err.Error()))
			continue
		}
		prov := n.ProviderID
		if prov == "" {
			prov = "(unknown host)"
		} else {
			prov = code(prov)
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s | %s | %s |\n", shown, n.BaseURL, prov, n.Protocol, code(n.Stripped), yesNo(n.Plan))
	}
	return b.String()
}

func renderKeyHints(_ *testing.T, c *Catalog) string {
	var b strings.Builder
	b.WriteString("| order | key pattern (regexp) | provider hint |\n|---|---|---|\n")
	for i, h := range c.KeyHints() {
		fmt.Fprintf(&b, "| %d | `%s` | `%s` |\n", i+1, h.Pattern, h.Provider)
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
	{"https://dashscope.aliyuncs.com/compatible-mode/v1?x=1", "", "", "host still read from a URL NormalizeURL rejects"},
	{"https://ws-abc.cn-beijing.maas.aliyuncs.com", "", "", "wildcard host pattern"},
	{"https://ark.ap-southeast.bytepluses.com/api/v3", "", "", "wildcard host pattern"},
	{"https://relay.example.com/v1", "sk-or-v1-0123456789abcdef", "zhipu", "unknown host: the hint beats the key"},
	{"https://relay.example.com/v1", "sk-or-v1-0123456789abcdef", "", "unknown host, no hint: key shape"},
	{"", "sk-kimi-AbCdEf0123456789", "", "key shape"},
	{"", "0123456789abcdef0123456789abcdef.AbCdEfGh01234567", "", "key shape (Zhipu / Z.ai)"},
	{"", "bce-v3/ALTAK-AbCdEf0123/0123456789abcdef", "", "key shape"},
	{"", "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0", "", "key shape (older Ark console keys)"},
	{"", "sk-0123456789abcdef0123456789abcdef", "", "ambiguous shape (DeepSeek or Qwen PAYG): probe to confirm"},
	{"https://relay.example.com/v1", "sk-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCd", "", "nothing known: generic relay"},
	{"https://relay.example.com/v1", "", "Moonshot", "hint synonym"},
	{"", "", "", "nothing given"},
}

func renderDetectExamples(_ *testing.T, c *Catalog) string {
	var b strings.Builder
	b.WriteString("| base URL | key | hint | provider | decided by | note |\n|---|---|---|---|---|---|\n")
	for _, e := range detectExamples {
		d := c.Detect(e.base, e.key, e.hint)
		fmt.Fprintf(&b, "| %s | %s | %s | `%s` | %s | %s |\n", code(e.base), code(e.key), code(e.hint), d.ProviderID, d.By, cell(e.note))
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
	b.WriteString("| provider | current models (picked by default, in this order) | deprecated (accepted, never picked by default) | not chat (never the smoke model) | passthrough ids |\n|---|---|---|---|---|\n")
	for _, p := range c.Providers() {
		var cur, dep, nonChat []string
		for _, m := range p.Models {
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
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", p.ID, curS, codeList(dep), codeList(nonChat), code(p.Passthrough))
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
}

var correctionExamples = []correctionExample{
	{"deepseek", []string{"deepseek-flash"}, nil, MethodExact},
	{"glm", []string{"glm-5.2[1m]"}, nil, MethodExact},
	{"ark", []string{"ep-20260101123456-abcde"}, nil, MethodExact},
	{OpenAICompatible, []string{"my-private-model"}, nil, MethodExact},
	{"minimax", []string{"minimax-m2.7"}, nil, MethodCase},
	{"kimi", []string{"Kimi K2.6"}, nil, MethodSeparator},
	{"kimi", []string{"kimi-k2-7-code"}, nil, MethodSeparator},
	{"deepseek", []string{"deepseek-v4-flash"}, nil, MethodAlias},
	{"kimi", []string{"moonshotai/Kimi-K2.6"}, nil, MethodAlias},
	{OpenAICompatible, []string{"deepseek-v4-pro"}, []string{"deepseek-ai/DeepSeek-V4-Pro", "Qwen/Qwen3.6-27B"}, MethodAlias},
	{"tokenhub", []string{"hunyuan-lite"}, nil, MethodAlias},
	{"deepseek", []string{"deepseek-chat"}, nil, MethodRetired},
	{"kimi", []string{"kimi-k2-0905-preview"}, []string{"kimi-k2.6", "kimi-k3"}, MethodRetired},
	{"tokenhub", []string{"hunyuan-t1-latest"}, nil, MethodRetired},
	{"deepseek", []string{"deepseek-flsh"}, nil, MethodFuzzy},
	{"glm", []string{"glm-5.4"}, nil, MethodAmbiguous},
	{OpenAICompatible, []string{"FOO-1"}, []string{"Foo-1", "foo-1"}, MethodAmbiguous},
	{"glm", []string{"gpt-4o"}, nil, MethodUnresolved},
	{"qianfan", []string{"ERNIE-Bot-turbo"}, nil, MethodUnresolved},
	{"kimi", []string{"kimi-k2.7-code"}, []string{"kimi-k2.6", "kimi-k3"}, MethodUnresolved},
	{"deepseek", nil, nil, MethodDefault},
	{"kimi", nil, []string{"kimi-k3", "kimi-k2.6", "moonshot-v1-8k"}, MethodDefault},
	{OpenAICompatible, nil, []string{"text-embedding-v4", "qwen3.8-max", "glm-5.1"}, MethodDefault},
}

func renderCorrectionExamples(t *testing.T, c *Catalog) string {
	var b strings.Builder
	b.WriteString("| provider | requested | upstream `/models` list | sent upstream | method | smoke model |\n|---|---|---|---|---|---|\n")
	seen := map[string]bool{}
	for _, e := range correctionExamples {
		res := c.ResolveModels(e.provider, e.requested, e.available)
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
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s |\n", e.provider, req, avail, sent, method, code(res.SmokeModel))
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
