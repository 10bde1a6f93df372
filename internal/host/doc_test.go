package host

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
)

// docProviders are the sample bases used to render docs/hosts.md.
var docProviders = []struct{ id, base string }{
	{"deepseek", "https://api.deepseek.com"},
	{"kimi", "https://api.moonshot.cn/v1"},
	{"glm", "https://open.bigmodel.cn/api/paas/v4"},
	{"qwen", "https://dashscope.aliyuncs.com/compatible-mode/v1"},
	{"minimax", "https://api.minimaxi.com/v1"},
	{"openai_compatible", "https://relay.example.com/v1"},
}

func compact(m map[string]any, drop ...string) string {
	c := map[string]any{}
	for k, v := range m {
		c[k] = v
	}
	for _, d := range drop {
		delete(c, d)
	}
	if len(c) == 0 {
		return "–"
	}
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		b, _ := json.Marshal(c[k])
		parts = append(parts, fmt.Sprintf("`%s=%s`", k, b))
	}
	return strings.Join(parts, " ")
}

func renderRecipeTable() string {
	var b strings.Builder
	b.WriteString("| profile | provider | platform | type | group platform | credentials (besides api_key, base_url) | extra | upstream path | model list source |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range Profiles() {
		for _, dp := range docProviders {
			s := p.AccountSpec(dp.id, dp.base, "sk-x", map[string]string{"m": "m"})
			src := "`credentials.model_mapping` keys"
			if p.ModelMappingStyle == MappingScopeV2 && s.Platform != "deepseek" {
				src = "`extra.model_scope_v2`"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | `%s` | %s |\n", p.Name, dp.id, s.Platform, s.Type, s.GroupPlatform,
				compact(s.Credentials, "api_key", "base_url", "model_mapping"), compact(s.Extra, "model_scope_v2"), s.UpstreamPath, src)
		}
	}
	return b.String()
}

// docs/hosts.md carries the recipe table rendered from the profiles; this test fails when
// they drift (UPDATE_DOCS=1 rewrites the table).
func TestHostsDocMatchesProfiles(t *testing.T) {
	const path = "../../docs/hosts.md"
	const begin, end = "<!-- recipe-table:begin -->\n", "<!-- recipe-table:end -->"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the recipe-table markers", path)
	}
	want := renderRecipeTable()
	if got := doc[i+len(begin) : j]; got != want {
		if os.Getenv("UPDATE_DOCS") == "1" {
			if err := os.WriteFile(path, []byte(doc[:i+len(begin)]+want+doc[j:]), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Fatalf("docs/hosts.md recipe table is out of date; run UPDATE_DOCS=1 go test ./internal/host -run TestHostsDocMatchesProfiles\nwant:\n%s", want)
	}
}
