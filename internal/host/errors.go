package host

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
)

// Codes set by the client itself (the host never sends them).
const (
	CodeTransport   = "transport"    // no HTTP answer (network, timeout, cancelled context)
	CodeBadResponse = "bad_response" // an answer the client could not decode
	CodeRequires2FA = "REQUIRES_2FA" // login needs a TOTP code
	CodeConfig      = "config"       // the client configuration cannot work (e.g. e-mail without password)
)

// Host codes the client and its callers branch on.
const (
	CodeComplianceRequired = "ADMIN_COMPLIANCE_ACK_REQUIRED"
	CodeInvalidToken       = "INVALID_TOKEN"
	CodeInvalidAdminKey    = "INVALID_ADMIN_KEY"
	CodeGroupExists        = "GROUP_EXISTS"
	CodeEmailExists        = "EMAIL_EXISTS"
	CodeAPIKeyExists       = "API_KEY_EXISTS"
	CodeIdempotencyReuse   = "IDEMPOTENCY_KEY_CONFLICT"
	CodeSubscriptionClash  = "SUBSCRIPTION_ASSIGN_CONFLICT"
	CodeSubscriptionExists = "SUBSCRIPTION_ALREADY_EXISTS"
	CodeUserNotFound       = "USER_NOT_FOUND"
	// CodeInvalidBaseURL is the outbound-policy refusal of an account's base URL
	// (400, "base_url is invalid or not allowed by the current outbound policy").
	CodeInvalidBaseURL = "ACCOUNT_INVALID_BASE_URL"
)

// The idempotency store's transient answers to a write that carries an Idempotency-Key.
// Repeating the same write a little later gives the stored answer (or runs it once).
const (
	// CodeIdempotencyInProgress (409): a request with the same key is still being processed.
	CodeIdempotencyInProgress = "IDEMPOTENCY_IN_PROGRESS"
	// CodeIdempotencyRetryBackoff (409): the last request with this key failed; the host
	// refuses a repeat until its backoff window (metadata.retry_after seconds) has passed.
	CodeIdempotencyRetryBackoff = "IDEMPOTENCY_RETRY_BACKOFF"
	// CodeIdempotencyStoreDown (503): the host cannot reach its idempotency store.
	CodeIdempotencyStoreDown = "IDEMPOTENCY_STORE_UNAVAILABLE"
)

// Error is every failure of a host call: both admin error envelopes
// ({"code":409,"message":..,"reason":"GROUP_EXISTS"} and {"code":"INVALID_ADMIN_KEY",...}),
// gateway bodies ({"error":{"message":..,"type":..}}), plain-text bodies and transport
// failures (Status 0, Code "transport"). Message is always redacted.
type Error struct {
	Status   int
	Code     string // reason, or string code, or gateway error.type ("api_error","model_not_found",...)
	Message  string // redacted
	Method   string
	Path     string
	Metadata map[string]any
	Err      error
	// RetryAfter is the host's Retry-After hint, when it sent one.
	RetryAfter time.Duration
}

