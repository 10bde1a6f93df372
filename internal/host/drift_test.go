package host

// Host answers first met on real hosts built from source (0.1.129, 0.1.179): the
// idempotency store's transient refusals, a JWT outliving its user, the outbound URL policy.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
)

func TestHostDriftClasses(t *testing.T) {
	cases := []struct {
		err        *Error
		class      failure.Class
		retryable  bool
		busy, unau bool
	}{
		{&Error{Status: 409, Code: CodeIdempotencyInProgress, RetryAfter: 29e9}, failure.HostRejected, true, true, false},
		{&Error{Status: 409, Code: CodeIdempotencyRetryBackoff, RetryAfter: 4e9}, failure.HostRejected, true, true, false},
		{&Error{Status: 503, Code: CodeIdempotencyStoreDown}, failure.HostRejected, true, true, false},
		{&Error{Status: 409, Code: CodeIdempotencyReuse}, failure.HostRejected, false, false, false},
		{&Error{Status: 401, Code: CodeUserNotFound}, failure.HostRejected, false, false, true},
		{&Error{Status: 401, Code: "TOKEN_REVOKED"}, failure.HostRejected, false, false, true},
		{&Error{Status: 400, Code: CodeInvalidBaseURL, Message: "base_url is invalid or not allowed by the current outbound policy"}, failure.HostPolicy, false, false, false},
	}
	for _, tc := range cases {
		f := Failure(tc.err)
		if f.Class != tc.class || f.Retryable != tc.retryable || IsIdempotencyBusy(tc.err) != tc.busy || IsUnauthorized(tc.err) != tc.unau {
			t.Errorf("%s %s -> %s retryable=%v busy=%v unauthorized=%v", tc.err.Code, tc.err.Message, f.Class, f.Retryable, IsIdempotencyBusy(tc.err), IsUnauthorized(tc.err))
		}
	}
	// The in-progress hint is the host's 30 s lock, not how long the request takes.
	if f := Failure(cases[0].err); f.RetryAfter != 0 {
		t.Errorf("in-progress retry after %v, want the pipeline's own backoff", f.RetryAfter)
	}
	if f := Failure(cases[1].err); f.RetryAfter != 4e9 {
		t.Errorf("retry-backoff retry after %v, want the host's window", f.RetryAfter)
	}
	if f := Failure(cases[6].err); !strings.Contains(f.Message, "upstream host allowlist") || !IsOutboundPolicy(cases[6].err) {
		t.Errorf("policy failure %q", f.Message)
	}
}

// A write with an Idempotency-Key that meets its twin still in flight is repeated after a
// short wait and gets the first answer; without a key a 409 is final.
func TestIdempotencyBusyIsRetried(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		switch n := calls.Add(1); {
		case n == 1:
			w.Header().Set("Retry-After", "29")
			w.WriteHeader(409)
			_, _ = w.Write([]byte(`{"code":409,"message":"idempotent request is still processing","reason":"IDEMPOTENCY_IN_PROGRESS","metadata":{"retry_after":"29"}}`))
		case n == 2:
			w.Header().Set("Retry-After", "4")
			w.WriteHeader(409)
			_, _ = w.Write([]byte(`{"code":409,"message":"idempotent request is in retry backoff window","reason":"IDEMPOTENCY_RETRY_BACKOFF","metadata":{"retry_after":"4"}}`))
		default:
			w.Header().Set("X-Idempotency-Replayed", "true")
			_, _ = w.Write([]byte(`{"code":0,"message":"success","data":{"id":5,"email":"u@example.com","balance":10}}`))
		}
	}))
	defer srv.Close()
	c := New(Config{AdminURL: srv.URL, AdminAPIKey: testAdminKey})
	u, err := c.AddBalance(context.Background(), 5, 10, "top-up", "crm-topup-b-5")
	if err != nil || u.Balance != 10 || calls.Load() != 3 {
		t.Fatalf("AddBalance through in-progress and backoff: %+v %v (calls %d)", u, err, calls.Load())
	}
	calls.Store(0)
	_, err = c.CreateUser(context.Background(), CreateUserRequest{Email: "u@example.com", Password: "secret-pw"})
	if !IsIdempotencyBusy(err) || calls.Load() != 1 {
		t.Fatalf("a write without Idempotency-Key was repeated: %v (calls %d)", err, calls.Load())
	}
}

