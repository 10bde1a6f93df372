package host

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cn-relay-manager/cn-relay-manager/internal/evidence"
	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
)

// leakyHost echoes every credential it receives in its error bodies, like a careless relay.
func leakyHost(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := make([]byte, 4096)
		n, _ := r.Body.Read(body)
		echo := r.Header.Get("x-api-key") + " " + r.Header.Get("Authorization") + " " + strings.ReplaceAll(string(body[:n]), `"`, `'`)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/"):
			w.WriteHeader(401)
			_, _ = w.Write([]byte(`{"error":{"message":"bad key ` + echo + `","type":"authentication_error"}}`))
		case strings.HasSuffix(r.URL.Path, "/test"):
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = w.Write([]byte(`data: {"type":"error","error":"API returned 401: key ` + testUpstreamKey + ` admin ` + testAdminKey + `"}` + "\n\n"))
		default:
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"code":400,"message":"rejected ` + echo + `","reason":"BAD","metadata":{"echo":"` + testAdminKey + `"}}`))
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

var allSecrets = []string{testAdminKey, testUserToken, testGatewayKey, testUpstreamKey, "User-Pw-5ecret-1", "custom-key-5ecret-000001"}

func assertNoSecret(t *testing.T, where, text string) {
	t.Helper()
	for _, s := range allSecrets {
		// Any 12-char window of a secret counts as a leak.
		for i := 0; i+12 <= len(s); i += 4 {
			if strings.Contains(text, s[i:i+12]) {
				t.Errorf("%s leaks %q: %s", where, s[i:i+12], text)
				return
			}
		}
	}
}

func TestSecretsNeverInErrorsOrPreviews(t *testing.T) {
	srv := leakyHost(t)
	var rec evidence.Recorder
	ctx := evidence.WithRecorder(context.Background(), &rec)
	c := New(Config{AdminURL: srv.URL, AdminAPIKey: testAdminKey})
	var errs []error
	_, err := c.CreateAccount(ctx, CreateAccountRequest{Name: "a", Platform: "openai", Type: "apikey",
		Credentials: map[string]any{"api_key": testUpstreamKey, "base_url": "https://x"}}, "idem-1")
	errs = append(errs, err)
	_, err = c.UpdateAccount(ctx, 1, UpdateAccountRequest{Credentials: map[string]any{"api_key": testUpstreamKey}})
	errs = append(errs, err)
	_, err = c.CreateUser(ctx, CreateUserRequest{Email: "u@example.com", Password: "User-Pw-5ecret-1"})
	errs = append(errs, err)
	_, err = c.Login(ctx, "u@example.com", "User-Pw-5ecret-1")
	errs = append(errs, err)
	_, err = c.CreateKey(ctx, testUserToken, CreateKeyRequest{Name: "k", CustomKey: "custom-key-5ecret-000001"}, "")
	errs = append(errs, err)
	_, err = c.GatewayModels(ctx, testGatewayKey)
	errs = append(errs, err)
	_, err = c.GatewayChat(ctx, testGatewayKey, ChatRequest{Model: "m"})
	errs = append(errs, err)
	for i, err := range errs {
		if err == nil {
			t.Fatalf("call %d: expected an error", i)
		}
		assertNoSecret(t, "Error()", err.Error())
		if he, ok := AsError(err); ok {
			assertNoSecret(t, "Message", he.Message)
			for _, v := range he.Metadata {
				if s, ok := v.(string); ok {
					assertNoSecret(t, "Metadata", s)
				}
			}
		} else {
			t.Errorf("call %d: not an *Error: %v", i, err)
		}
	}
	res, err := c.TestAccount(ctx, 1, "m")
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, "test error", res.Error)
	for _, e := range res.Events {
		assertNoSecret(t, "test event", e.Error+e.Text)
	}
	ex := rec.Exchanges()
	if len(ex) != 8 {
		t.Fatalf("recorded %d exchanges, want 8", len(ex))
	}
	for _, e := range ex {
		if e.Preview == "" || e.Status == 0 {
			t.Errorf("exchange without preview/status %+v", e)
		}
		assertNoSecret(t, "preview "+e.Path, e.Preview)
		wantTarget := "host"
		if strings.HasPrefix(e.Path, "/v1/") {
			wantTarget = "gateway"
		}
		if e.Target != wantTarget {
			t.Errorf("%s target %q", e.Path, e.Target)
		}
	}
}

func TestTransportError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	var rec evidence.Recorder
	ctx := evidence.WithRecorder(context.Background(), &rec)
	c := New(Config{AdminURL: url, AdminAPIKey: testAdminKey})
	_, err := c.GetGroup(ctx, 7)
	he := mustHostError(t, err, 0, CodeTransport)
	if he.Err == nil || he.Path != "/api/v1/admin/groups/7" || he.Method != "GET" {
		t.Errorf("transport error %+v", he)
	}
	if errors.Unwrap(he) == nil {
		t.Error("Unwrap nil")
	}
	// The first try and every transient retry are recorded, so retries are visible.
	ex := rec.Exchanges()
	if len(ex) != 1+DefaultTransientRetries || ex[0].Status != 0 || ex[0].Error == "" {
		t.Errorf("transport exchanges %+v", ex)
	}
	if f := Failure(err); f.Class != failure.Internal || !f.Retryable {
		t.Errorf("transport failure %+v", f)
	}
	// A cancelled context is a transport failure too.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = c.GetGroup(cctx, 7)
	mustHostError(t, err, 0, CodeTransport)
}

func TestErrorDecodingShapes(t *testing.T) {
	cases := []struct {
		status     int
		body, code string
		msg        string
	}{
		{409, `{"code":409,"message":"group name already exists","reason":"GROUP_EXISTS"}`, "GROUP_EXISTS", "group name already exists"},
		{401, `{"code":"INVALID_ADMIN_KEY","message":"Invalid admin API key"}`, "INVALID_ADMIN_KEY", "Invalid admin API key"},
		{503, `{"error":{"message":"Service temporarily unavailable","type":"api_error"}}`, "api_error", "Service temporarily unavailable"},
		{401, `{"error":{"code":401,"message":"Invalid API key","status":"UNAUTHENTICATED"}}`, "UNAUTHENTICATED", "Invalid API key"},
		{403, `{"error":{"message":"not assigned","type":"permission_error"},"type":"error"}`, "permission_error", "not assigned"},
		{404, `404 page not found`, "", "404 page not found"},
		{502, ``, "", "Bad Gateway"},
		{400, `{"code":400,"message":"Invalid request: Key: 'X' Error"}`, "", "Invalid request: Key: 'X' Error"},
	}
	for _, tc := range cases {
		e := decodeError(&response{status: tc.status, header: http.Header{}, body: []byte(tc.body)}, "GET", "/p", nil)
		if e.Code != tc.code || e.Message != tc.msg || e.Status != tc.status {
			t.Errorf("%s: got %+v", tc.body, e)
		}
	}
	e := decodeError(&response{status: 429, header: http.Header{"Retry-After": {"7"}}, body: nil}, "GET", "/p", nil)
	if e.RetryAfter.Seconds() != 7 {
		t.Errorf("retry after %v", e.RetryAfter)
	}
	if got := (&Error{Status: 404, Code: "GROUP_NOT_FOUND", Message: "group not found", Method: "GET", Path: "/api/v1/admin/groups/9"}).Error(); got != "sub2api GET /api/v1/admin/groups/9: 404 GROUP_NOT_FOUND: group not found" {
		t.Errorf("Error() = %q", got)
	}
}

func TestFailureClasses(t *testing.T) {
	cases := []struct {
		err       *Error
		class     failure.Class
		retryable bool
	}{
		{&Error{Status: 404, Code: "model_not_found"}, failure.ModelNotFound, false},
		{&Error{Status: 429, Code: "rate_limit_error"}, failure.RateLimited, true},
		{&Error{Status: 502, Code: "upstream_error", Message: "Upstream authentication failed, please contact administrator"}, failure.InvalidKey, false},
		{&Error{Status: 503, Code: "api_error"}, failure.HostCompatibilityGap, true},
		{&Error{Status: 503, Code: "GROUP_EXHAUSTED"}, failure.HostCompatibilityGap, true},
		{&Error{Status: 400, Code: "INVALID_PLATFORM"}, failure.HostRejected, false},
		{&Error{Status: 500}, failure.Internal, true},
	}
	for _, tc := range cases {
		f := Failure(tc.err)
		if f.Class != tc.class || f.Retryable != tc.retryable {
			t.Errorf("%+v -> %s/%v", tc.err, f.Class, f.Retryable)
		}
	}
	if Failure(nil) != nil {
		t.Error("Failure(nil) not nil")
	}
}

func TestWithSecretsRedactsUnpatternedSecrets(t *testing.T) {
	const upstream = "zhipu-id-0123456789abcdef.SecretPart0123" // no sk- prefix: only WithSecrets catches it
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte(`data: {"type":"error","error":"API returned 401: bad key ` + upstream + `"}` + "\n\n"))
	}))
	defer srv.Close()
	var rec evidence.Recorder
	ctx := WithSecrets(evidence.WithRecorder(context.Background(), &rec), upstream)
	res, err := New(Config{AdminURL: srv.URL, AdminAPIKey: testAdminKey}).TestAccount(ctx, 3, "glm-5.1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(res.Error, "0123456789abcdef") || !strings.Contains(res.Error, "API returned 401") {
		t.Errorf("test error %q", res.Error)
	}
	if p := rec.Exchanges()[0].Preview; strings.Contains(p, "SecretPart") {
		t.Errorf("preview %s", p)
	}
}

// A host answering 500 twice then 200 is retried transparently for admin calls, never
// for gateway calls (whose 5xx carry meaning).
func TestTransientRetries(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if n <= 2 {
			w.WriteHeader(500)
			w.Write([]byte(`{"code":500,"message":"internal error"}`))
			return
		}
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			w.WriteHeader(503)
			w.Write([]byte(`{"error":{"message":"Service temporarily unavailable","type":"api_error"}}`))
			return
		}
		w.Write([]byte(`{"code":0,"message":"success","data":{"id":7,"name":"g"}}`))
	}))
	defer srv.Close()
	c := New(Config{AdminURL: srv.URL, AdminAPIKey: testAdminKey})
	g, err := c.GetGroup(context.Background(), 7)
	if err != nil || g.ID != 7 || calls.Load() != 3 {
		t.Fatalf("GetGroup after two 500s: %+v %v (calls %d)", g, err, calls.Load())
	}
	calls.Store(10)
	if _, err := c.GatewayModels(context.Background(), "sk-end-user-key-0000000001"); err == nil || calls.Load() != 11 {
		t.Fatalf("gateway call retried or succeeded: %v (calls %d)", err, calls.Load())
	}
	none := New(Config{AdminURL: srv.URL, AdminAPIKey: testAdminKey, TransientRetries: -1})
	calls.Store(0)
	if _, err := none.GetGroup(context.Background(), 7); err == nil || calls.Load() != 1 {
		t.Fatalf("TransientRetries -1 still retried: %v (calls %d)", err, calls.Load())
	}
}
