package host

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/cn-relay-manager/cn-relay-manager/internal/evidence"
)

func TestLogin(t *testing.T) {
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			rp := newReplay(t, v, "auth.login.user.ok", "auth.login.bad-password")
			fx := loadFixture(t, v, "auth.login.user.ok")
			var in struct{ Email, Password string }
			requestBody(t, fx, &in)
			var rec evidence.Recorder
			ctx := evidence.WithRecorder(context.Background(), &rec)
			c := New(Config{AdminURL: rp.URL})
			s, err := c.Login(ctx, in.Email, in.Password)
			if err != nil {
				t.Fatal(err)
			}
			assertSentAsRecorded(t, fx, rp.last())
			if rp.last().Header.Get("x-api-key") != "" || rp.last().Header.Get("Authorization") != "" {
				t.Error("login sent credentials headers")
			}
			if !strings.HasPrefix(s.AccessToken, "eyJ") || !strings.HasPrefix(s.RefreshToken, "rt_") || s.ExpiresIn != 86400 {
				t.Errorf("session %+v", s)
			}
			if s.User.Email != in.Email || s.User.ID == 0 || s.User.Role != "user" {
				t.Errorf("session user %+v", s.User)
			}
			// The tokens the host handed out never reach the evidence preview.
			ex := rec.Exchanges()
			if len(ex) != 1 || ex[0].Status != 200 || ex[0].Target != "host" {
				t.Fatalf("exchanges %+v", ex)
			}
			if strings.Contains(ex[0].Preview, s.AccessToken[:40]) || strings.Contains(ex[0].Preview, "fixture-sig-000") || strings.Contains(ex[0].Preview, "fixture1") {
				t.Errorf("token in preview: %s", ex[0].Preview)
			}

			_, err = c.Login(ctx, "admin@sub2api.local", "Wrong-Pw-5ecret!")
			he := mustHostError(t, err, 401, "INVALID_CREDENTIALS")
			if strings.Contains(err.Error(), "Wrong-Pw-5ecret!") || he.Message != "invalid email or password" {
				t.Errorf("bad-password error %q", err.Error())
			}
		})
	}
}

