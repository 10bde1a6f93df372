package cli

import (
	"net/http"
	"strings"
	"testing"
)

// TestSubmitAndShowReportBothBases: after a submit the CLI prints, per item, the provider,
// the OpenAI-compatible base and the Anthropic-compatible base kept beside it; batch show
// of one item prints both bases and how the provider was decided.
func TestSubmitAndShowReportBothBases(t *testing.T) {
	f := newFakeAPI(t)
	f.handle("POST /api/v1/batches", func(*http.Request, []byte) (int, any) {
		return 201, map[string]any{"batch": map[string]any{"id": "b-1", "host_id": "h-1", "mode": "none", "status": "queued", "item_count": 2}, "enqueued": 2,
			"items": []map[string]any{
				{"index": 0, "id": "i-1", "name": "mm", "provider": "minimax", "detected_by": "host", "normalized_url": "https://api.minimaxi.com/v1",
					"anthropic_base_url": "https://api.minimaxi.com/anthropic", "notes": []string{"mapped the pasted Anthropic-compatible base"}},
				{"index": 1, "id": "i-2", "name": "relay", "provider": "openai_compatible", "detected_by": "default", "suggested_provider": "deepseek",
					"normalized_url": "http://127.0.0.1:8080/v1", "anthropic_base_url": "", "notes": []string{}},
			}}
	})
	in := "https://api.minimaxi.com/anthropic/v1/messages sk-cp-aaaaaaaaaaaaaaaa0001\nhttp://127.0.0.1:8080/v1 sk-0123456789abcdef0123456789abcdef\n"
	r := f.run(t, in, "batch", "submit", "--host", "h-1", "--mode", "none")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"OPENAI BASE", "ANTHROPIC BASE",
		"1  mm     minimax", "https://api.minimaxi.com/v1", "https://api.minimaxi.com/anthropic", "mapped the pasted Anthropic-compatible base",
		"openai_compatible (key looks like deepseek)", "http://127.0.0.1:8080/v1"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("submit output lacks %q:\n%s", want, r.stdout)
		}
	}

	f.handle("GET /api/v1/batches/b-1/items/i-1", func(*http.Request, []byte) (int, any) {
		return 200, map[string]any{"item": map[string]any{"id": "i-1", "index": 0, "name": "mm", "status": "ready", "provider": "minimax",
			"detected_by": "host", "base_url": "https://api.minimaxi.com/anthropic/v1/messages", "normalized_url": "https://api.minimaxi.com/v1",
			"anthropic_base_url": "https://api.minimaxi.com/anthropic"}, "attempts": []any{}}
	})
	r = f.run(t, "", "batch", "show", "b-1", "--item", "i-1")
	for _, want := range []string{"detected by:", "host", "openai base:", "https://api.minimaxi.com/v1", "anthropic base:", "https://api.minimaxi.com/anthropic"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("item output lacks %q:\n%s", want, r.stdout)
		}
	}
}
