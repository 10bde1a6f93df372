package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// signFeishu is Feishu's custom-bot signature: HMAC-SHA256 keyed with
// timestamp + "\n" + secret over an empty message, base64 (timestamp in seconds).
func signFeishu(secret, timestamp string) string {
	mac := hmac.New(sha256.New, []byte(timestamp+"\n"+secret))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// signDingTalk is DingTalk's "加签": HMAC-SHA256 keyed with the secret over
// timestamp + "\n" + secret, base64 (timestamp in milliseconds); the URL query encodes it.
func signDingTalk(secret, timestamp string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp + "\n" + secret))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// signGeneric signs a generic delivery: "sha256=" + hex HMAC-SHA256 keyed with the secret
// over timestamp + "." + body (timestamp in Unix seconds, sent in X-CRM-Timestamp).
func signGeneric(secret, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp + "."))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Errors of VerifyGeneric.
var (
	ErrUnsigned     = errors.New("notify: delivery is not signed")
	ErrBadSignature = errors.New("notify: signature does not match")
	ErrStale        = errors.New("notify: signature timestamp is outside the tolerance")
)

// VerifyGeneric checks a generic delivery as a receiver should: the signature over
// timestamp and body, and a timestamp within tolerance of now (so a captured delivery
// cannot be replayed later; de-duplicate on X-CRM-Delivery for replays inside it).
func VerifyGeneric(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	ts, sig := h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if ts == "" || sig == "" {
		return ErrUnsigned
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	want := signGeneric(secret, ts, body)
	if !hmac.Equal([]byte(want), []byte(strings.TrimSpace(sig))) {
		return ErrBadSignature
	}
	return nil
}
