package upstream

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/catalog"
	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
)

// Keyword groups of the generic rules, one per failure class: invalid_key (401,
// invalid_api_key), key_banned (terminated, deactivated), no_quota (402, insufficient quota,
// balance, credit, 余额, 欠费), rate_limited (429, honour Retry-After), model_not_found
// (404, model_not_found), region_blocked (location, region, country); 5xx and timeouts are
// upstream_unreachable. All lower-case.
var (
	quotaWords = []string{"insufficient_quota", "insufficient balance", "insufficient_balance", "exceeded your current quota",
		"exceeded_current_quota", "quota exceeded", "quota_exceeded", "balance", "credits", "insufficient credit", "out of credit", "arrear", "recharge", "billing",
		"payment required", "余额", "欠费", "充值", "额度"}
	bannedWords = []string{"account_deactivated", "deactivated", "banned", "suspended", "terminated", "account disabled",
		"key disabled", "has been disabled", "封禁", "封号", "停用"}
	invalidKeyWords = []string{"invalid_api_key", "invalid api key", "incorrect api key", "invalid_authentication",
		"authentication", "unauthorized", "invalid token", "token is invalid", "api key not valid", "login fail", "access token invalid", "token invalid"}
	rateWords  = []string{"rate limit", "rate_limit", "ratelimit", "too many requests", "throttl", "concurrency", "overloaded"}
	modelWords = []string{"model_not_found", "model not found", "model not exist", "model does not exist", "unknown model",
		"not found the model", "no such model", "invalid model", "not a valid model", "modelnotfound", "model_not_exist",
		"unsupported model", "model is not supported", "does not exist"}
	regionWords = []string{"unsupported_country", "country", "region", "territory", "location is not supported", "not available in your"}
)

// Classify turns an upstream answer into a failure, or nil when it is a success. It looks
// inside HTTP 200 bodies too, because MiniMax (base_resp), Zhipu and some relays report
// errors with status 200. Provider rules from the catalog are tried first, then the
// generic status/keyword rules. The message quotes the provider's own text, shortened;
// callers that hold the API key must still redact it (Prober does).
func Classify(providerID string, status int, header http.Header, body []byte) *failure.Error {
	return classifyWith(catalog.Default(), providerID, status, header, body)
}

func classifyWith(cat *catalog.Catalog, providerID string, status int, header http.Header, body []byte) *failure.Error {
	info := parseErrorBody(body)
	if status >= 200 && status < 400 && !info.present {
		return nil
	}
	text := info.text()
	if !info.present && status >= 400 {
		// Non-JSON body or an envelope we do not know: search the raw text.
		text = strings.ToLower(info.code + " " + info.typ + " " + snippet(string(body), 1000))
	}
	class, retryable, matched := matchProvider(cat, providerID, status, info, text)
	if !matched && info.baseResp && providerID != "minimax" {
		// A relay passing MiniMax's native envelope through.
		class, retryable, matched = matchProvider(cat, "minimax", status, info, text)
	}
	if !matched {
		class, retryable = generic(status, text)
	}
	fe := &failure.Error{Class: class, Retryable: retryable, Message: describe(cat, providerID, status, info)}
	if class == failure.RateLimited || class == failure.UpstreamUnreachable {
		fe.Retryable = true
	}
	if ra, ok := retryAfter(header); ok {
		fe.RetryAfter = ra
	}
	return fe
}

func matchProvider(cat *catalog.Catalog, providerID string, status int, info errorInfo, text string) (failure.Class, bool, bool) {
	p, ok := cat.Provider(providerID)
	if !ok {
		return "", false, false
	}
	for _, r := range p.Errors {
		if len(r.Status) > 0 && !slices.Contains(r.Status, status) {
			continue
		}
		if len(r.Codes) > 0 && !slices.ContainsFunc(r.Codes, func(c string) bool { return slices.Contains(info.codes, c) }) {
			continue
		}
		if len(r.Contains) > 0 && !containsAny(text, r.Contains) {
			continue
		}
		if len(r.Status) == 0 && len(r.Codes) == 0 && len(r.Contains) == 0 {
			continue
		}
		return failure.Class(r.Class), r.Retryable, true
	}
	return "", false, false
}

