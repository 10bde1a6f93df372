package upstream_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/catalog"
	"github.com/cn-relay-manager/cn-relay-manager/internal/evidence"
	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/upstreamsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/upstream"
)

const (
	keyOK      = "sk-simok0123456789abcdefSECRET01"
	keyInvalid = "sk-siminvalid0123456789SECRET02"
	keyUnknown = "sk-simunknown0123456789SECRET03"
	keyQuota   = "sk-simquota0123456789abcSECRET04"
	keyRate    = "sk-simrate0123456789abcdSECRET05"
	keyBanned  = "sk-simbanned0123456789abSECRET06"
	key200     = "sk-sim200err0123456789abSECRET07"
	keyChat    = "sk-simchatonly0123456789SECRET08"
	keySlow    = "sk-simslow0123456789abcdSECRET09"
)

var allKeys = []string{keyOK, keyInvalid, keyUnknown, keyQuota, keyRate, keyBanned, key200, keyChat, keySlow}

func startSim(t *testing.T, opts upstreamsim.Options) *upstreamsim.Server {
	t.Helper()
	s, err := upstreamsim.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	s.AddKey(keyOK, upstreamsim.ModeOK)
	s.AddKey(keyInvalid, upstreamsim.ModeInvalid)
	s.AddKey(keyQuota, upstreamsim.ModeNoQuota)
	s.AddKey(keyRate, upstreamsim.ModeRateLimited)
	s.AddKey(keyBanned, upstreamsim.ModeBanned)
	s.AddKey(key200, upstreamsim.ModeErrorIn200)
	s.AddKey(keyChat, upstreamsim.ModeChatOnly)
	s.AddKey(keySlow, upstreamsim.ModeSlow)
	return s
}

func providerIDs() []string {
	var ids []string
	for _, p := range catalog.Default().Providers() {
		ids = append(ids, p.ID)
	}
	return ids
}

// assertNoKey fails when any key (or an 8+ char fragment) shows up in text.
func assertNoKey(t *testing.T, where, text string) {
	t.Helper()
	for _, k := range allKeys {
		if evidence.Redact(text, k) != text {
			t.Errorf("%s leaks key material: %q", where, text)
		}
	}
}

func checkEvidence(t *testing.T, rec *evidence.Recorder) {
	t.Helper()
	ex := rec.Exchanges()
	if len(ex) == 0 {
		t.Error("no evidence recorded")
	}
	for _, e := range ex {
		if e.Target != "upstream" || e.Method == "" || e.Path == "" || e.At.IsZero() {
			t.Errorf("incomplete evidence %+v", e)
		}
		assertNoKey(t, "evidence preview", e.Preview)
		assertNoKey(t, "evidence error", e.Error)
	}
}

func TestProbeOKEveryProvider(t *testing.T) {
	sim := startSim(t, upstreamsim.Options{})
	p := upstream.NewProber(upstream.Options{Timeout: 5 * time.Second})
	for _, id := range providerIDs() {
		t.Run(id, func(t *testing.T) {
			rec := &evidence.Recorder{}
			ctx := evidence.WithRecorder(context.Background(), rec)
			c, err := p.Probe(ctx, upstream.Target{BaseURL: sim.BaseURL(id), APIKey: keyOK, ProviderID: id})
			if err != nil {
				t.Fatalf("Probe: %v (notes %v)", err, c.Notes)
			}
			prov, _ := catalog.Default().Provider(id)
			if !c.Chat || !c.Stream || !c.Tools || c.ChatModel == "" {
				t.Errorf("capability %+v", c)
			}
			if c.ChatModel != c.Resolution.SmokeModel {
				t.Errorf("ChatModel %q != SmokeModel %q", c.ChatModel, c.Resolution.SmokeModel)
			}
			if prov.ListsModels != c.ModelsListed {
				t.Errorf("ModelsListed = %v, catalog says %v", c.ModelsListed, prov.ListsModels)
			}
			if len(c.Resolution.Models) == 0 {
				t.Error("no models resolved")
			}
			t.Logf("chat model %s, models %v, notes %v", c.ChatModel, c.Resolution.Models, c.Notes)
			if _, has := prov.AnthropicPath(); has != c.Anthropic {
				t.Errorf("Anthropic = %v, provider has one: %v (notes %v)", c.Anthropic, has, c.Notes)
			}
			if prov.Responses != c.Responses {
				t.Errorf("Responses = %v, provider documents it: %v (notes %v)", c.Responses, prov.Responses, c.Notes)
			}
			checkEvidence(t, rec)
		})
	}
}

