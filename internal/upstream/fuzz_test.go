package upstream

import (
	"net/http"
	"testing"

	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
)

// FuzzClassify checks that arbitrary answers never panic, that 4xx/5xx answers are always
// classified, and that classified errors carry a known class and a bounded message.
func FuzzClassify(f *testing.F) {
	f.Add("minimax", 200, `{"base_resp":{"status_code":1008,"status_msg":"insufficient balance"}}`)
	f.Add("glm", 429, `{"error":{"code":"1113","message":"Insufficient balance"}}`)
	f.Add("siliconflow", 401, `{"code":30014,"data":null,"message":"Token is invalid."}`)
	f.Add("deepseek", 200, `{"choices":[{"index":0}]}`)
	f.Add("kimi", 429, `{"error":{"type":"exceeded_current_quota_error"}}`)
	f.Add("qianfan", 200, `{"error_code":110,"error_msg":"Access token invalid"}`)
	f.Add("x", 503, `<html>`)
	f.Add("openai_compatible", 200, `{"error":"boom"}`)
	f.Fuzz(func(t *testing.T, provider string, status int, body string) {
		fe := Classify(provider, status, http.Header{}, []byte(body))
		if status >= 400 && fe == nil {
			t.Fatalf("status %d not classified", status)
		}
		if fe == nil {
			return
		}
		known := false
		for _, c := range failure.All {
			known = known || c == fe.Class
		}
		if !known {
			t.Fatalf("unknown class %q", fe.Class)
		}
		if len(fe.Message) > 600 {
			t.Fatalf("message too long: %d", len(fe.Message))
		}
	})
}