func TestLoginRequires2FA(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"code":0,"message":"success","data":{"requires_2fa":true,"temp_token":"tmp-5ecret-5ecret-5ecret"}}`))
	}))
	defer srv.Close()
	var rec evidence.Recorder
	ctx := evidence.WithRecorder(context.Background(), &rec)
	_, err := New(Config{AdminURL: srv.URL}).Login(ctx, "a@b.c", "password-5ecret")
	mustHostError(t, err, 200, CodeRequires2FA)
	if p := rec.Exchanges()[0].Preview; strings.Contains(p, "tmp-5ecret") {
		t.Errorf("temp token in preview %s", p)
	}
}

// jwtHost simulates the admin JWT flow: logins hand out tok-1, tok-2, ...; the first token
// is rejected once with 401 INVALID_TOKEN, as after an expiry.
type jwtHost struct {
	mu      sync.Mutex
	logins  int
	paths   []string
	headers []http.Header
}

func (h *jwtHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.paths = append(h.paths, r.URL.Path)
	h.headers = append(h.headers, r.Header.Clone())
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/api/v1/auth/login":
		var in struct{ Email, Password string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		if in.Password != "Admin-Pw-5ecret!" {
			w.WriteHeader(401)
			_, _ = w.Write([]byte(`{"code":401,"message":"invalid email or password","reason":"INVALID_CREDENTIALS"}`))
			return
		}
		h.logins++
		tok := "eyJadmin.token-5ecret-" + string(rune('0'+h.logins)) + ".sig"
		_, _ = w.Write([]byte(`{"code":0,"message":"success","data":{"access_token":"` + tok + `","refresh_token":"rt_5ecret5ecret","expires_in":86400,"user":{"id":1,"role":"admin"}}}`))
	case "/api/v1/admin/system/version":
		if r.Header.Get("Authorization") != "Bearer eyJadmin.token-5ecret-2.sig" {
			w.WriteHeader(401)
			_, _ = w.Write([]byte(`{"code":"INVALID_TOKEN","message":"Invalid token"}`))
			return
		}
		_, _ = w.Write([]byte(`{"code":0,"message":"success","data":{"version":"0.1.179"}}`))
	default:
		w.WriteHeader(404)
		_, _ = w.Write([]byte("404 page not found"))
	}
}

func TestAdminJWTReloginOnInvalidToken(t *testing.T) {
	h := &jwtHost{}
	srv := httptest.NewServer(h)
	defer srv.Close()
	var rec evidence.Recorder
	ctx := evidence.WithRecorder(context.Background(), &rec)
	c := New(Config{AdminURL: srv.URL, AdminEmail: "admin@example.com", AdminPassword: "Admin-Pw-5ecret!"})
	v, err := c.SystemVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v != "0.1.179" || h.logins != 2 {
		t.Fatalf("version %q after %d logins", v, h.logins)
	}
	want := []string{"/api/v1/auth/login", "/api/v1/admin/system/version", "/api/v1/auth/login", "/api/v1/admin/system/version"}
	if strings.Join(h.paths, ",") != strings.Join(want, ",") {
		t.Errorf("paths %v", h.paths)
	}
	for i, hd := range h.headers {
		if hd.Get("x-api-key") != "" {
			t.Errorf("request %d sent x-api-key", i)
		}
		if strings.Contains(h.paths[i], "admin-api-key") {
			t.Error("client touched the admin API key")
		}
	}
	// The token is reused while valid.
	if _, err := c.SystemVersion(ctx); err != nil || h.logins != 2 {
		t.Fatalf("second call: %v, %d logins", err, h.logins)
	}
	for _, ex := range rec.Exchanges() {
		if strings.Contains(ex.Preview, "token-5ecret") || strings.Contains(ex.Preview, "rt_5ecret") {
			t.Errorf("token in preview %s", ex.Preview)
		}
	}

	bad := New(Config{AdminURL: srv.URL, AdminEmail: "admin@example.com", AdminPassword: "wrong-Pw-5ecret!"})
	_, err = bad.SystemVersion(ctx)
	mustHostError(t, err, 401, "INVALID_CREDENTIALS")
	if strings.Contains(err.Error(), "wrong-Pw-5ecret") {
		t.Error("password in error")
	}
}

func TestAdminAuthErrors(t *testing.T) {
	for _, v := range versions {
		for _, tc := range []struct{ fixture, code, msg string }{
			{"admin.invalid-admin-key", CodeInvalidAdminKey, "Invalid admin API key"},
			{"admin.no-auth", "UNAUTHORIZED", "Authorization required"},
			{"admin.admin-key-as-bearer", CodeInvalidToken, "Invalid token"},
		} {
			t.Run(v+"/"+tc.fixture, func(t *testing.T) {
				rp := newReplay(t, v, tc.fixture)
				_, err := rp.adminClient().SystemVersion(context.Background())
				he := mustHostError(t, err, 401, tc.code)
				if he.Message != tc.msg {
					t.Errorf("message %q", he.Message)
				}
				if strings.Contains(err.Error(), testAdminKey[:20]) {
					t.Error("admin key in error")
				}
			})
		}
	}
}

func TestSystemVersionAndHealth(t *testing.T) {
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			rp := newReplay(t, v, "system.version.ok", "health.ok")
			c := rp.adminClient()
			got, err := c.SystemVersion(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			assertSentAsRecorded(t, loadFixture(t, v, "system.version.ok"), rp.last())
			want := strings.TrimPrefix(v, "fork-")
			if got != want {
				t.Errorf("version %q want %q", got, want)
			}
			if err := c.Health(context.Background()); err != nil {
				t.Fatal(err)
			}
			if rp.last().Header.Get("x-api-key") != "" {
				t.Error("health sent the admin key")
			}
		})
	}
}

func TestComplianceGate(t *testing.T) {
	ctx := context.Background()
	rp := newReplay(t, "0.1.179", "compliance.ack-required", "compliance.status.ok", "compliance.accept.bad-phrase", "compliance.accept.ok")
	c := rp.adminClient()
	_, err := c.ListGroups(ctx, "")
	if !IsComplianceLocked(err) {
		t.Fatalf("want compliance lock, got %v", err)
	}
	he := mustHostError(t, err, 423, CodeComplianceRequired)
	if ComplianceVersion(err) != "v2026.06.10" || he.Metadata["document_url_en"] == nil {
		t.Errorf("metadata %+v", he.Metadata)
	}
	if IsComplianceLocked(&Error{Status: 404}) || IsComplianceLocked(nil) {
		t.Error("IsComplianceLocked false positives")
	}

	st, err := c.Compliance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Supported || st.Required || st.Version != "v2026.06.10" || !strings.HasPrefix(st.AckPhraseEn, "I have read") ||
		!strings.HasSuffix(st.DocumentURLEn, "admin-compliance.en.md") || !strings.HasSuffix(st.DocumentURLZh, "admin-compliance.zh.md") || st.AcceptedAt == "" {
		t.Errorf("compliance %+v", st)
	}

	_, err = c.AcceptCompliance(ctx, "wrong phrase")
	mustHostError(t, err, 400, "ADMIN_COMPLIANCE_INVALID_PHRASE")
	acc := loadFixture(t, "0.1.179", "compliance.accept.ok")
	var in struct{ Phrase string }
	requestBody(t, acc, &in)
	st, err = c.AcceptCompliance(ctx, in.Phrase)
	if err != nil {
		t.Fatal(err)
	}
	assertSentAsRecorded(t, acc, rp.last())
	if st.Required {
		t.Errorf("after accept %+v", st)
	}

	for _, v := range []string{"0.1.129", "fork-0.1.321"} {
		rp := newReplay(t, v, "compliance.status.not-found")
		st, err := rp.adminClient().Compliance(ctx)
		if err != nil || st.Supported {
			t.Errorf("%s: compliance %+v %v", v, st, err)
		}
	}
}

func TestAdminJWTConcurrentCallsLogInOnce(t *testing.T) {
	h := &jwtHost{}
	srv := httptest.NewServer(h)
	defer srv.Close()
	c := New(Config{AdminURL: srv.URL, AdminEmail: "admin@example.com", AdminPassword: "Admin-Pw-5ecret!"})
	// Warm up past the first (rejected) token.
	if _, err := c.SystemVersion(context.Background()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.SystemVersion(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if h.logins != 2 {
		t.Errorf("%d logins", h.logins)
	}
}

func TestAdminEmailWithoutPassword(t *testing.T) {
	_, err := New(Config{AdminURL: "http://127.0.0.1:1", AdminEmail: "a@b.c"}).SystemVersion(context.Background())
	mustHostError(t, err, 0, CodeConfig)
}
