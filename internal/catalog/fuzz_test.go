package catalog

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
)

var sentinelErrors = []error{ErrEmptyURL, ErrBadScheme, ErrNoHost, ErrCredentialsURL, ErrAnthropicOnly, ErrUnknownSurface,
	ErrUnparsableURL, ErrLegacyHost}

func FuzzNormalizeURL(f *testing.F) {
	for _, s := range []string{
		"", " ", "https://api.deepseek.com", "https://api.deepseek.com/v1/chat/completions/",
		"api.moonshot.cn", "https://open.bigmodel.cn/v1", "https://api.minimaxi.com/anthropic/v1/messages",
		"ftp://x", "https://user:pass@host/v1", "https://h/v1?key=sk-123", "https://h/#frag",
		"http://127.0.0.1:8080//relay//v1//models", "https://[::1]:8443/v1", "\"https://API.Z.AI\"",
		"https://ws.ap-southeast-1.maas.aliyuncs.com/compatible-mode/v1/responses", "https://aip.baidubce.com",
		"https://h/%zz", "https://h/a/../../b", "localhost:3000", "mailto:x", "https://ark.cn-beijing.volces.com/api/coding",
		"https://qianfan.baidubce.com/anthropic", "https://relay.example.com/v1/messages", "http://api.stepfun.com:80/step_plan/v1/messages",
		"https://api.kimi.com/coding/", "https://open.bigmodel.cn/api/anthropic?x=1#y", "https://relay/v1/messages/chat/completions",
	} {
		f.Add(s)
	}
	c := Default()
	f.Fuzz(func(t *testing.T, raw string) {
		n, err := c.NormalizeURL(raw)
		if err != nil {
			if !slices.ContainsFunc(sentinelErrors, func(e error) bool { return errors.Is(err, e) }) {
				t.Fatalf("unexpected error kind %v", err)
			}
			// Fixed texts only: the input (which may hold a secret) is never echoed. The two
			// wrapped errors add catalog data (reason, documented bases) after the fixed text.
			if !errors.Is(err, ErrLegacyHost) && !errors.Is(err, ErrUnknownSurface) && !slices.ContainsFunc(sentinelErrors, func(e error) bool { return err.Error() == e.Error() }) {
				t.Fatalf("error text is not a fixed message: %v", err)
			}
			return
		}
		if !strings.HasPrefix(n.BaseURL, "https://") && !strings.HasPrefix(n.BaseURL, "http://") {
			t.Fatalf("BaseURL %q has no http(s) scheme", n.BaseURL)
		}
		if strings.HasSuffix(n.BaseURL, "/") || strings.ContainsAny(n.BaseURL, "?#") {
			t.Fatalf("BaseURL %q has a trailing slash, query or fragment", n.BaseURL)
		}
		u, perr := url.Parse(n.BaseURL)
		if perr != nil {
			t.Fatalf("BaseURL %q does not parse: %v", n.BaseURL, perr)
		}
		if u.User != nil || u.Hostname() != n.Host || n.Host != strings.ToLower(n.Host) || n.Host == "" {
			t.Fatalf("BaseURL %q host %q", n.BaseURL, n.Host)
		}
		if n.Protocol != "openai" && n.Protocol != "anthropic" {
			t.Fatalf("protocol %q", n.Protocol)
		}
		if _, err := c.NormalizeURL(n.BaseURL); err != nil {
			t.Fatalf("normalised URL %q rejected: %v", n.BaseURL, err)
		}
	})
}

var methods = []string{MethodExact, MethodCase, MethodSeparator, MethodAlias, MethodRetired, MethodFuzzy,
	MethodAmbiguous, MethodUnresolved, MethodDefault}

