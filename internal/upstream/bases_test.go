package upstream_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/upstreamsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/upstream"
)

// hostRouter sends requests for the providers' real hosts to the simulator (which serves
// provider id X under /X) and records every URL the prober asked for.
type hostRouter struct {
	sim   *url.URL
	hosts map[string]string // real host -> provider id
	mu    sync.Mutex
	urls  []string
}

func (h *hostRouter) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.urls = append(h.urls, r.Method+" "+r.URL.String())
	h.mu.Unlock()
	id, ok := h.hosts[r.URL.Hostname()]
	if !ok {
		return nil, &url.Error{Op: r.Method, URL: r.URL.Host, Err: http.ErrNotSupported}
	}
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host = h.sim.Scheme, h.sim.Host
	out.URL.Path = "/" + id + r.URL.Path
	out.Host = h.sim.Host
	return http.DefaultTransport.RoundTrip(out)
}

func (h *hostRouter) seen() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.urls...)
}

// TestProbePastedAnthropicBase pastes Anthropic-compatible bases of real providers and
// checks that each protocol is probed at its own base: models, chat, stream and tools at
// the mapped OpenAI base, /v1/messages at the Anthropic base kept beside it, and nothing
// at "…/anthropic/models" or "…/anthropic/chat/completions".
func TestProbePastedAnthropicBase(t *testing.T) {
	sim := startSim(t, upstreamsim.Options{})
	su, err := url.Parse(sim.URL())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		provider, pasted, openAI, anthropic string
	}{
		{"minimax", "https://api.minimaxi.com/anthropic/v1/messages", "https://api.minimaxi.com/v1", "https://api.minimaxi.com/anthropic"},
		{"deepseek", "https://api.deepseek.com/anthropic", "https://api.deepseek.com", "https://api.deepseek.com/anthropic"},
		{"kimi", "https://api.moonshot.ai/anthropic", "https://api.moonshot.ai/v1", "https://api.moonshot.ai/anthropic"},
		{"kimi_coding", "https://api.kimi.com/coding/", "https://api.kimi.com/coding/v1", "https://api.kimi.com/coding"},
		{"glm", "https://api.z.ai/api/anthropic", "https://api.z.ai/api/paas/v4", "https://api.z.ai/api/anthropic"},
		{"qwen", "https://dashscope-intl.aliyuncs.com/apps/anthropic/v1/messages", "https://dashscope-intl.aliyuncs.com/compatible-mode/v1", "https://dashscope-intl.aliyuncs.com/apps/anthropic"},
		{"stepfun", "https://api.stepfun.com/v1/messages", "https://api.stepfun.com/v1", "https://api.stepfun.com"},
		{"ark", "https://ark.cn-beijing.volces.com/api/compatible", "https://ark.cn-beijing.volces.com/api/v3", "https://ark.cn-beijing.volces.com/api/compatible"},
		{"openrouter", "https://openrouter.ai/api", "https://openrouter.ai/api/v1", "https://openrouter.ai/api"},
	}
	for _, tc := range cases {
		t.Run(tc.provider, func(t *testing.T) {
			u, _ := url.Parse(tc.openAI)
			rt := &hostRouter{sim: su, hosts: map[string]string{u.Hostname(): tc.provider}}
			p := upstream.NewProber(upstream.Options{HTTPClient: &http.Client{Transport: rt}, Timeout: 5 * time.Second})
			c, err := p.Probe(context.Background(), upstream.Target{BaseURL: tc.pasted, APIKey: keyOK})
			if err != nil {
				t.Fatalf("Probe: %v (notes %v, calls %v)", err, c.Notes, rt.seen())
			}
			if c.ProviderID != tc.provider || c.BaseURL != tc.openAI || c.AnthropicBase != tc.anthropic {
				t.Errorf("probed %s at %q / %q, want %s at %q / %q", c.ProviderID, c.BaseURL, c.AnthropicBase, tc.provider, tc.openAI, tc.anthropic)
			}
			if !c.Chat || !c.Anthropic {
				t.Errorf("chat %v anthropic %v (notes %v)", c.Chat, c.Anthropic, c.Notes)
			}
			calls := rt.seen()
			if !slices.Contains(calls, "POST "+tc.openAI+"/chat/completions") || !slices.Contains(calls, "POST "+tc.anthropic+"/v1/messages") {
				t.Errorf("calls %v lack chat at the OpenAI base or messages at the Anthropic base", calls)
			}
			for _, call := range calls {
				_, target, _ := strings.Cut(call, " ")
				if strings.HasSuffix(target, "/v1/messages") {
					if target != tc.anthropic+"/v1/messages" {
						t.Errorf("messages call away from the Anthropic base: %s", call)
					}
				} else if !strings.HasPrefix(target, tc.openAI+"/") {
					t.Errorf("OpenAI-compatible call away from the OpenAI base: %s", call)
				}
			}
		})
	}
}

// TestProbeExplicitAnthropicBase: a caller that already knows both bases (the import step
// stores them) has the Anthropic one probed as given.
func TestProbeExplicitAnthropicBase(t *testing.T) {
	sim := startSim(t, upstreamsim.Options{})
	p := upstream.NewProber(upstream.Options{Timeout: 5 * time.Second})
	c, err := p.Probe(context.Background(), upstream.Target{BaseURL: sim.BaseURL("glm"), AnthropicBase: sim.AnthropicBaseURL("glm") + "/",
		APIKey: keyOK, ProviderID: "glm"})
	if err != nil {
		t.Fatal(err)
	}
	if c.AnthropicBase != sim.AnthropicBaseURL("glm") || !c.Anthropic {
		t.Errorf("anthropic %v at %q, want %q", c.Anthropic, c.AnthropicBase, sim.AnthropicBaseURL("glm"))
	}
	// A base with no Anthropic endpoint is not probed at a guessed one.
	c, err = p.Probe(context.Background(), upstream.Target{BaseURL: sim.BaseURL("qianfan"), APIKey: keyOK, ProviderID: "qianfan"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Anthropic || c.AnthropicBase != "" {
		t.Errorf("qianfan pay-as-you-go probed for Anthropic at %q", c.AnthropicBase)
	}
}

// TestProbeScopedModelList: without a model list from the upstream, a model served only in
// another region is refused with the reason instead of being sent.
func TestProbeScopedModelList(t *testing.T) {
	sim := startSim(t, upstreamsim.Options{})
	su, _ := url.Parse(sim.URL())
	rt := &hostRouter{sim: su, hosts: map[string]string{"ark.cn-beijing.volces.com": "ark"}}
	p := upstream.NewProber(upstream.Options{HTTPClient: &http.Client{Transport: rt}, Timeout: 5 * time.Second})
	// Ark lists no models; ark-code-latest is a Coding Plan alias, not served on /api/v3.
	c, err := p.Probe(context.Background(), upstream.Target{BaseURL: "https://ark.cn-beijing.volces.com/api/v3", APIKey: keyOK,
		Models: []string{"ark-code-latest", "doubao-seed-2.1-pro"}})
	if err != nil {
		t.Fatalf("Probe: %v (notes %v)", err, c.Notes)
	}
	if !slices.Equal(c.Resolution.Models, []string{"doubao-seed-2-1-pro-260628"}) {
		t.Errorf("models %v", c.Resolution.Models)
	}
	found := false
	for _, n := range c.Notes {
		found = found || strings.Contains(n, "ark-code-latest") && strings.Contains(n, "coding plan")
	}
	if !found {
		t.Errorf("notes %v do not say why ark-code-latest was left out", c.Notes)
	}
}
