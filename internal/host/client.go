// Package host is the client of a sub2api host ("the host"): the admin API, the end-user
// API and the OpenAI-compatible gateway, as real hosts answer them (the recorded exchanges in
// testdata/sub2api are the reference; docs/hosts.md lists what differs per version). It knows
// the host's envelopes, error shapes, pagination and version differences (profile.go); it never logs, and every exchange is recorded through
// internal/evidence with secrets redacted.
package host

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/backoff"
	"github.com/cn-relay-manager/cn-relay-manager/internal/evidence"
)

// DefaultTimeout bounds one HTTP exchange when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// maxBody bounds how much of a response body is read; host answers are small, and a
// runaway stream must not exhaust memory.
const maxBody = 8 << 20

// previewScan is how much of a body is redacted before evidence.Record cuts it to
// evidence.PreviewLimit; redacting a bit more than kept avoids leaving a secret cut in half
// at the boundary unredacted.
const previewScan = 4 * evidence.PreviewLimit

// Config says where the host is and how to authenticate as admin.
type Config struct {
	AdminURL      string        // admin base URL, e.g. http://127.0.0.1:8081 (trailing slash tolerated)
	PublicURL     string        // gateway base URL for /v1/*; empty = AdminURL
	AdminAPIKey   string        // sent as x-api-key (preferred auth)
	AdminEmail    string        // alternative: admin JWT via POST /api/v1/auth/login, re-logged in on 401/expiry
	AdminPassword string        // password for AdminEmail
	HTTPClient    *http.Client  // nil = &http.Client{Timeout: Timeout}
	Timeout       time.Duration // default 30s
	// TransientRetries is how often a dropped connection, timeout or 5xx of the admin and
	// user API is retried at once (0 = DefaultTransientRetries, negative = never).
	TransientRetries int
}

// Client talks to one sub2api host. It is safe for concurrent use.
type Client struct {
	cfg       Config
	adminBase string
	gateBase  string
	hc        *http.Client

	loginMu sync.Mutex // serialises admin logins so a burst of 401s logs in once
	mu      sync.Mutex // guards the fields below
	jwt     string
	refresh string
	expires time.Time

	pagesMu   sync.Mutex            // guards pages and pageBytes
	pages     map[string]cachedPage // list pages by path+query, for If-None-Match
	pageBytes int
}

// cachedPage is the data of a list page the host answered with an ETag.
type cachedPage struct {
	etag string
	data json.RawMessage
}

// New returns a client for cfg. It does not contact the host.
func New(cfg Config) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: cfg.Timeout}
	}
	admin := strings.TrimRight(strings.TrimSpace(cfg.AdminURL), "/")
	public := strings.TrimRight(strings.TrimSpace(cfg.PublicURL), "/")
	if public == "" {
		public = admin
	}
	return &Client{cfg: cfg, adminBase: admin, gateBase: public, hc: hc}
}

// authKind says which credential a request carries.
type authKind int

const (
	authNone    authKind = iota
	authAdmin            // x-api-key, or the admin JWT
	authUser             // end user's JWT (request.token)
	authGateway          // end-user API key (request.token)
)

// request describes one exchange with the host.
type request struct {
	target  string // evidence target: "host" or "gateway"
	method  string
	path    string     // path relative to the base URL, without query
	query   url.Values // optional
	body    any        // JSON-encoded when non-nil
	auth    authKind
	token   string   // user JWT or end-user key
	idemKey string   // Idempotency-Key header when non-empty
	accept  string   // Accept header when non-empty
	secrets []string // call-specific secrets (passwords, upstream keys, custom keys)
	// conditional list pages are sent with If-None-Match when an earlier answer carried an
	// ETag; a 304 reuses that answer (the host's account list offers this).
	conditional bool
	ifNoneMatch string
}

// response is the raw answer of the host.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r *request) fullPath() string {
	if len(r.query) == 0 {
		return r.path
	}
	return r.path + "?" + r.query.Encode()
}

