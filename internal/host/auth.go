package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Session is the answer of a successful login.
type Session struct {
	AccessToken  string
	RefreshToken string
	ExpiresIn    int // seconds
	User         User
}

type loginWire struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
	User         User   `json:"user"`
	Requires2FA  bool   `json:"requires_2fa"`
}

// Login calls POST /api/v1/auth/login. Wrong credentials give 401 INVALID_CREDENTIALS; a
// host with TOTP on answers requires_2fa, returned as *Error with Code "REQUIRES_2FA".
// Logins are rate limited (about 20/min per IP): reuse sessions.
func (c *Client) Login(ctx context.Context, email, password string) (*Session, error) {
	r := request{target: "host", method: http.MethodPost, path: "/api/v1/auth/login",
		body: map[string]string{"email": email, "password": password}, secrets: []string{password}}
	var raw json.RawMessage
	if err := c.call(ctx, r, &raw); err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	var w loginWire
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, fmt.Errorf("login: %w", &Error{Status: http.StatusOK, Code: CodeBadResponse,
			Method: r.method, Path: r.path, Message: "cannot decode login answer", Err: err})
	}
	if w.Requires2FA {
		return nil, fmt.Errorf("login: %w", &Error{Status: http.StatusOK, Code: CodeRequires2FA,
			Method: r.method, Path: r.path, Message: "login requires a TOTP code (2FA enabled on this account)"})
	}
	if w.AccessToken == "" {
		return nil, fmt.Errorf("login: %w", &Error{Status: http.StatusOK, Code: CodeBadResponse,
			Method: r.method, Path: r.path, Message: "login answer has no access_token"})
	}
	return &Session{AccessToken: w.AccessToken, RefreshToken: w.RefreshToken, ExpiresIn: w.ExpiresIn, User: w.User}, nil
}

// errNoSession is returned when admin JWT auth is configured without a password.
var errNoSession = errors.New("admin e-mail configured without password")

// tokenMargin renews the admin JWT this long before it expires.
const tokenMargin = 5 * time.Minute

// adminToken returns a valid admin JWT, logging in with AdminEmail/AdminPassword when there
// is none or it is about to expire. The admin API key is never regenerated here: that would
// lock out the operator's own key.
func (c *Client) adminToken(ctx context.Context) (string, error) {
	if tok := c.currentToken(); tok != "" {
		return tok, nil
	}
	c.loginMu.Lock()
	defer c.loginMu.Unlock()
	if tok := c.currentToken(); tok != "" {
		return tok, nil // another goroutine logged in meanwhile
	}
	if c.cfg.AdminPassword == "" {
		return "", &Error{Code: CodeConfig, Method: http.MethodPost, Path: "/api/v1/auth/login",
			Message: errNoSession.Error(), Err: errNoSession}
	}
	s, err := c.Login(ctx, c.cfg.AdminEmail, c.cfg.AdminPassword)
	if err != nil {
		return "", fmt.Errorf("admin login: %w", err)
	}
	exp := time.Now().Add(24 * time.Hour)
	if s.ExpiresIn > 0 {
		exp = time.Now().Add(time.Duration(s.ExpiresIn) * time.Second)
	}
	c.mu.Lock()
	c.jwt, c.refresh, c.expires = s.AccessToken, s.RefreshToken, exp
	c.mu.Unlock()
	return s.AccessToken, nil
}

func (c *Client) currentToken() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.jwt == "" || time.Now().Add(tokenMargin).After(c.expires) {
		return ""
	}
	return c.jwt
}

// dropToken forgets the admin JWT after the host rejected it. Its value stays known for
// redaction until the next login replaces it.
func (c *Client) dropToken() {
	c.mu.Lock()
	c.expires = time.Time{}
	c.mu.Unlock()
}