func TestProbeRequestedModels(t *testing.T) {
	sim := startSim(t, upstreamsim.Options{})
	p := upstream.NewProber(upstream.Options{})
	c, err := p.Probe(context.Background(), upstream.Target{BaseURL: sim.BaseURL("kimi"), APIKey: keyOK, ProviderID: "kimi",
		Models: []string{"Kimi-K2.6 ", "kimi-k2-0711-preview", "kimi-k2-7-code", "no-such-model-at-all"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.ChatModel != "kimi-k2.6" {
		t.Errorf("ChatModel = %q", c.ChatModel)
	}
	want := []string{"kimi-k2.6", "kimi-k2.7-code"}
	if strings.Join(c.Resolution.Models, ",") != strings.Join(want, ",") {
		t.Errorf("Models = %v, want %v", c.Resolution.Models, want)
	}
	if len(c.Resolution.Unresolved) != 1 || len(c.Notes) == 0 {
		t.Errorf("Unresolved = %v, notes %v", c.Resolution.Unresolved, c.Notes)
	}

	_, err = p.Probe(context.Background(), upstream.Target{BaseURL: sim.BaseURL("glm"), APIKey: keyOK, ProviderID: "glm",
		Models: []string{"gpt-4o-mini-nonexistent"}})
	if failure.ClassOf(err) != failure.ModelNotFound {
		t.Errorf("unresolvable request: err = %v, want model_not_found", err)
	}
}

func TestProbeFailuresEveryProvider(t *testing.T) {
	sim := startSim(t, upstreamsim.Options{})
	p := upstream.NewProber(upstream.Options{Timeout: 5 * time.Second})
	cases := []struct {
		key   string
		class failure.Class
	}{
		{keyInvalid, failure.InvalidKey},
		{keyUnknown, failure.InvalidKey},
		{keyQuota, failure.NoQuota},
		{keyRate, failure.RateLimited},
		{keyBanned, failure.KeyBanned},
		{key200, failure.NoQuota},
	}
	for _, id := range providerIDs() {
		for _, tc := range cases {
			rec := &evidence.Recorder{}
			ctx := evidence.WithRecorder(context.Background(), rec)
			c, err := p.Probe(ctx, upstream.Target{BaseURL: sim.BaseURL(id), APIKey: tc.key, ProviderID: id})
			for _, n := range c.Notes {
				assertNoKey(t, id+" note", n)
			}
			var fe *failure.Error
			if !errors.As(err, &fe) {
				t.Errorf("%s/%s: err = %v, want *failure.Error", id, tc.class, err)
				continue
			}
			if fe.Class != tc.class {
				t.Errorf("%s key %s: class %s (%s), want %s", id, tc.key[:14], fe.Class, fe.Message, tc.class)
			}
			if tc.class == failure.RateLimited && (!fe.Retryable || fe.RetryAfter != upstreamsim.RetryAfterSeconds*time.Second) {
				t.Errorf("%s rate limit: retryable %v RetryAfter %v", id, fe.Retryable, fe.RetryAfter)
			}
			assertNoKey(t, id+" error", err.Error())
			checkEvidence(t, rec)
		}
	}
}

func TestProbeChatOnly(t *testing.T) {
	sim := startSim(t, upstreamsim.Options{})
	p := upstream.NewProber(upstream.Options{})
	c, err := p.Probe(context.Background(), upstream.Target{BaseURL: sim.BaseURL("deepseek"), APIKey: keyChat, ProviderID: "deepseek"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Chat || !c.Stream || c.Responses || c.Anthropic {
		t.Errorf("chat_only capability %+v", c)
	}
}

func TestProbeDetectsProviderWhenNotGiven(t *testing.T) {
	sim := startSim(t, upstreamsim.Options{})
	p := upstream.NewProber(upstream.Options{})
	c, err := p.Probe(context.Background(), upstream.Target{BaseURL: sim.BaseURL(catalog.OpenAICompatible) + "/chat/completions", APIKey: keyOK})
	if err != nil {
		t.Fatal(err)
	}
	if c.ProviderID != catalog.OpenAICompatible || !c.Chat || !c.ModelsListed {
		t.Errorf("relay capability %+v", c)
	}
	if c.BaseURL != sim.BaseURL(catalog.OpenAICompatible) {
		t.Errorf("BaseURL %q: pasted suffix not stripped", c.BaseURL)
	}
}

func TestProbeMaxTokensFallback(t *testing.T) {
	sim := startSim(t, upstreamsim.Options{RejectMaxCompletionTokens: []string{"qianfan"}})
	p := upstream.NewProber(upstream.Options{})
	c, err := p.Probe(context.Background(), upstream.Target{BaseURL: sim.BaseURL("qianfan"), APIKey: keyOK, ProviderID: "qianfan"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Chat || c.TokenParam != "max_tokens" || !c.Stream {
		t.Errorf("fallback capability %+v", c)
	}
}

func TestProbeUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // a closed port: connection refused
	p := upstream.NewProber(upstream.Options{Timeout: 2 * time.Second})
	rec := &evidence.Recorder{}
	ctx := evidence.WithRecorder(context.Background(), rec)
	_, err = p.Probe(ctx, upstream.Target{BaseURL: "http://" + addr + "/v1", APIKey: keyOK})
	var fe *failure.Error
	if !errors.As(err, &fe) || fe.Class != failure.UpstreamUnreachable || !fe.Retryable {
		t.Fatalf("err = %v, want retryable upstream_unreachable", err)
	}
	assertNoKey(t, "unreachable error", err.Error())
	ex := rec.Exchanges()
	if len(ex) != 1 || ex[0].Status != 0 || ex[0].Error == "" {
		t.Errorf("evidence %+v", ex)
	}
}

func TestProbeTimeout(t *testing.T) {
	sim := startSim(t, upstreamsim.Options{SlowDelay: 2 * time.Second})
	p := upstream.NewProber(upstream.Options{Timeout: 200 * time.Millisecond})
	start := time.Now()
	_, err := p.Probe(context.Background(), upstream.Target{BaseURL: sim.BaseURL("minimax"), APIKey: keySlow, ProviderID: "minimax"})
	if failure.ClassOf(err) != failure.UpstreamUnreachable || !failure.IsRetryable(err) {
		t.Fatalf("err = %v, want retryable upstream_unreachable", err)
	}
	if time.Since(start) > 1500*time.Millisecond {
		t.Errorf("timeout not bounded: %v", time.Since(start))
	}
}

func TestChat(t *testing.T) {
	sim := startSim(t, upstreamsim.Options{})
	p := upstream.NewProber(upstream.Options{})
	ctx := context.Background()
	if err := p.Chat(ctx, sim.BaseURL("minimax"), keyOK, "minimax", "MiniMax-M3"); err != nil {
		t.Errorf("Chat ok: %v", err)
	}
	if err := p.Chat(ctx, sim.BaseURL("minimax"), keyOK, "minimax", "minimax-m3"); failure.ClassOf(err) != failure.ModelNotFound {
		t.Errorf("wrong case on a case-sensitive provider: %v", err)
	}
	if err := p.Chat(ctx, sim.BaseURL("deepseek"), keyQuota, "deepseek", "deepseek-flash"); failure.ClassOf(err) != failure.NoQuota {
		t.Errorf("Chat no quota: %v", err)
	}
	// Quota runs out after import.
	sim.SetKeyMode(keyOK, upstreamsim.ModeNoQuota)
	if err := p.Chat(ctx, sim.BaseURL("kimi"), keyOK, "kimi", "kimi-k2.6"); failure.ClassOf(err) != failure.NoQuota {
		t.Errorf("Chat after SetKeyMode: %v", err)
	}
	if err := p.Chat(ctx, "ftp://x", keyOK, "", "m"); err == nil {
		t.Error("Chat accepted a bad base URL")
	}
}

func TestProbeOnlyNonChatModelsRequested(t *testing.T) {
	sim := startSim(t, upstreamsim.Options{})
	p := upstream.NewProber(upstream.Options{})
	c, err := p.Probe(context.Background(), upstream.Target{BaseURL: sim.BaseURL("stepfun"), APIKey: keyOK, ProviderID: "stepfun",
		Models: []string{"step-1x-medium"}})
	if failure.ClassOf(err) != failure.ModelNotFound || c.Chat {
		t.Fatalf("image-only request: err %v, cap %+v", err, c)
	}
	if len(c.Resolution.Models) != 1 || c.Resolution.Models[0] != "step-2x-large" {
		t.Errorf("resolution %+v", c.Resolution)
	}
}

// Tested lists what the upstream answered conclusively: everything for a working key (the
// Anthropic endpoint where the provider has one), nothing for a refused key, whose
// capabilities are "not tested" rather than unsupported.
func TestProbeSaysWhatItTested(t *testing.T) {
	sim := startSim(t, upstreamsim.Options{})
	p := upstream.NewProber(upstream.Options{Timeout: 5 * time.Second})
	c, err := p.Probe(context.Background(), upstream.Target{BaseURL: sim.BaseURL("deepseek"), APIKey: keyOK, ProviderID: "deepseek"})
	if err != nil {
		t.Fatal(err)
	}
	prov, _ := catalog.Default().Provider("deepseek")
	want := []string{"models_listed", "chat", "stream", "tools"}
	if prov.Responses {
		want = append(want, "responses")
	}
	if _, has := prov.AnthropicPath(); has {
		want = append(want, "anthropic")
	}
	if strings.Join(c.Tested, ",") != strings.Join(want, ",") {
		t.Errorf("tested %v, want %v", c.Tested, want)
	}
	c, err = p.Probe(context.Background(), upstream.Target{BaseURL: sim.BaseURL("deepseek"), APIKey: keyInvalid, ProviderID: "deepseek"})
	if err == nil || c == nil {
		t.Fatalf("invalid key: %v", err)
	}
	if len(c.Tested) != 0 {
		t.Errorf("an invalid key tested %v", c.Tested)
	}
}
