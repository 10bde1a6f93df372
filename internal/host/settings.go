package host

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
)

// PublicSettings is what GET /api/v1/settings/public tells before any login.
type PublicSettings struct {
	Version            string
	TurnstileEnabled   bool
	TOTPEnabled        bool
	BackendModeEnabled bool
	CaptchaEnabled     bool // any *_captcha_enabled flag is true (0.1.179 adds Tencent/Aliyun captchas)
	// ForkMarkers is true when the settings carry fields only seen on 0.1.12x-line forks
	// (ZY4869/sub2api 0.1.321: public_model_catalog_enabled, account_airy_white_surface_enabled, ...).
	ForkMarkers bool
}

// forkSettingFields are public-settings keys seen on the fork and on no upstream release.
var forkSettingFields = []string{
	"public_model_catalog_enabled", "account_airy_white_surface_enabled",
	"payment_provider_airwallex_enabled", "visual_preset_default",
}

// Health checks GET /health (no auth, no envelope: {"status":"ok"}).
func (c *Client) Health(ctx context.Context) error {
	r := request{target: "host", method: http.MethodGet, path: "/health"}
	resp, err := c.send(ctx, r)
	if err != nil {
		return err
	}
	secrets := c.secretsFor(ctx, &r)
	if resp.status != http.StatusOK {
		return decodeError(resp, r.method, r.path, secrets)
	}
	var h struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(resp.body, &h) != nil || h.Status != "ok" {
		return &Error{Status: resp.status, Code: CodeBadResponse, Method: r.method, Path: r.path,
			Message: "unexpected health answer: " + snippet(resp.body, secrets)}
	}
	return nil
}

// PublicSettings reads GET /api/v1/settings/public (no auth), which carries the version on
// every known host and the flags that block automated logins.
func (c *Client) PublicSettings(ctx context.Context) (*PublicSettings, error) {
	var raw map[string]json.RawMessage
	r := request{target: "host", method: http.MethodGet, path: "/api/v1/settings/public"}
	if err := c.call(ctx, r, &raw); err != nil {
		return nil, err
	}
	ps := &PublicSettings{
		TurnstileEnabled:   rawBool(raw["turnstile_enabled"]),
		TOTPEnabled:        rawBool(raw["totp_enabled"]),
		BackendModeEnabled: rawBool(raw["backend_mode_enabled"]),
	}
	_ = json.Unmarshal(raw["version"], &ps.Version)
	for k, v := range raw {
		if strings.HasSuffix(k, "_captcha_enabled") && rawBool(v) {
			ps.CaptchaEnabled = true
		}
	}
	for _, k := range forkSettingFields {
		if _, ok := raw[k]; ok {
			ps.ForkMarkers = true
		}
	}
	return ps, nil
}

func rawBool(raw json.RawMessage) bool {
	var b bool
	return len(raw) > 0 && json.Unmarshal(raw, &b) == nil && b
}

// SystemVersion reads GET /api/v1/admin/system/version (admin auth).
func (c *Client) SystemVersion(ctx context.Context) (string, error) {
	var v struct {
		Version string `json:"version"`
	}
	if err := c.call(ctx, adminRequest(http.MethodGet, "/api/v1/admin/system/version", nil), &v); err != nil {
		return "", err
	}
	return v.Version, nil
}

// ComplianceStatus is the 0.1.179 admin compliance state. Supported is false on hosts
// without the route (0.1.129, forks).
type ComplianceStatus struct {
	Supported     bool
	Required      bool
	Version       string
	DocumentURLEn string
	DocumentURLZh string
	AckPhraseEn   string
	// AckPhraseZh is the Chinese acknowledgement phrase (language "zh").
	AckPhraseZh string
	// AcceptedAt is the acceptance time reported by the host, empty when not accepted.
	AcceptedAt string
}

type complianceWire struct {
	Required        bool   `json:"required"`
	Version         string `json:"version"`
	DocumentURLEn   string `json:"document_url_en"`
	DocumentURLZh   string `json:"document_url_zh"`
	AckPhraseEn     string `json:"ack_phrase_en"`
	AckPhraseZh     string `json:"ack_phrase_zh"`
	Acknowledgement *struct {
		AcceptedAt string `json:"accepted_at"`
	} `json:"acknowledgement"`
}

func (w complianceWire) status() *ComplianceStatus {
	s := &ComplianceStatus{Supported: true, Required: w.Required, Version: w.Version,
		DocumentURLEn: w.DocumentURLEn, DocumentURLZh: w.DocumentURLZh,
		AckPhraseEn: w.AckPhraseEn, AckPhraseZh: w.AckPhraseZh}
	if w.Acknowledgement != nil {
		s.AcceptedAt = w.Acknowledgement.AcceptedAt
	}
	return s
}

// Compliance reads GET /api/v1/admin/compliance. A 404 (0.1.129, forks) means the host has
// no compliance gate: (&ComplianceStatus{Supported:false}, nil).
func (c *Client) Compliance(ctx context.Context) (*ComplianceStatus, error) {
	var w complianceWire
	err := c.call(ctx, adminRequest(http.MethodGet, "/api/v1/admin/compliance", nil), &w)
	if IsNotFound(err) {
		return &ComplianceStatus{Supported: false}, nil
	}
	if err != nil {
		return nil, err
	}
	return w.status(), nil
}

// AcceptCompliance posts the acknowledgement phrase (POST /api/v1/admin/compliance/accept,
// language "en"). Accepting is a legal statement by the operator: call it only on an
// explicit operator action, never from automation.
func (c *Client) AcceptCompliance(ctx context.Context, phraseEn string) (*ComplianceStatus, error) {
	var w complianceWire
	body := map[string]string{"phrase": phraseEn, "language": "en"}
	if err := c.call(ctx, adminRequest(http.MethodPost, "/api/v1/admin/compliance/accept", body), &w); err != nil {
		return nil, err
	}
	return w.status(), nil
}
