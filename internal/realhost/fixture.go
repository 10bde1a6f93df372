package realhost

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Exchange is one recorded request and answer, in the format of the host client's fixtures
// (internal/host/testdata/sub2api, README there): secrets are replaced by placeholders of
// the same shape before anything is written.
type Exchange struct {
	Request  ExchangeRequest  `json:"request"`
	Response ExchangeResponse `json:"response"`
	Notes    string           `json:"notes,omitempty"`
}

// ExchangeRequest is the recorded request.
type ExchangeRequest struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers"`
	Body    any               `json:"body"`
}

// ExchangeResponse is the recorded answer. An event stream (the account test) is kept raw
// in the sibling file BodyFile, and Body is then null.
type ExchangeResponse struct {
	Status   int            `json:"status"`
	Headers  map[string]any `json:"headers"`
	Body     any            `json:"body"`
	BodyFile string         `json:"body_file,omitempty"`
	stream   string         // the raw event stream, written to BodyFile
}

// Stream returns the raw event stream of an account-test answer ("" for other answers).
func (r *ExchangeResponse) Stream() string { return r.stream }

// keptRequestHeaders are the request headers a fixture keeps (README: the ones that matter).
var keptRequestHeaders = []string{"x-api-key", "Authorization", "Content-Type", "Accept", "Accept-Language", "Idempotency-Key", "If-None-Match"}

// droppedResponseHeaders are left out of a fixture: they change on every call or are the
// host's static security headers.
var droppedResponseHeaders = map[string]bool{"Date": true, "Content-Length": true, "Content-Security-Policy": true,
	"X-Frame-Options": true, "X-Content-Type-Options": true, "Referrer-Policy": true, "Permissions-Policy": true,
	"Strict-Transport-Security": true, "X-Xss-Protection": true, "Cross-Origin-Opener-Policy": true}

// Record sends one request like Do and returns it as an Exchange (secrets not yet replaced:
// call Scrub before writing it anywhere).
func (h *Host) Record(ctx context.Context, method, path string, headers map[string]string, body any) (*Exchange, error) {
	hdr := map[string]string{"Accept-Language": "en"}
	if body != nil {
		hdr["Content-Type"] = "application/json"
	}
	for k, v := range headers {
		hdr[k] = v
	}
	resp, b, err := h.DoRaw(ctx, method, path, headers, body)
	if err != nil {
		return nil, err
	}
	ex := &Exchange{Request: ExchangeRequest{Method: method, Path: path, Headers: map[string]string{}, Body: body}}
	for _, k := range keptRequestHeaders {
		if v, ok := hdr[k]; ok {
			ex.Request.Headers[k] = v
		}
	}
	ex.Response.Status = resp.StatusCode
	ex.Response.Headers = map[string]any{}
	for k, vs := range resp.Header {
		if droppedResponseHeaders[k] {
			continue
		}
		if len(vs) == 1 {
			ex.Response.Headers[k] = vs[0]
		} else {
			l := make([]any, len(vs))
			for i, v := range vs {
				l[i] = v
			}
			ex.Response.Headers[k] = l
		}
	}
	var parsed any
	switch t := bytes.TrimSpace(b); {
	case bytes.HasPrefix(t, []byte("data:")) || bytes.HasPrefix(t, []byte("event:")):
		ex.Response.stream = string(b)
	case len(t) == 0:
		ex.Response.Body = ""
	case json.Unmarshal(t, &parsed) == nil:
		ex.Response.Body = parsed
	default:
		ex.Response.Body = string(b)
	}
	return ex, nil
}

var (
	jwtRe      = regexp.MustCompile(`eyJ[A-Za-z0-9_\-]{8,}\.([A-Za-z0-9_\-]{8,})\.[A-Za-z0-9_\-]{8,}`)
	adminKeyRe = regexp.MustCompile(`admin-[0-9a-fA-F]{32,}`)
	userKeyRe  = regexp.MustCompile(`sk-[A-Za-z0-9_\-]{16,}`)
)

// Scrub replaces every secret in the exchange by the fixtures' placeholders: the admin key by
// admin-000…0, a JWT by a fixture JWT carrying the same user_id, email and role, end-user keys
// by sk-fixture-000…N, and each extra secret (passwords) by its given placeholder.
func (ex *Exchange) Scrub(extra map[string]string) error {
	raw, err := json.Marshal(ex)
	if err != nil {
		return err
	}
	sc := &scrubber{extra: extra, keys: map[string]string{}}
	var out Exchange
	if err := json.Unmarshal([]byte(sc.scrub(string(raw))), &out); err != nil {
		return err
	}
	out.Response.stream = sc.scrub(ex.Response.stream)
	*ex = out
	return nil
}

type scrubber struct {
	extra map[string]string
	keys  map[string]string
	jwts  int
}