// secretsFor lists every secret that may show up in this call's texts: the client's own
// credentials, the call's, and those the caller attached to ctx with WithSecrets.
func (c *Client) secretsFor(ctx context.Context, r *request) []string {
	c.mu.Lock()
	s := []string{c.cfg.AdminAPIKey, c.cfg.AdminPassword, c.jwt, c.refresh}
	c.mu.Unlock()
	s = append(s, r.token)
	s = append(s, r.secrets...)
	if extra, ok := ctx.Value(secretsKey{}).([]string); ok {
		s = append(s, extra...)
	}
	return s
}

type secretsKey struct{}

// WithSecrets returns a context whose host calls also redact these secrets from previews
// and error texts. Use it for secrets the host may echo although the call does not carry
// them, e.g. the upstream key of an account while testing it (the account test streams the
// upstream's error body back).
func WithSecrets(ctx context.Context, secrets ...string) context.Context {
	prev, _ := ctx.Value(secretsKey{}).([]string)
	all := append(append([]string(nil), prev...), secrets...)
	return context.WithValue(ctx, secretsKey{}, all)
}

// secretPatterns catch credential-shaped strings the client was not told about (defence in
// depth: a relay may echo a key the client never saw).
var secretPatterns = []struct {
	literal string // every match contains it: texts without it skip the regexp
	re      *regexp.Regexp
}{
	{"sk-", regexp.MustCompile(`\bsk-[A-Za-z0-9_\-]{16,}`)},
	{"admin-", regexp.MustCompile(`\badmin-[0-9a-fA-F]{32,}`)},
	{"eyJ", regexp.MustCompile(`\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}`)},
	{"rt_", regexp.MustCompile(`\brt_[A-Za-z0-9]{32,}`)},
	{"bce-v3/", regexp.MustCompile(`\bbce-v3/[A-Za-z0-9/_\-]{16,}`)},
}

// redactText removes the given secrets (and their fragments) and credential-shaped strings.
func redactText(text string, secrets ...string) string {
	text = evidence.Redact(text, secrets...)
	for _, p := range secretPatterns {
		if strings.Contains(text, p.literal) {
			text = p.re.ReplaceAllString(text, "****")
		}
	}
	return text
}

// send performs the exchange, retrying once with a fresh admin login when the admin JWT was
// rejected. It returns an *Error only for transport failures; HTTP error statuses are left to
// the caller.
func (c *Client) send(ctx context.Context, r request) (*response, error) {
	resp, usedJWT, err := c.sendOnce(ctx, r)
	// Transient failures of the admin and user API (dropped connections, timeouts, 5xx
	// from a restarting or overloaded host) are retried a few times right here. Every
	// write this product makes is safe to repeat: creates carry an Idempotency-Key or a
	// natural key that answers 409 (then adopted), deletes are idempotent. Gateway calls
	// are never retried here: their 5xx answers carry meaning (warm-up, upstream errors)
	// that the pipeline must see.
	//
	// A write with an Idempotency-Key may also meet our own identical request still in
	// flight (409 IDEMPOTENCY_IN_PROGRESS) or the backoff after it failed (409
	// IDEMPOTENCY_RETRY_BACKOFF): repeating it shortly after gives the first answer,
	// replayed, or runs it once.
	for attempt := 0; attempt < c.transientRetries() && r.target != "gateway" && (transient(resp, err) || idempotencyBusy(r, resp, err)); attempt++ {
		select {
		case <-ctx.Done():
			return resp, err
		case <-time.After(backoff.Host.Delay(attempt, 0)):
		}
		resp, usedJWT, err = c.sendOnce(ctx, r)
	}
	if err != nil || !usedJWT || resp.status != http.StatusUnauthorized {
		return resp, err
	}
	// The JWT expired or was revoked: log in again and repeat the call once. Writes are safe
	// to repeat because a 401 means the host did not act on them.
	c.dropToken()
	resp, _, err = c.sendOnce(ctx, r)
	return resp, err
}

