package api

import (
	"strings"
	"testing"
)

// TestSubmitReportsBothBases: the submit answer and the item JSON carry, per item, the
// provider (and what decided it), the OpenAI-compatible base and the Anthropic-compatible
// base kept beside it; an unknown host gets the generic provider with the key's shape only
// as a suggestion.
func TestSubmitReportsBothBases(t *testing.T) {
	app, _, _ := newTestServer(t)
	hostID := registerHost(t, app)
	body := `{"host_id":"` + hostID + `","items":[` +
		`{"base_url":"https://api.minimaxi.com/anthropic/v1/messages","api_key":"sk-cp-submittest0123456789"},` +
		`{"base_url":"https://api.deepseek.com.relay.example/v1?stream=true&key=sk-query-secret-0001#top","api_key":"sk-0123456789abcdef0123456789abcdef"}]}`
	code, m, raw := call(t, app, "POST", "/api/v1/batches", body, true)
	if code != 201 {
		t.Fatalf("submit: %d %s", code, raw)
	}
	sub, _ := m["items"].([]any)
	if len(sub) != 2 {
		t.Fatalf("submit items: %v", m["items"])
	}
	want := []map[string]any{
		{"provider": "minimax", "detected_by": "host", "normalized_url": "https://api.minimaxi.com/v1", "anthropic_base_url": "https://api.minimaxi.com/anthropic"},
		{"provider": "openai_compatible", "detected_by": "default", "suggested_provider": "deepseek",
			"normalized_url": "https://api.deepseek.com.relay.example/v1", "anthropic_base_url": ""},
	}
	for i, w := range want {
		got := sub[i].(map[string]any)
		for k, v := range w {
			if got[k] != v {
				t.Errorf("submit item %d %s = %v, want %v", i, k, got[k], v)
			}
		}
	}
	if notes := sub[0].(map[string]any)["notes"].([]any); len(notes) == 0 || !strings.Contains(notes[0].(string), "Anthropic") {
		t.Errorf("mapping not noted: %v", notes)
	}
	if notes := sub[1].(map[string]any)["notes"].([]any); len(notes) != 2 || strings.Contains(raw, "sk-query-secret") {
		t.Errorf("dropped query and fragment not noted, or echoed: %v", notes)
	}
	batchID := m["batch"].(map[string]any)["id"].(string)
	code, m, raw = call(t, app, "GET", "/api/v1/batches/"+batchID+"/items", "", true)
	if code != 200 {
		t.Fatalf("items: %d %s", code, raw)
	}
	items := m["items"].([]any)
	first, second := items[0].(map[string]any), items[1].(map[string]any)
	if first["normalized_url"] != "https://api.minimaxi.com/v1" || first["anthropic_base_url"] != "https://api.minimaxi.com/anthropic" {
		t.Errorf("item bases: %v / %v", first["normalized_url"], first["anthropic_base_url"])
	}
	if second["provider"] != "openai_compatible" || second["suggested_provider"] != "deepseek" {
		t.Errorf("unknown host item: provider %v suggested %v", second["provider"], second["suggested_provider"])
	}
	// A query string may carry a secret: it is kept nowhere, not even in the pasted base_url.
	if strings.Contains(raw, "sk-query-secret") || second["base_url"] != "https://api.deepseek.com.relay.example/v1" {
		t.Errorf("pasted base_url kept its query: %v", second["base_url"])
	}
}

// TestSubmitRefusesWhatItCannotAnswer: lines whose base cannot be determined are refused
// with a reason the operator can act on, naming the item.
func TestSubmitRefusesWhatItCannotAnswer(t *testing.T) {
	app, _, _ := newTestServer(t)
	hostID := registerHost(t, app)
	for _, tc := range []struct{ item, reason string }{
		{`{"base_url":"https://qianfan.baidubce.com/anthropic","api_key":"bce-v3/ALTAK-abc/0123"}`, "https://qianfan.baidubce.com/v2/coding"},
		{`{"base_url":"https://relay.example.com/anthropic","api_key":"sk-x0123456789"}`, "paste the base that serves /chat/completions"},
		{`{"base_url":"","api_key":"sk-or-v1-0123456789abcdef"}`, "https://openrouter.ai/api/v1"},
	} {
		body := `{"host_id":"` + hostID + `","items":[{"base_url":"https://api.deepseek.com","api_key":"sk-first0123456789"},` + tc.item + `]}`
		code, m, raw := call(t, app, "POST", "/api/v1/batches", body, true)
		if code != 400 {
			t.Fatalf("%s: %d %s", tc.item, code, raw)
		}
		e, _ := m["error"].(map[string]any)
		if e["field"] != "items[1].base_url" || !strings.Contains(e["message"].(string), tc.reason) {
			t.Errorf("%s: refusal %v, want items[1].base_url and %q", tc.item, e, tc.reason)
		}
	}
}
