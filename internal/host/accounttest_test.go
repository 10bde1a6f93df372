package host

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func runAccountTest(t *testing.T, version, fixture string) (*TestResult, error, *replay) {
	t.Helper()
	rp := newReplay(t, version, fixture)
	fx := loadFixture(t, version, fixture)
	var body struct {
		ModelID string `json:"model_id"`
	}
	requestBody(t, fx, &body)
	res, err := rp.adminClient().TestAccount(context.Background(), pathID(t, fx), body.ModelID)
	assertSentAsRecorded(t, fx, rp.last())
	if got := rp.last().Header.Get("Accept"); got != "text/event-stream" {
		t.Errorf("Accept = %q", got)
	}
	return res, err, rp
}

func TestAccountTestSuccess(t *testing.T) {
	cases := []struct{ version, fixture, model string }{
		{"0.1.129", "accounts.test.ok", "fake-upstream-model"},
		{"0.1.179", "accounts.test.ok", "fake-upstream-model"},
		{"fork-0.1.321", "accounts.test.ok", "gpt-4o-mini"},
		{"0.1.179", "accounts.test.deepseek.ok", "deepseek-chat"},
		{"0.1.179", "accounts.test.kimi.ok", "kimi-k2.6"},
		{"0.1.179", "accounts.test.zhipu.ok", "glm-5.1"},
		{"fork-0.1.321", "accounts.test.protocol-gateway.ok", "deepseek-chat"},
		{"0.1.129", "accounts.test.unmapped-model", "gpt-5"},
	}
	for _, tc := range cases {
		t.Run(tc.version+"/"+tc.fixture, func(t *testing.T) {
			res, err, _ := runAccountTest(t, tc.version, tc.fixture)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Success || res.Error != "" || res.Model != tc.model {
				t.Fatalf("result %+v", res)
			}
			if !strings.HasPrefix(res.ContentType, "text/event-stream") {
				t.Errorf("content type %q", res.ContentType)
			}
			last := res.Events[len(res.Events)-1]
			if last.Type != "test_complete" || !last.Success {
				t.Errorf("last event %+v", last)
			}
			if !strings.Contains(res.Output(), "Hello") || strings.Contains(res.Output(), "Test mode") {
				t.Errorf("output %q", res.Output())
			}
			if tc.version == "fork-0.1.321" {
				meta := 0
				for _, e := range res.Events {
					if e.Kind == "runtime_meta" {
						meta++
					}
				}
				if meta == 0 {
					t.Error("fork runtime_meta events not marked")
				}
			}
		})
	}
}

func TestAccountTestFailures(t *testing.T) {
	cases := []struct{ version, fixture, errPart, contentType string }{
		{"0.1.129", "accounts.test.upstream-401", "API returned 401", "text/event-stream"},
		{"0.1.179", "accounts.test.upstream-401", "API returned 401", "text/event-stream"},
		{"fork-0.1.321", "accounts.test.upstream-401", "upstream error: 401", "text/event-stream"},
		{"0.1.179", "accounts.test.deepseek-upstream-401", "Chat Completions API", "text/event-stream"},
		// Unknown id on 129/179: 200 text/plain with one error event.
		{"0.1.129", "accounts.test.not-found", "Account not found", "text/plain"},
		{"0.1.179", "accounts.test.not-found", "Account not found", "text/plain"},
		// 129 cannot test forced/chat-only accounts: one Chinese error event, no upstream call.
		{"0.1.129", "accounts.test.force-chat-completions", "Responses API", "text/plain"},
		{"0.1.129", "accounts.test.chat-only-upstream", "Responses API", "text/plain"},
		{"fork-0.1.321", "accounts.test.chat-only-upstream", "", "text/event-stream"},
	}
	for _, tc := range cases {
		t.Run(tc.version+"/"+tc.fixture, func(t *testing.T) {
			res, err, _ := runAccountTest(t, tc.version, tc.fixture)
			if err != nil {
				t.Fatal(err)
			}
			if res.Success || res.Error == "" || !strings.Contains(res.Error, tc.errPart) {
				t.Fatalf("result %+v", res)
			}
			if !strings.HasPrefix(res.ContentType, tc.contentType) {
				t.Errorf("content type %q, want %s", res.ContentType, tc.contentType)
			}
		})
	}
}

func TestAccountTestForkJSONErrors(t *testing.T) {
	_, err, _ := runAccountTest(t, "fork-0.1.321", "accounts.test.not-found")
	mustHostError(t, err, 404, "ACCOUNT_NOT_FOUND")
	if !IsNotFound(err) {
		t.Error("IsNotFound false")
	}
	_, err, _ = runAccountTest(t, "fork-0.1.321", "accounts.test.unmapped-model")
	mustHostError(t, err, 400, "TEST_MODEL_NOT_ALLOWED")
}

func TestAccountTestTruncatedStream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte("data: {\"type\":\"test_start\",\"model\":\"m\"}\n\ndata: {\"type\":\"content\",\"text\":\"Hel\"}\n\n"))
	}))
	defer srv.Close()
	res, err := New(Config{AdminURL: srv.URL, AdminAPIKey: testAdminKey}).TestAccount(context.Background(), 1, "m")
	if err != nil {
		t.Fatal(err)
	}
	if res.Success || !strings.Contains(res.Error, "without test_complete") || len(res.Events) != 2 {
		t.Fatalf("truncated stream result %+v", res)
	}
}
