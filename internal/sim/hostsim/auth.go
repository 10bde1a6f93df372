package hostsim

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
)

const compliancePhraseEN = "I have read, understood, and agree to the Sub2API Deployment and Operation Compliance Commitment"

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// issueToken mints a JWT-shaped opaque token; it is only valid inside this simulator.
func (s *Server) issueToken(u *user) string {
	claims, _ := json.Marshal(map[string]any{"user_id": u.id, "email": u.email, "role": u.role, "jti": randHex(8)})
	tok := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + base64.RawURLEncoding.EncodeToString(claims) + "." + randHex(16)
	s.tokens[tok] = u.id
	return tok
}

func (s *Server) handleSettingsPublic(w http.ResponseWriter) {
	ok(w, overlay(s.prof.tmpl("settings_public"), map[string]any{"version": s.prof.version}))
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Email == "" || req.Password == "" {
		bindErr(w, "Key: 'LoginRequest.Email' Error:Field validation for 'Email' failed on the 'required' tag")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if strings.EqualFold(u.email, req.Email) && u.password == req.Password && u.status == "active" {
			data := s.prof.tmpl("login")
			data["access_token"] = s.issueToken(u)
			data["refresh_token"] = "rt_" + randHex(32)
			data["expires_in"] = 86400
			data["token_type"] = "Bearer"
			data["user"] = s.userObj("login_user", u, data["user"])
			now := s.now()
			u.lastActive = &now
			ok(w, data)
			return
		}
	}
	typedErr(w, 401, "INVALID_CREDENTIALS", "invalid email or password")
}

// bearer returns the Bearer token of the request, if any.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return strings.TrimSpace(h[7:]), true
	}
	return "", false
}

// adminAuth authenticates an admin request and returns the acting user id.
// Caller holds s.mu.
func (s *Server) adminAuth(w http.ResponseWriter, r *http.Request) (int64, bool) {
	if k := r.Header.Get("x-api-key"); k != "" {
		if s.adminKey != "" && k == s.adminKey {
			return adminUserID, true
		}
		mwErr(w, 401, "INVALID_ADMIN_KEY", "Invalid admin API key")
		return 0, false
	}
	tok, has := bearer(r)
	if !has {
		mwErr(w, 401, "UNAUTHORIZED", "Authorization required")
		return 0, false
	}
	u, ok := s.jwtUser(w, tok)
	if !ok {
		return 0, false
	}
	uid := u.id
	if u.role != "admin" {
		mwErr(w, 403, "FORBIDDEN", "Admin access required")
		return 0, false
	}
	return uid, true
}

// userAuth authenticates a user-JWT route (/api/v1/keys). Caller holds s.mu.
func (s *Server) userAuth(w http.ResponseWriter, r *http.Request) (*user, bool) {
	tok, has := bearer(r)
	if !has {
		mwErr(w, 401, "UNAUTHORIZED", "Authorization header is required")
		return nil, false
	}
	return s.jwtUser(w, tok)
}

// jwtUser checks a JWT the way the hosts' JWT middleware does: the signature first (an
// unknown token is INVALID_TOKEN), then the user it names, read fresh: a token outlives its
// user (USER_NOT_FOUND after a delete) and a disabled user's token is USER_INACTIVE.
// Caller holds s.mu.
func (s *Server) jwtUser(w http.ResponseWriter, tok string) (*user, bool) {
	uid, found := s.tokens[tok]
	if !found {
		mwErr(w, 401, "INVALID_TOKEN", "Invalid token")
		return nil, false
	}
	u := s.users[uid]
	if u == nil {
		mwErr(w, 401, "USER_NOT_FOUND", "User not found")
		return nil, false
	}
	if u.status != "active" {
		mwErr(w, 401, "USER_INACTIVE", "User account is not active")
		return nil, false
	}
	return u, true
}

// complianceLocked writes the 423 when the acting admin has not accepted. Caller holds s.mu.
func (s *Server) complianceLocked(w http.ResponseWriter, uid int64) bool {
	if !s.prof.compliance || s.accepted[uid] {
		return false
	}
	body := s.prof.tmpl("compliance_locked")
	if body == nil {
		body = map[string]any{"code": "ADMIN_COMPLIANCE_ACK_REQUIRED", "message": "administrator compliance acknowledgement is required"}
	}
	writeJSON(w, 423, body)
	return true
}

func (s *Server) complianceStatus(uid int64, r *http.Request) map[string]any {
	if !s.accepted[uid] {
		return s.prof.tmpl("compliance_required")
	}
	d := s.prof.tmpl("compliance_accepted")
	if ack, ok := d["acknowledgement"].(map[string]any); ok {
		ack["admin_user_id"] = uid
		ack["accepted_at"] = s.now().UTC().Format(timeFmt)
		ack["ip_address"] = "127.0.0.1"
		if ua := s.ackUA[uid]; ua != "" {
			ack["user_agent"] = ua
		}
	}
	return d
}

func (s *Server) handleComplianceAccept(w http.ResponseWriter, r *http.Request, uid int64) {
	var req struct {
		Phrase   string `json:"phrase"`
		Language string `json:"language"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Phrase == "" {
		bindErr(w, "Key: 'AcceptComplianceRequest.Phrase' Error:Field validation for 'Phrase' failed on the 'required' tag")
		return
	}
	want := compliancePhraseEN
	if req.Language == "zh" {
		if t := s.prof.tmpl("compliance_required"); t != nil {
			want, _ = t["ack_phrase_zh"].(string)
		}
	}
	if strings.TrimSpace(req.Phrase) != want {
		typedErr(w, 400, "ADMIN_COMPLIANCE_INVALID_PHRASE", "confirmation phrase does not match")
		return
	}
	s.accepted[uid] = true
	ok(w, s.complianceStatus(uid, r))
}

func (s *Server) handleAdminKey(w http.ResponseWriter, r *http.Request, path string) {
	switch {
	case r.Method == http.MethodGet && path == "/api/v1/admin/settings/admin-api-key":
		if s.adminKey == "" {
			ok(w, map[string]any{"exists": false, "masked_key": ""})
			return
		}
		ok(w, map[string]any{"exists": true, "masked_key": s.adminKey[:10] + "..." + s.adminKey[len(s.adminKey)-4:]})
	case r.Method == http.MethodPost && path == "/api/v1/admin/settings/admin-api-key/regenerate":
		s.adminKey = "admin-" + randHex(32)
		ok(w, map[string]any{"key": s.adminKey})
	case r.Method == http.MethodDelete && path == "/api/v1/admin/settings/admin-api-key":
		s.adminKey = ""
		ok(w, map[string]any{"message": "Admin API key deleted"})
	default:
		notFoundText(w)
	}
}

// AdminAPIKey returns the current admin API key ("" after a delete).
func (s *Server) AdminAPIKey() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adminKey
}