func (c *Client) sendOnce(ctx context.Context, r request) (*response, bool, error) {
	base := c.adminBase
	if r.target == "gateway" {
		base = c.gateBase
	}
	var payload []byte
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return nil, false, fmt.Errorf("encode %s %s: %w", r.method, r.path, err)
		}
		payload = b
	}
	var rdr io.Reader
	if payload != nil {
		rdr = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, base+r.fullPath(), rdr)
	if err != nil {
		return nil, false, c.transportError(ctx, r, err, time.Now(), 0)
	}
	req.Header.Set("Accept-Language", "en")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.accept != "" {
		req.Header.Set("Accept", r.accept)
	}
	if r.idemKey != "" {
		req.Header.Set("Idempotency-Key", r.idemKey)
	}
	if r.ifNoneMatch != "" {
		req.Header.Set("If-None-Match", r.ifNoneMatch)
	}
	usedJWT := false
	switch r.auth {
	case authAdmin:
		if c.cfg.AdminAPIKey != "" {
			req.Header.Set("x-api-key", c.cfg.AdminAPIKey)
		} else if c.cfg.AdminEmail != "" {
			tok, err := c.adminToken(ctx)
			if err != nil {
				return nil, false, err
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			usedJWT = true
		}
	case authUser, authGateway:
		if r.token != "" {
			req.Header.Set("Authorization", "Bearer "+r.token)
		}
	}

	start := time.Now()
	hr, err := c.hc.Do(req)
	if err != nil {
		return nil, usedJWT, c.transportError(ctx, r, err, start, time.Since(start))
	}
	defer hr.Body.Close()
	body, rerr := io.ReadAll(io.LimitReader(hr.Body, maxBody))
	lat := time.Since(start)
	resp := &response{status: hr.StatusCode, header: hr.Header, body: body}
	ex := evidence.Exchange{Target: r.target, Method: r.method, Path: r.fullPath(), Status: hr.StatusCode, Latency: lat, At: start}
	// Only a recorder keeps the preview; scanning a large list page for secrets to redact
	// a preview nobody keeps would cost more than the call.
	var secrets []string
	if recording := evidence.Recording(ctx); recording || rerr != nil {
		secrets = append(c.secretsFor(ctx, &r), bodySecrets(body)...)
		if recording {
			ex.Preview = redactPreview(body, secrets)
		}
	}
	if rerr != nil {
		ex.Error = redactText(rerr.Error(), secrets...)
	}
	evidence.Record(ctx, ex)
	if rerr != nil {
		return nil, usedJWT, &Error{Status: hr.StatusCode, Code: CodeTransport, Method: r.method, Path: r.path,
			Message: "reading response: " + redactText(rerr.Error(), secrets...), Err: rerr}
	}
	return resp, usedJWT, nil
}

func (c *Client) transportError(ctx context.Context, r request, err error, at time.Time, lat time.Duration) error {
	msg := redactText(err.Error(), c.secretsFor(ctx, &r)...)
	evidence.Record(ctx, evidence.Exchange{Target: r.target, Method: r.method, Path: r.fullPath(),
		Latency: lat, Error: msg, At: at})
	return &Error{Code: CodeTransport, Method: r.method, Path: r.path, Message: msg, Err: err}
}

// redactPreview returns the start of body with every secret removed.
func redactPreview(body []byte, secrets []string) string {
	if len(body) > previewScan {
		body = body[:previewScan]
	}
	return redactText(string(body), secrets...)
}

// secretFields are JSON fields whose string values are secrets the host hands out (tokens,
// end-user keys); they are redacted from previews even though the caller did not know them
// before the call.
var secretFields = map[string]bool{
	"access_token": true, "refresh_token": true, "temp_token": true, "token": true,
	"key": true, "api_key": true, "password": true, "secret": true,
}

