package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds one delivery attempt.
const DefaultTimeout = 10 * time.Second

// maxAnswer bounds how much of a receiver's answer is read.
const maxAnswer = 64 << 10

// Poster delivers one formatted request: nil on success, else a *DeliveryError (or the
// context's error). *Sender is the HTTP implementation; an outbox may use a fake.
type Poster interface {
	Send(ctx context.Context, r Request) error
}

// Doer is the part of *http.Client a Sender needs.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Sender posts requests over HTTP and reads the platforms' answers: Feishu, DingTalk and
// WeCom answer HTTP 200 with a non-zero code when they refuse a message, so a 200 is a
// success only when its code says so.
type Sender struct {
	Client  Doer          // nil = a new http.Client
	Timeout time.Duration // per attempt, default DefaultTimeout
}

// DeliveryError is a failed attempt. Its text names the destination by scheme://host only.
type DeliveryError struct {
	Kind   Kind
	Dest   string // scheme://host
	Status int    // HTTP status, 0 when no answer arrived
	Code   string // the platform's error code (errcode, code, Slack's error string)
	// Message is the platform's own words, with every part of the URL removed.
	Message string
	// Retryable says whether the same request may succeed later (rate limits, 5xx,
	// network trouble); RetryAfter is the receiver's hint, 0 when none.
	Retryable  bool
	RetryAfter time.Duration
}

func (e *DeliveryError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s webhook %s", e.Kind, e.Dest)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, " code %s", e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Retryable {
		b.WriteString(" (will retry)")
	}
	return b.String()
}

// IsRetryable reports whether err is a delivery failure that another attempt may fix.
func IsRetryable(err error) bool {
	var de *DeliveryError
	return errors.As(err, &de) && de.Retryable
}

// Send performs one attempt.
func (s *Sender) Send(ctx context.Context, r Request) error {
	client := s.Client
	if client == nil {
		client = &http.Client{}
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	red := newRedactor(r.URL)
	fail := func(status int, retry bool, msg string) *DeliveryError {
		return &DeliveryError{Kind: r.Kind, Dest: RedactURL(r.URL), Status: status, Retryable: retry,
			Message: red.clean(msg)}
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodPost, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return fail(0, false, "the request cannot be built")
	}
	for k, v := range r.Header {
		req.Header[k] = append([]string(nil), v...)
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			// The caller gave up: not the receiver's fault, and nothing to classify.
			return ctx.Err()
		}
		return fail(0, true, transportText(err))
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if de := classify(r.Kind, resp.StatusCode, resp.Header, answer); de != nil {
		de.Kind, de.Dest = r.Kind, RedactURL(r.URL)
		de.Message = red.clean(de.Message)
		de.Code = red.clean(de.Code)
		return de
	}
	return nil
}

// transportText describes a transport failure without the URL net/http puts into it.
func transportText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	return err.Error()
}

// classify reads an answer; nil means delivered.
func classify(f Kind, status int, h http.Header, body []byte) *DeliveryError {
	text := strings.TrimSpace(string(body))
	if status < 200 || status > 299 {
		de := &DeliveryError{Status: status, Message: snippet(text, 200)}
		switch {
		case status == http.StatusTooManyRequests:
			de.Retryable = true
		case status == http.StatusRequestTimeout || status >= 500:
			de.Retryable = true
		}
		if f == Slack {
			// Slack answers a plain error string: invalid_payload, channel_is_archived, …
			de.Code = snippet(text, 64)
			de.Message = ""
		}
		de.RetryAfter = retryAfter(h)
		if f == Feishu || f == DingTalk || f == WeCom {
			// Their gateways wrap refusals in the same code bodies as 200 answers.
			if code, msg, ok := platformCode(f, body); ok {
				de.Code, de.Message = code, msg
			}
		}
		return de
	}
	switch f {
	case Feishu, DingTalk, WeCom:
		code, msg, ok := platformCode(f, body)
		if !ok {
			// Delivered or not is unknown; retrying could post twice, so do not.
			return &DeliveryError{Status: status, Message: "answer is not the platform's JSON: " + snippet(text, 120)}
		}
		if code == "0" {
			return nil
		}
		de := &DeliveryError{Status: status, Code: code, Message: msg}
		de.Retryable, de.RetryAfter = retryableCode(f, code)
		if ra := retryAfter(h); ra > 0 {
			de.RetryAfter = ra
		}
		return de
	}
	// Generic receivers and Slack ("ok"): any 2xx is delivered.
	return nil
}

// platformCode reads Feishu's {"code","msg"} (older answers: StatusCode/StatusMessage)
// or DingTalk's and WeCom's {"errcode","errmsg"}.
func platformCode(f Kind, body []byte) (code, msg string, ok bool) {
	var v map[string]json.RawMessage
	if json.Unmarshal(body, &v) != nil || v == nil {
		return "", "", false
	}
	field := func(names ...string) (string, bool) {
		for _, n := range names {
			raw, ok := v[n]
			if !ok {
				continue
			}
			var s string
			if json.Unmarshal(raw, &s) == nil {
				return s, true
			}
			var num json.Number
			if json.Unmarshal(raw, &num) == nil {
				return num.String(), true
			}
		}
		return "", false
	}
	if f == Feishu {
		code, ok = field("code", "StatusCode")
		msg, _ = field("msg", "StatusMessage")
	} else {
		code, ok = field("errcode")
		msg, _ = field("errmsg")
	}
	return code, snippet(msg, 200), ok
}

// retryableCode says which refusals are worth another attempt and how long to wait.
func retryableCode(f Kind, code string) (bool, time.Duration) {
	switch f {
	case Feishu:
		// 11232: frequency limit (100/min, 5/s per bot); 99991400: platform rate limit.
		if code == "11232" || code == "99991400" {
			return true, 0
		}
	case DingTalk:
		// 130101: more than 20 messages a minute; the robot is throttled for 10 minutes.
		if code == "130101" {
			return true, 10 * time.Minute
		}
		if code == "-1" { // system busy
			return true, 0
		}
	case WeCom:
		// 45009: more than 20 messages a minute.
		if code == "45009" {
			return true, time.Minute
		}
		if code == "-1" {
			return true, 0
		}
	}
	// Security settings (signature, keyword, IP allow-list), a revoked token, a bad body:
	// the same request will be refused again.
	return false, 0
}

func retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// redactor removes every credential-bearing part of a webhook URL from text a receiver
// sent back or a transport error carries.
type redactor struct{ parts []string }

func newRedactor(raw string) redactor {
	var r redactor
	if raw == "" {
		return r
	}
	r.parts = append(r.parts, raw)
	u, err := url.Parse(raw)
	if err != nil {
		return r
	}
	if u.Path != "" && u.Path != "/" {
		r.parts = append(r.parts, u.Path, u.EscapedPath())
		for _, seg := range strings.Split(u.Path, "/") {
			if len(seg) >= 8 {
				r.parts = append(r.parts, seg)
			}
		}
	}
	if u.RawQuery != "" {
		r.parts = append(r.parts, u.RawQuery)
		for _, vals := range u.Query() {
			for _, v := range vals {
				if len(v) >= 6 {
					r.parts = append(r.parts, v, url.QueryEscape(v))
				}
			}
		}
	}
	if u.User != nil {
		r.parts = append(r.parts, u.User.String())
	}
	return r
}

func (r redactor) clean(s string) string {
	for _, p := range r.parts {
		if p != "" {
			s = strings.ReplaceAll(s, p, "[redacted]")
		}
	}
	return s
}

// snippet shortens s to n bytes on a rune boundary.
func snippet(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
