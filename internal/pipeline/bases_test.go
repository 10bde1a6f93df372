package pipeline

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/cn-relay-manager/cn-relay-manager/internal/catalog"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/upstreamsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/step"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
	"github.com/cn-relay-manager/cn-relay-manager/internal/upstream"
)

// simRouter sends requests for real provider hosts to the simulator, which serves
// provider X under /X; loopback requests (the simulated relay) pass through.
type simRouter struct {
	sim   *url.URL
	hosts map[string]string
}

func (r simRouter) RoundTrip(req *http.Request) (*http.Response, error) {
	if id, ok := r.hosts[req.URL.Hostname()]; ok {
		req = req.Clone(req.Context())
		req.URL.Scheme, req.URL.Host, req.Host = r.sim.Scheme, r.sim.Host, r.sim.Host
		req.URL.Path = "/" + id + req.URL.Path
	}
	return http.DefaultTransport.RoundTrip(req)
}

// TestImportStoresBothBases: the import step stores the mapped OpenAI base and the kept
// Anthropic base of a pasted Anthropic URL, and for an unknown host the generic provider
// with the key's shape only as a suggestion.
func TestImportStoresBothBases(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	su, _ := url.Parse(h.up.URL())
	h.eng.Prober = upstream.NewProber(upstream.Options{Catalog: catalog.Default(),
		HTTPClient: &http.Client{Transport: simRouter{sim: su, hosts: map[string]string{"api.minimaxi.com": "minimax"}}}})
	ctx := context.Background()
	const mmKey, relayKey = "sk-cp-pipelinetest0123456789abcdef", "sk-0123456789abcdef0123456789abcdef"
	h.up.AddKey(mmKey, upstreamsim.ModeOK)
	h.up.AddKey(relayKey, upstreamsim.ModeOK)
	item := func(base, key string) *store.Item {
		sealed, _ := h.box.Seal(key)
		return &store.Item{Name: key, BaseURL: base, APIKeyEnc: sealed, KeyMasked: secret.Mask(key),
			KeyFingerprint: h.box.Fingerprint(key), Step: step.Import}
	}
	mm := item("https://api.minimaxi.com/anthropic/v1/messages", mmKey)
	relay := item(h.up.BaseURL(catalog.OpenAICompatible), relayKey)
	b := &store.Batch{HostID: h.host.ID, Mode: ModeSelfService, DryRun: true}
	if err := h.store.CreateBatch(ctx, b, []*store.Item{mm, relay}); err != nil {
		t.Fatal(err)
	}

	got := h.drive(mm.ID)
	if got.Status != store.ItemSkipped {
		t.Fatalf("minimax item: %s %s %s", got.Status, got.FailureClass, got.FailureMessage)
	}
	if got.NormalizedURL != "https://api.minimaxi.com/v1" || got.AnthropicBaseURL != "https://api.minimaxi.com/anthropic" ||
		got.Provider != "minimax" || got.DetectedBy != catalog.ByHost || got.SuggestedProvider != "" {
		t.Errorf("minimax item: openai %q anthropic %q provider %q by %q suggested %q", got.NormalizedURL, got.AnthropicBaseURL,
			got.Provider, got.DetectedBy, got.SuggestedProvider)
	}
	if got.Capability["anthropic"] != true || got.Capability["chat"] != true {
		t.Errorf("minimax capability %v", got.Capability)
	}
	acc, _ := got.Plan["account"].(map[string]any)
	creds, _ := acc["credentials"].(map[string]any)
	if base, _ := creds["base_url"].(string); !strings.HasPrefix(base, "https://api.minimaxi.com/v1") {
		t.Errorf("the host would get base_url %q, not the OpenAI base", base)
	}

	got = h.drive(relay.ID)
	if got.Status != store.ItemSkipped {
		t.Fatalf("relay item: %s %s %s", got.Status, got.FailureClass, got.FailureMessage)
	}
	if got.Provider != catalog.OpenAICompatible || got.DetectedBy != catalog.ByDefault || got.SuggestedProvider != "deepseek" ||
		got.NormalizedURL != h.up.BaseURL(catalog.OpenAICompatible) || got.AnthropicBaseURL != "" {
		t.Errorf("relay item: provider %q by %q suggested %q openai %q anthropic %q", got.Provider, got.DetectedBy, got.SuggestedProvider,
			got.NormalizedURL, got.AnthropicBaseURL)
	}
}