// isSecretField filters the generic "key" field: it is an end-user key only inside an
// API-key object (which has user_id/group_id) or alone (admin key regenerate answer); the
// fork's test events also use "key" for diagnostic labels such as "test_mode".
func isSecretField(name string, obj map[string]any) bool {
	if name != "key" {
		return true
	}
	_, uid := obj["user_id"]
	_, gid := obj["group_id"]
	return uid || gid || len(obj) == 1
}

// bodySecrets collects the values of secretFields anywhere in a JSON body.
func bodySecrets(body []byte) []string {
	t := bytes.TrimSpace(body)
	if len(t) == 0 || (t[0] != '{' && t[0] != '[') {
		return nil
	}
	var v any
	if json.Unmarshal(t, &v) != nil {
		return nil
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				if s, ok := val.(string); ok && secretFields[k] && s != redactedPlaceholder && isSecretField(k, x) {
					out = append(out, s)
					continue
				}
				walk(val)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

// redactedPlaceholder is what the fork returns instead of credentials.api_key.
const redactedPlaceholder = "__sub2api_credential_redacted__"

// envelope is the host's success/error wrapper.
type envelope struct {
	Code    json.RawMessage `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

// call performs r and decodes the enveloped data into out (when out is non-nil). Any HTTP
// status outside 2xx, or an envelope code other than 0, becomes an *Error.
func (c *Client) call(ctx context.Context, r request, out any) error {
	resp, err := c.send(ctx, r)
	if err != nil {
		return err
	}
	_, err = c.decode(ctx, r, resp, out)
	return err
}

// decode checks an answer and decodes its enveloped data into out; it returns the raw data.
func (c *Client) decode(ctx context.Context, r request, resp *response, out any) (json.RawMessage, error) {
	// The secrets to redact from error texts, including those the body itself carries;
	// computed only when there is an error to describe.
	secrets := func() []string { return append(c.secretsFor(ctx, &r), bodySecrets(resp.body)...) }
	if resp.status < 200 || resp.status > 299 {
		return nil, decodeError(resp, r.method, r.path, secrets())
	}
	var env envelope
	if err := json.Unmarshal(resp.body, &env); err != nil {
		return nil, &Error{Status: resp.status, Code: CodeBadResponse, Method: r.method, Path: r.path,
			Message: "response is not a JSON envelope: " + snippet(resp.body, secrets()), Err: err}
	}
	if c := strings.TrimSpace(string(env.Code)); c != "" && c != "0" {
		// A 200 carrying an error envelope: treat it like the error it describes.
		return nil, decodeError(resp, r.method, r.path, secrets())
	}
	if out == nil {
		return env.Data, nil
	}
	if len(env.Data) == 0 || string(env.Data) == "null" {
		return nil, &Error{Status: resp.status, Code: CodeBadResponse, Method: r.method, Path: r.path,
			Message: "response envelope has no data"}
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return nil, &Error{Status: resp.status, Code: CodeBadResponse, Method: r.method, Path: r.path,
			Message: "cannot decode response data: " + redactText(err.Error(), secrets()...), Err: err}
	}
	return env.Data, nil
}

// Bounds of the conditional-request cache: a few full listings of a large host.
const (
	maxCachedPages     = 256
	maxCachedPageBytes = 64 << 20
)

// callConditional is call for a list page the host may answer 304 Not Modified: the page
// is requested with the ETag of the last answer to the same path and query, and a 304
// decodes that answer again instead of a new body.
func (c *Client) callConditional(ctx context.Context, r request, out any) error {
	key := r.fullPath()
	c.pagesMu.Lock()
	cached, have := c.pages[key]
	c.pagesMu.Unlock()
	if have {
		r.ifNoneMatch = cached.etag
	}
	resp, err := c.send(ctx, r)
	if err != nil {
		return err
	}
	if resp.status == http.StatusNotModified && have {
		if err := json.Unmarshal(cached.data, out); err != nil {
			return &Error{Status: resp.status, Code: CodeBadResponse, Method: r.method, Path: r.path,
				Message: "cannot decode the cached page: " + err.Error(), Err: err}
		}
		return nil
	}
	data, err := c.decode(ctx, r, resp, out)
	if err != nil {
		return err
	}
	if etag := resp.header.Get("ETag"); etag != "" && len(data) <= maxCachedPageBytes/4 {
		c.pagesMu.Lock()
		if c.pages == nil || len(c.pages) >= maxCachedPages || c.pageBytes+len(data) > maxCachedPageBytes {
			c.pages, c.pageBytes = map[string]cachedPage{}, 0
		}
		c.pageBytes += len(data) - len(c.pages[key].data)
		c.pages[key] = cachedPage{etag: etag, data: data}
		c.pagesMu.Unlock()
	}
	return nil
}

// page is the host's pagination wrapper.
type page[T any] struct {
	Items    []T `json:"items"`
	Total    int `json:"total"`
	Page     int `json:"page"`
	PageSize int `json:"page_size"`
	Pages    int `json:"pages"`
}

// listPageSize is the page size asked for when following pages: the largest the host
// allows. sub2api 0.1.129 and later cap page_size at 1000 (a larger value silently falls
// back to 20); a host with a lower cap answers smaller pages and says how many there are,
// which listAll follows.
const listPageSize = 1000

// maxPages stops a runaway pagination loop on a misbehaving host.
const maxPages = 1000

// listAll follows every page of a paginated list.
func listAll[T any](ctx context.Context, c *Client, r request) ([]T, error) {
	var all []T
	base := r.query
	for p := 1; p <= maxPages; p++ {
		q := url.Values{}
		for k, v := range base {
			q[k] = v
		}
		q.Set("page", fmt.Sprint(p))
		q.Set("page_size", fmt.Sprint(listPageSize))
		r.query = q
		var pg page[T]
		call := c.call
		if r.conditional {
			call = c.callConditional
		}
		if err := call(ctx, r, &pg); err != nil {
			return nil, err
		}
		all = append(all, pg.Items...)
		if len(pg.Items) == 0 || p >= pg.Pages || (pg.Total > 0 && len(all) >= pg.Total) {
			return all, nil
		}
	}
	return all, nil
}

// adminRequest is a shortcut for an admin API call.
func adminRequest(method, path string, body any) request {
	return request{target: "host", method: method, path: path, body: body, auth: authAdmin}
}

// idPath formats an admin resource path with a numeric id.
func idPath(format string, id int64) string { return fmt.Sprintf(format, id) }

// snippet returns a short redacted piece of a body for error messages.
func snippet(body []byte, secrets []string) string {
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return redactText(s, secrets...)
}

// DefaultTransientRetries is how often a transient admin/user API failure is retried.
const DefaultTransientRetries = 3

func (c *Client) transientRetries() int {
	if c.cfg.TransientRetries < 0 {
		return 0
	}
	if c.cfg.TransientRetries == 0 {
		return DefaultTransientRetries
	}
	return c.cfg.TransientRetries
}

// transient reports whether an exchange failed in a way worth repeating at once.
func transient(resp *response, err error) bool {
	if err != nil {
		he, ok := AsError(err)
		return ok && he.Status == 0 && he.Code == CodeTransport
	}
	switch resp.status {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// idempotencyBusy reports whether a write with an Idempotency-Key was answered by the host's
// idempotency store with one of its transient refusals.
func idempotencyBusy(r request, resp *response, err error) bool {
	if err != nil || r.idemKey == "" || (resp.status != http.StatusConflict && resp.status != http.StatusServiceUnavailable) {
		return false
	}
	var body struct {
		Reason string `json:"reason"`
	}
	return json.Unmarshal(resp.body, &body) == nil && idempotencyBusyCode(body.Reason)
}