// generic applies the status-based rules, refined by keywords.
func generic(status int, text string) (failure.Class, bool) {
	switch {
	case status == http.StatusUnauthorized:
		if containsAny(text, bannedWords) {
			return failure.KeyBanned, false
		}
		return failure.InvalidKey, false
	case status == http.StatusPaymentRequired:
		return failure.NoQuota, false
	case status == http.StatusForbidden:
		switch {
		case containsAny(text, quotaWords):
			return failure.NoQuota, false
		case containsAny(text, bannedWords):
			return failure.KeyBanned, false
		case containsAny(text, regionWords):
			return failure.RegionBlocked, false
		case containsAny(text, modelWords):
			return failure.ModelNotFound, false
		}
		// A bare 403 is a permission problem of this key. It can be transient right after
		// the key was created, so the caller should re-probe before acting.
		return failure.InvalidKey, false
	case status == http.StatusNotFound:
		if containsAny(text, modelWords) || strings.Contains(text, "model") {
			return failure.ModelNotFound, false
		}
		return failure.UpstreamIncompatible, false
	case status == http.StatusTooManyRequests:
		if containsAny(text, quotaWords) && !containsAny(text, rateWords) {
			return failure.NoQuota, false
		}
		return failure.RateLimited, true
	case status == http.StatusUnavailableForLegalReasons:
		return failure.RegionBlocked, false
	case status == http.StatusRequestTimeout || status >= 500:
		if containsAny(text, quotaWords) {
			return failure.NoQuota, false
		}
		return failure.UpstreamUnreachable, true
	case status >= 400:
		return classifyText(text, failure.UpstreamIncompatible)
	default:
		// An error body inside a 2xx/3xx answer.
		return classifyText(text, failure.UpstreamIncompatible)
	}
}

// classifyText decides by keywords alone, for 400-class and in-200 errors.
func classifyText(text string, fallback failure.Class) (failure.Class, bool) {
	switch {
	case containsAny(text, modelWords) ||
		(strings.Contains(text, "model") && (strings.Contains(text, "not found") || strings.Contains(text, "not exist"))):
		return failure.ModelNotFound, false
	case containsAny(text, quotaWords):
		return failure.NoQuota, false
	case containsAny(text, bannedWords):
		return failure.KeyBanned, false
	case containsAny(text, invalidKeyWords):
		return failure.InvalidKey, false
	case containsAny(text, rateWords):
		return failure.RateLimited, true
	case containsAny(text, regionWords):
		return failure.RegionBlocked, false
	}
	return fallback, false
}

func containsAny(text string, words []string) bool {
	for _, w := range words {
		if strings.Contains(text, w) {
			return true
		}
	}
	return false
}

// describe builds the failure message: provider, status and the provider's own words.
func describe(cat *catalog.Catalog, providerID string, status int, info errorInfo) string {
	name := providerID
	if p, ok := cat.Provider(providerID); ok {
		name = p.Name
	}
	if name == "" {
		name = "upstream"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s answered HTTP %d", snippet(name, 64), status)
	if info.present && status < 400 {
		b.WriteString(" with an error body")
	}
	if info.code != "" {
		fmt.Fprintf(&b, " (code %s)", snippet(info.code, 64))
	}
	if msg := snippet(info.message, 200); msg != "" {
		b.WriteString(": ")
		b.WriteString(msg)
	}
	return b.String()
}

// retryAfter parses Retry-After as seconds or an HTTP date.
func retryAfter(h http.Header) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil && n >= 0 {
		return time.Duration(n * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := time.Until(t)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}