// Error renders the failure without any secret: Message was redacted when the error was
// built, and the wrapped error's own text is deliberately not included.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sub2api %s %s: ", e.Method, e.Path)
	if e.Status == 0 {
		b.WriteString(e.Code)
	} else {
		b.WriteString(strconv.Itoa(e.Status))
		if e.Code != "" {
			b.WriteString(" " + e.Code)
		}
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// Unwrap returns the underlying transport or decoding error.
func (e *Error) Unwrap() error { return e.Err }

// AsError returns the *Error inside err, if any.
func AsError(err error) (*Error, bool) {
	var he *Error
	if errors.As(err, &he) {
		return he, true
	}
	return nil, false
}

// IsNotFound reports whether err is a 404 from the host.
func IsNotFound(err error) bool {
	he, ok := AsError(err)
	return ok && he.Status == http.StatusNotFound
}

// IsComplianceLocked reports whether err is the 0.1.179 compliance gate (423
// ADMIN_COMPLIANCE_ACK_REQUIRED). The operator must accept; jobs should pause, not fail.
func IsComplianceLocked(err error) bool {
	he, ok := AsError(err)
	return ok && (he.Status == http.StatusLocked || he.Code == CodeComplianceRequired)
}

// IsIdempotencyBusy reports whether err is one of the idempotency store's transient answers
// (in progress, retry backoff, store unavailable): the same write, repeated with the same
// Idempotency-Key after a short wait, succeeds or replays the first answer.
func IsIdempotencyBusy(err error) bool {
	he, ok := AsError(err)
	return ok && idempotencyBusyCode(he.Code)
}

func idempotencyBusyCode(code string) bool {
	return code == CodeIdempotencyInProgress || code == CodeIdempotencyRetryBackoff || code == CodeIdempotencyStoreDown
}

// IsUnauthorized reports whether err is a 401 from the host, whatever its code
// (INVALID_TOKEN, TOKEN_EXPIRED, TOKEN_REVOKED, USER_NOT_FOUND, USER_INACTIVE, ...).
func IsUnauthorized(err error) bool {
	he, ok := AsError(err)
	return ok && he.Status == http.StatusUnauthorized
}

// IsOutboundPolicy reports whether the host refused an account's base URL because of its
// outbound URL policy (400 ACCOUNT_INVALID_BASE_URL).
func IsOutboundPolicy(err error) bool {
	return IsCode(err, CodeInvalidBaseURL)
}

// IsCode reports whether err is an *Error with the given code.
func IsCode(err error, code string) bool {
	he, ok := AsError(err)
	return ok && he.Code == code
}

// ComplianceVersion returns the document version named by a 423 compliance error.
func ComplianceVersion(err error) string {
	he, ok := AsError(err)
	if !ok || he.Metadata == nil {
		return ""
	}
	v, _ := he.Metadata["version"].(string)
	return v
}

// decodeError turns a non-success answer into an *Error, whatever its body shape.
func decodeError(resp *response, method, path string, secrets []string) *Error {
	e := &Error{Status: resp.status, Method: method, Path: path}
	e.RetryAfter = retryAfter(resp.header.Get("Retry-After"))
	body := bytes.TrimSpace(resp.body)
	if len(body) > 0 && body[0] == '{' {
		if decodeJSONError(body, e) {
			e.Message = redactText(e.Message, secrets...)
			e.Metadata = redactMap(e.Metadata, secrets)
			return e
		}
	}
	if len(body) == 0 {
		e.Message = http.StatusText(resp.status)
	} else {
		e.Message = snippet(body, secrets)
	}
	return e
}

// decodeJSONError fills e from one of the JSON error shapes; false when body is none of them.
func decodeJSONError(body []byte, e *Error) bool {
	var env struct {
		Code     json.RawMessage `json:"code"`
		Message  string          `json:"message"`
		Reason   string          `json:"reason"`
		Metadata map[string]any  `json:"metadata"`
		Error    json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &env) != nil {
		return false
	}
	e.Metadata = env.Metadata
	if len(env.Error) > 0 && string(env.Error) != "null" {
		// Gateway shape: {"error":{"message","type"}} (fork /v1/models: {"error":{"code","message","status"}}).
		var ge struct {
			Message string          `json:"message"`
			Type    string          `json:"type"`
			Status  string          `json:"status"`
			Code    json.RawMessage `json:"code"`
		}
		if json.Unmarshal(env.Error, &ge) == nil {
			e.Message = ge.Message
			e.Code = ge.Type
			if e.Code == "" {
				e.Code = ge.Status
			}
			if e.Code == "" {
				e.Code = stringCode(ge.Code)
			}
			return true
		}
		var s string
		if json.Unmarshal(env.Error, &s) == nil {
			e.Message = s
			return true
		}
	}
	if len(env.Code) == 0 && env.Message == "" {
		return false
	}
	e.Message = env.Message
	if sc := stringCode(env.Code); sc != "" {
		e.Code = sc // middleware shape: string code
	} else {
		e.Code = env.Reason // typed shape: numeric code + reason (absent on bind errors)
	}
	return true
}

// stringCode returns raw as a string when it is a JSON string, else "".
func stringCode(raw json.RawMessage) string {
	var s string
	if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return ""
}

func redactMap(m map[string]any, secrets []string) map[string]any {
	for k, v := range m {
		if s, ok := v.(string); ok {
			m[k] = redactText(s, secrets...)
		}
	}
	return m
}

func retryAfter(h string) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if n, err := strconv.Atoi(h); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// Failure converts err into a classified *failure.Error (product §5) from what the host
// said alone. Callers that hold profile or direct-upstream evidence (warm-up windows,
// host_compatibility_gap) should decide before falling back to this.
func Failure(err error) *failure.Error {
	if err == nil {
		return nil
	}
	he, ok := AsError(err)
	if !ok {
		return &failure.Error{Class: failure.Internal, Message: "host client error", Err: err}
	}
	fe := &failure.Error{Class: failure.HostRejected, Message: he.Error(), RetryAfter: he.RetryAfter, Err: he}
	switch {
	case he.Status == 0:
		fe.Class, fe.Retryable = failure.Internal, true
	case idempotencyBusyCode(he.Code):
		// Our own earlier request with the same Idempotency-Key has not settled: repeat it.
		// The in-progress hint is the host's lock timeout (30 s), far longer than the
		// request usually takes, so only the backoff window's hint is kept.
		fe.Retryable = true
		if he.Code == CodeIdempotencyInProgress {
			fe.RetryAfter = 0
		}
	case he.Code == CodeInvalidBaseURL:
		fe.Class = failure.HostPolicy
		fe.Message = he.Error() + ": " + OutboundPolicyAdvice("")
	case he.Code == "model_not_found":
		fe.Class = failure.ModelNotFound
	case he.Code == "API_KEY_COUNT_EXCEEDED":
		// 0.2.11+: the user holds the maximum number of keys; retrying cannot help.
		fe.Message = he.Error() + ": the managed end user holds the host's maximum number of API keys (api_key_create.max_active_per_user, 200 by default); import into a per_provider target (one key per group) or delete unused keys of that user"
	case he.Status == http.StatusTooManyRequests || he.Code == "rate_limit_error":
		fe.Class, fe.Retryable = failure.RateLimited, true
	case he.Code == "upstream_error" && strings.Contains(strings.ToLower(he.Message), "authentication"):
		fe.Class = failure.InvalidKey
	case he.Code == "upstream_error":
		fe.Class = failure.HostCompatibilityGap
	case he.Code == "api_error" || he.Code == "GROUP_EXHAUSTED":
		// "not routed yet" during warm-up; the pipeline turns it into confirmation_timeout
		// when the window closes.
		fe.Class, fe.Retryable = failure.HostCompatibilityGap, true
	case he.Status >= 500:
		fe.Class, fe.Retryable = failure.Internal, true
	}
	return fe
}