func (sc *scrubber) scrub(s string) string {
	for secret, placeholder := range sc.extra {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, placeholder)
		}
	}
	s = jwtRe.ReplaceAllStringFunc(s, func(tok string) string {
		sc.jwts++
		return fixtureJWT(tok, sc.jwts)
	})
	s = adminKeyRe.ReplaceAllString(s, "admin-"+strings.Repeat("0", 64))
	return userKeyRe.ReplaceAllStringFunc(s, func(k string) string {
		if strings.HasPrefix(k, "sk-fixture-") || strings.HasPrefix(k, "sk-upstream-fixture-") {
			return k
		}
		if _, ok := sc.keys[k]; !ok {
			sc.keys[k] = fmt.Sprintf("sk-fixture-%056d", len(sc.keys)+1)
		}
		return sc.keys[k]
	})
}

// fixtureJWT keeps a token's user claims and replaces everything that could be replayed.
func fixtureJWT(tok string, n int) string {
	parts := strings.Split(tok, ".")
	var c map[string]any
	if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
		_ = json.Unmarshal(b, &c)
	}
	claims := map[string]any{"fixture": n}
	for _, k := range []string{"user_id", "email", "role"} {
		if v, ok := c[k]; ok {
			claims[k] = v
		}
	}
	b, _ := json.Marshal(claims)
	return "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + base64.RawURLEncoding.EncodeToString(b) + fmt.Sprintf(".fixture-sig-%031d", n)
}

// Write stores the exchange as <dir>/<name>.json.
func (ex *Exchange) Write(dir, name string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if ex.Response.stream != "" {
		ex.Response.BodyFile = name + ".sse"
		if err := os.WriteFile(filepath.Join(dir, ex.Response.BodyFile), []byte(ex.Response.stream), 0o644); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(ex, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+".json"), append(b, '\n'), 0o644)
}

// Matches compares the exchange with the recorded fixture <dir>/<name>.json: same status,
// same media type, same code/reason/metadata keys, same message on errors, and the same
// JSON shape. It returns what differs ("" when nothing does).
func (ex *Exchange) Matches(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if err != nil {
		return "", err
	}
	var rec Exchange
	if err := json.Unmarshal(b, &rec); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	var diffs []string
	if rec.Response.Status != ex.Response.Status {
		diffs = append(diffs, fmt.Sprintf("status %d, recorded %d", ex.Response.Status, rec.Response.Status))
	}
	rct, _ := rec.Response.Headers["Content-Type"].(string)
	gct, _ := ex.Response.Headers["Content-Type"].(string)
	rmt, _, _ := mime.ParseMediaType(rct)
	gmt, _, _ := mime.ParseMediaType(gct)
	if rmt != gmt {
		diffs = append(diffs, fmt.Sprintf("content type %q, recorded %q", gct, rct))
	}
	if rec.Response.BodyFile != "" || ex.Response.stream != "" {
		recStream, err := os.ReadFile(filepath.Join(dir, rec.Response.BodyFile))
		if err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		if got, want := streamEvents(ex.Response.stream), streamEvents(string(recStream)); got != want {
			diffs = append(diffs, fmt.Sprintf("events %s, recorded %s", got, want))
		}
		return strings.Join(diffs, "; "), nil
	}
	rm, _ := rec.Response.Body.(map[string]any)
	gm, _ := ex.Response.Body.(map[string]any)
	if ex.Response.Status >= 400 {
		for _, k := range []string{"code", "reason", "message"} {
			if fmt.Sprint(rm[k]) != fmt.Sprint(gm[k]) {
				diffs = append(diffs, fmt.Sprintf("%s %v, recorded %v", k, gm[k], rm[k]))
			}
		}
	}
	if ks, kr := keysOf(gm), keysOf(rm); ks != kr {
		diffs = append(diffs, fmt.Sprintf("body keys %s, recorded %s", ks, kr))
	}
	rmeta, _ := rm["metadata"].(map[string]any)
	gmeta, _ := gm["metadata"].(map[string]any)
	if ks, kr := keysOf(gmeta), keysOf(rmeta); ks != kr {
		diffs = append(diffs, fmt.Sprintf("metadata keys %s, recorded %s", ks, kr))
	}
	return strings.Join(diffs, "; "), nil
}

func keysOf(m map[string]any) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

// Header is a shortcut for a response header value of the exchange ("" when absent).
func (ex *Exchange) Header(name string) string {
	v, _ := ex.Response.Headers[http.CanonicalHeaderKey(name)].(string)
	return v
}

// streamEvents summarises an event stream by each event's type and error text (contents and
// ids vary from run to run; what the host says went wrong must not).
func streamEvents(stream string) string {
	var out []string
	for _, line := range strings.Split(stream, "\n") {
		data, ok := strings.CutPrefix(strings.TrimSpace(line), "data:")
		if !ok {
			continue
		}
		var ev struct {
			Type  string `json:"type"`
			Error string `json:"error"`
		}
		if json.Unmarshal([]byte(strings.TrimSpace(data)), &ev) != nil {
			continue
		}
		out = append(out, strings.TrimSpace(ev.Type+" "+ev.Error))
	}
	return strings.Join(out, " | ")
}