func FuzzResolveModels(f *testing.F) {
	f.Add(uint8(0), "deepseek-chat,DeepSeek-V3", "")
	f.Add(uint8(1), "Kimi-K2.6 ,kimi-k2-6,kimi-k2-0711-preview", "kimi-k2.6,kimi-k3")
	f.Add(uint8(3), "minimax-m3", "MiniMax-M3,MiniMax-M2.7")
	f.Add(uint8(4), "glm-5.4,glm-5.2[1m]", "")
	f.Add(uint8(7), "ep-20260101123456-abcde,doubao-seed-2.1-pro", "")
	f.Add(uint8(9), "hunyuan-lite", "")
	f.Add(uint8(14), "FOO-1", "Foo-1,foo-1")
	f.Add(uint8(14), "", "text-embedding,gpt-x, ,gpt-x")
	f.Add(uint8(200), "x", "y")
	c := Default()
	ids := []string{}
	for _, p := range c.Providers() {
		ids = append(ids, p.ID)
	}
	ids = append(ids, "unknown-provider")
	f.Fuzz(func(t *testing.T, pi uint8, reqs, avail string) {
		provider := ids[int(pi)%len(ids)]
		requested := strings.Split(reqs, ",")
		var available []string
		if avail != "" {
			available = strings.Split(avail, ",")
		}
		res := c.ResolveModels(provider, requested, available)
		asked := 0
		for _, r := range requested {
			if cleanName(r) != "" {
				asked++
			}
		}
		if asked > 0 && len(res.Corrections) != asked {
			t.Fatalf("%d names, %d corrections", asked, len(res.Corrections))
		}
		unresolved := 0
		for _, corr := range res.Corrections {
			if !slices.Contains(methods, corr.Method) {
				t.Fatalf("unknown method %q", corr.Method)
			}
			if corr.Resolved == "" {
				unresolved++
				if corr.Method != MethodAmbiguous && corr.Method != MethodUnresolved {
					t.Fatalf("empty resolution by %q", corr.Method)
				}
			} else if corr.Method == MethodAmbiguous || corr.Method == MethodUnresolved {
				t.Fatalf("%q resolved to %q by %q", corr.Requested, corr.Resolved, corr.Method)
			}
		}
		if unresolved != len(res.Unresolved) {
			t.Fatalf("%d empty corrections, %d unresolved", unresolved, len(res.Unresolved))
		}
		seen := map[string]bool{}
		listed := map[string]bool{}
		for _, a := range available {
			listed[strings.TrimSpace(a)] = true
		}
		delete(listed, "")
		for _, m := range res.Models {
			if seen[m] || m == "" {
				t.Fatalf("duplicate or empty model %q in %v", m, res.Models)
			}
			seen[m] = true
			if len(listed) > 0 && !listed[m] && !isPassthrough(c, provider, m) {
				t.Fatalf("resolved %q is not in the upstream list %v", m, available)
			}
		}
		if res.SmokeModel != "" && !seen[res.SmokeModel] {
			t.Fatalf("smoke model %q not among %v", res.SmokeModel, res.Models)
		}
	})
}

func isPassthrough(c *Catalog, provider, id string) bool {
	p, ok := c.Provider(provider)
	return ok && p.passthrough != nil && p.passthrough.MatchString(id)
}

// FuzzDetect checks the detector's promises on arbitrary input: it always names a catalog
// provider; the key's shape decides only when no base URL is given; a suggestion is a
// catalog provider other than the answer; a host the normaliser places is decided by host.
func FuzzDetect(f *testing.F) {
	for _, s := range [][3]string{
		{"https://api.deepseek.com", "sk-or-v1-abc", ""},
		{"https://api.deepseek.com.relay.example/v1", "sk-0123456789abcdef0123456789abcdef", ""},
		{"http://127.0.0.1:8080", "sk-kimi-abcdef", "zhipu"},
		{"", "bce-v3/ALTAK-a/b", ""},
		{"", "", ""},
		{"https://api.minimaxi.com/anthropic", "sk-cp-x", "kimi"},
		{"not a url", "01234567-89ab-cdef-0123-456789abcdef", "Moonshot"},
		{"https://aip.baidubce.com/rpc/2.0", "sk-x", ""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	c := Default()
	bys := []string{ByHost, ByHint, ByKeyHint, ByDefault}
	f.Fuzz(func(t *testing.T, base, key, hint string) {
		d := c.Detect(base, key, hint)
		if _, ok := c.Provider(d.ProviderID); !ok || !slices.Contains(bys, d.By) {
			t.Fatalf("Detect = %+v", d)
		}
		if strings.TrimSpace(base) != "" && d.By == ByKeyHint {
			t.Fatalf("the key's shape decided although a base URL was given: %+v", d)
		}
		if d.Suggested != "" {
			if _, ok := c.Provider(d.Suggested); !ok || d.Suggested == d.ProviderID {
				t.Fatalf("suggestion %q with answer %q", d.Suggested, d.ProviderID)
			}
		}
		it := c.Interpret(Input{BaseURL: base, APIKey: key, Hint: hint})
		if it.Refusal == "" {
			if it.URL.BaseURL == "" {
				t.Fatal("answered without a base URL")
			}
			if it.URL.ProviderID != "" && (it.Detection.By != ByHost || it.Detection.ProviderID != it.URL.ProviderID) {
				t.Fatalf("known host %s decided by %+v", it.URL.ProviderID, it.Detection)
			}
			if it.URL.ProviderID == "" && it.URL.AnthropicBase != "" {
				t.Fatalf("an Anthropic base %q invented for an unknown host", it.URL.AnthropicBase)
			}
		}
	})
}