func TestOutboundPolicyAdvice(t *testing.T) {
	all := OutboundPolicyAdvice("http://127.0.0.1:8080/deepseek")
	for _, want := range []string{"127.0.0.1", "upstream host allowlist", "SECURITY_URL_ALLOWLIST_UPSTREAM_HOSTS", "allow private hosts",
		"SECURITY_URL_ALLOWLIST_ALLOW_PRIVATE_HOSTS", "allow insecure http", "SECURITY_URL_ALLOWLIST_ALLOW_INSECURE_HTTP"} {
		if !strings.Contains(all, want) {
			t.Errorf("advice for a plain-http loopback URL does not name %q: %s", want, all)
		}
	}
	public := OutboundPolicyAdvice("https://api.moonshot.cn/v1")
	if !strings.Contains(public, "add api.moonshot.cn to the upstream host allowlist") || strings.Contains(public, "private") || strings.Contains(public, "insecure") {
		t.Errorf("advice for a public https URL: %s", public)
	}
	if generic := OutboundPolicyAdvice(""); !strings.Contains(generic, "allowlist") || !strings.Contains(generic, "private") || !strings.Contains(generic, "insecure http") {
		t.Errorf("advice without a URL: %s", generic)
	}
}

// The client reads each recorded drift answer as what it is.
func TestRecordedHostDrift(t *testing.T) {
	ctx := context.Background()
	for _, v := range []string{"0.1.129", "0.1.179"} {
		t.Run(v, func(t *testing.T) {
			// 409 IDEMPOTENCY_IN_PROGRESS: transient, and repeated by the client.
			fx := loadFixture(t, v, "users.balance.in-progress")
			rp := newReplay(t, v)
			for i := 0; i <= DefaultTransientRetries; i++ {
				rp.add(fx)
			}
			_, err := rp.adminClient().AddBalance(ctx, pathID(t, fx), 10, "fixture topup", fx.Request.Headers["Idempotency-Key"])
			if he := mustHostError(t, err, 409, CodeIdempotencyInProgress); !IsIdempotencyBusy(err) || !Failure(err).Retryable || he.RetryAfter < time.Second || he.RetryAfter > 30*time.Second {
				t.Errorf("in progress: busy=%v retryable=%v retry-after=%v", IsIdempotencyBusy(err), Failure(err).Retryable, he.RetryAfter)
			}
			if n := len(rp.all()); n != DefaultTransientRetries+1 {
				t.Errorf("the in-progress write was sent %d times, want %d", n, DefaultTransientRetries+1)
			}

			// 401 USER_NOT_FOUND on a user call: an unauthorized answer (drop the token).
			uf := loadFixture(t, v, "keys.create.user-deleted")
			rp = newReplay(t, v, "keys.create.user-deleted")
			_, err = rp.adminClient().CreateKey(ctx, testUserToken, CreateKeyRequest{Name: "fixture-key-after-delete"}, "")
			mustHostError(t, err, 401, CodeUserNotFound)
			if !IsUnauthorized(err) || uf.Response.Status != 401 {
				t.Errorf("user-deleted: unauthorized=%v", IsUnauthorized(err))
			}

			// The outbound policy: the account test names the refusal.
			res, err, _ := runAccountTest(t, v, "accounts.test.outbound-policy")
			if err != nil || !res.BaseURLRefused() || !strings.Contains(res.Error, "invalid url scheme: http") {
				t.Errorf("policy test: %+v %v", res, err)
			}
			if ok, _, _ := runAccountTest(t, v, "accounts.test.upstream-401"); ok.BaseURLRefused() {
				t.Error("an upstream 401 read as a policy refusal")
			}
		})
	}
}
