// Package web serves the operator's browser pages: server-rendered html/template pages
// embedded in the binary (no front-end build, no JavaScript), a token login that sets a
// signed session cookie, CSRF tokens on every state-changing form, and an en/zh message
// dictionary. It reads through the store and changes state only through Actions (the
// batch service) and HostActions (the host service): registering a host and importing
// keys from the pages is validated by the same code as the REST API.
package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/cn-relay-manager/cn-relay-manager/internal/batch"
	"github.com/cn-relay-manager/cn-relay-manager/internal/hostreg"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// Actions are the state-changing operations the pages offer on batches; implemented by
// the batch service (internal/batch), the same one the REST API calls, so the pages
// validate a submission exactly as the API does.
type Actions interface {
	Submit(ctx context.Context, req batch.Request) (*batch.Submitted, error)
	Retry(ctx context.Context, batchID string) (int, error)
	Cancel(ctx context.Context, batchID string) (int, error)
	Rollback(ctx context.Context, batchID string) error
	Reconcile(ctx context.Context, batchID string) (*store.ReconcileRun, error)
	ReconcileHost(ctx context.Context, hostID string) (*store.ReconcileRun, error)
	ImportDryRun(ctx context.Context, batchID string) (string, error) // re-submits a dry-run batch for real; returns the new batch id
}

// HostActions are the operations the pages offer on hosts; implemented by the host
// service (internal/hostreg), the same one the REST API calls.
type HostActions interface {
	Register(ctx context.Context, in hostreg.Settings) (*store.Host, error)
	Update(ctx context.Context, id string, in hostreg.Settings) (*store.Host, error)
	Test(ctx context.Context, id string, in hostreg.Settings) (*hostreg.TestResult, error)
	Delete(ctx context.Context, id string, forget bool) (*store.Host, *store.HostUsage, error)
}

// Handler serves the pages. Build it as a pointer and do not copy it after first use.
type Handler struct {
	Store         *store.Store
	Actions       Actions
	Hosts         HostActions
	Token         string // the operator API token; logging in means presenting it once
	Log           *slog.Logger
	SecureCookies bool // set Secure on cookies (behind TLS)
	// Accounts are the operations of the accounts pages (nil: those forms answer 503).
	Accounts AccountActions

	once    sync.Once
	key     []byte
	mu      sync.Mutex
	revoked map[string]time.Time // session id → expiry, for logged-out sessions
	fails   map[string]*failWindow
	now     func() time.Time
}

// Cookie names and lifetimes.
const (
	SessionCookie = "crm_session"
	LangCookie    = "lang"
	SessionTTL    = 12 * time.Hour
)

// Login throttling: at most loginMaxFails wrong tokens per client address per window.
const (
	loginMaxFails = 10
	loginWindow   = time.Minute
)

type failWindow struct {
	n     int
	start time.Time
}

func (h *Handler) init() {
	h.once.Do(func() {
		// The session key is derived from the token: sessions survive a restart and work
		// across several api processes, and rotating the token logs everyone out. The
		// token itself never leaves the server.
		m := hmac.New(sha256.New, []byte(h.Token))
		m.Write([]byte("cn-relay-manager/web/session/v1"))
		h.key = m.Sum(nil)
		h.revoked = map[string]time.Time{}
		h.fails = map[string]*failWindow{}
		if h.now == nil {
			h.now = time.Now
		}
		if h.Log == nil {
			h.Log = slog.Default()
		}
	})
}

// Mount registers every page route on app.
func (h *Handler) Mount(app *fiber.App) {
	h.init()
	parseTemplates()
	app.Get("/", func(c *fiber.Ctx) error { return c.Redirect("/batches", fiber.StatusSeeOther) })
	app.Get("/login", h.loginForm)
	app.Post("/login", h.login)
	app.Post("/logout", h.csrf, h.logout)

	app.Get("/batches", h.auth, h.listBatches)
	app.Get("/batches/new", h.auth, h.newBatchForm)
	app.Post("/batches/new", h.csrf, h.submitBatch)
	app.Get("/batches/:id", h.auth, h.batchDetail)
	app.Get("/batches/:id/items/:item", h.auth, h.itemDetail)
	for _, a := range batchActions {
		app.Get("/batches/:id/"+a, h.auth, func(c *fiber.Ctx) error { return h.confirmBatch(c, a) })
		app.Post("/batches/:id/"+a, h.csrf, func(c *fiber.Ctx) error { return h.batchAction(c, a) })
	}
	app.Get("/hosts", h.auth, h.listHosts)
	app.Get("/hosts/new", h.auth, h.newHostForm)
	app.Post("/hosts/new", h.csrf, h.registerHost)
	app.Get("/hosts/:id", h.auth, h.hostDetail)
	app.Get("/hosts/:id/edit", h.auth, h.editHostForm)
	app.Post("/hosts/:id/edit", h.csrf, h.editHost)
	app.Post("/hosts/:id/test", h.csrf, h.testHost)
	app.Get("/hosts/:id/delete", h.auth, h.confirmDeleteHost)
	app.Post("/hosts/:id/delete", h.csrf, h.deleteHost)
	app.Get("/hosts/:id/reconcile", h.auth, h.confirmHostReconcile)
	app.Post("/hosts/:id/reconcile", h.csrf, h.hostReconcile)
	h.mountAccounts(app)
}

// Protect guards other browser-facing routes (asynqmon at /monitoring): it passes with a
// valid session cookie or a valid bearer token. Otherwise a browser GET is redirected to
// the login page and anything else gets 401. A state-changing request that relies on the
// session cookie must come from this origin.
func (h *Handler) Protect(c *fiber.Ctx) error {
	h.init()
	if h.bearerOK(c) {
		return c.Next()
	}
	if _, ok := h.session(c); ok {
		if !safeMethod(c.Method()) && !sameOrigin(c) {
			return c.Status(fiber.StatusForbidden).JSON(fiber.Map{"error": fiber.Map{"code": "forbidden", "message": "cross-origin request refused"}})
		}
		return c.Next()
	}
	if (c.Method() == fiber.MethodGet || c.Method() == fiber.MethodHead) && wantsHTML(c) {
		return c.Redirect("/login?next="+url.QueryEscape(c.OriginalURL()), fiber.StatusSeeOther)
	}
	c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="cn-relay-manager"`)
	return c.Status(fiber.StatusUnauthorized).JSON(fiber.Map{"error": fiber.Map{"code": "unauthorized", "message": "sign in or send a valid bearer token"}})
}

// auth guards the read-only pages: session or bearer, else the login page.
func (h *Handler) auth(c *fiber.Ctx) error {
	if h.bearerOK(c) {
		return c.Next()
	}
	if sid, ok := h.session(c); ok {
		c.Locals("crm.sid", sid)
		return c.Next()
	}
	return c.Redirect("/login?next="+url.QueryEscape(c.OriginalURL()), fiber.StatusSeeOther)
}

// csrf guards every state-changing form: it needs a session and the session's CSRF token
// in the "csrf" form field. A bearer token alone is not enough here: use the REST API.
func (h *Handler) csrf(c *fiber.Ctx) error {
	sid, ok := h.session(c)
	if !ok {
		return h.renderError(c, fiber.StatusUnauthorized, "err.unauthorized", "")
	}
	got := c.FormValue("csrf")
	want := h.csrfToken(sid)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		h.Log.Warn("web: form refused, bad CSRF token", "path", c.Path(), "ip", c.IP())
		return h.renderError(c, fiber.StatusForbidden, "err.csrf", "")
	}
	c.Locals("crm.sid", sid)
	return c.Next()
}

func (h *Handler) bearerOK(c *fiber.Ctx) bool {
	tok, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	return ok && h.tokenOK(strings.TrimSpace(tok))
}

func (h *Handler) tokenOK(tok string) bool {
	return h.Token != "" && tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(h.Token)) == 1
}

// Session cookie: "v1.<sid>.<expiry unix>.<mac>", mac = HMAC(key, "v1|sid|expiry").
func (h *Handler) newSession() (value, sid string, exp time.Time) {
	var b [18]byte
	_, _ = rand.Read(b[:])
	sid = base64.RawURLEncoding.EncodeToString(b[:])
	exp = h.now().Add(SessionTTL)
	payload := "v1." + sid + "." + strconv.FormatInt(exp.Unix(), 10)
	return payload + "." + h.mac(payload), sid, exp
}

func (h *Handler) mac(s string) string {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(s))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// session validates the session cookie and returns its id.
func (h *Handler) session(c *fiber.Ctx) (string, bool) {
	h.init()
	if h.Token == "" {
		return "", false
	}
	v := c.Cookies(SessionCookie)
	i := strings.LastIndexByte(v, '.')
	if i < 0 {
		return "", false
	}
	payload, sig := v[:i], v[i+1:]
	if !hmac.Equal([]byte(sig), []byte(h.mac(payload))) {
		return "", false
	}
	parts := strings.Split(payload, ".")
	if len(parts) != 3 || parts[0] != "v1" {
		return "", false
	}
	exp, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || h.now().Unix() >= exp {
		return "", false
	}
	sid := strings.Clone(parts[1])
	h.mu.Lock()
	_, gone := h.revoked[sid]
	h.mu.Unlock()
	if gone {
		return "", false
	}
	return sid, true
}

// csrfToken is the per-session CSRF token.
func (h *Handler) csrfToken(sid string) string { return h.mac("csrf|" + sid) }

func (h *Handler) setSessionCookie(c *fiber.Ctx, value string, exp time.Time) {
	c.Cookie(&fiber.Cookie{
		Name: SessionCookie, Value: value, Path: "/", Expires: exp, MaxAge: int(time.Until(exp).Seconds()),
		HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode, Secure: h.SecureCookies,
	})
}

func (h *Handler) clearSessionCookie(c *fiber.Ctx) {
	c.Cookie(&fiber.Cookie{
		Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, Expires: time.Unix(1, 0),
		HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode, Secure: h.SecureCookies,
	})
}

// throttled reports whether ip has too many recent failed logins.
func (h *Handler) throttled(ip string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.fails[ip]
	return f != nil && h.now().Sub(f.start) < loginWindow && f.n >= loginMaxFails
}

func (h *Handler) recordFail(ip string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	f := h.fails[ip]
	if f == nil || now.Sub(f.start) >= loginWindow {
		if len(h.fails) > 10000 { // bound memory under a spray of addresses
			h.fails = map[string]*failWindow{}
		}
		f = &failWindow{start: now}
		h.fails[ip] = f
	}
	f.n++
}

func (h *Handler) revoke(sid string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	for k, exp := range h.revoked {
		if now.After(exp) {
			delete(h.revoked, k)
		}
	}
	h.revoked[sid] = now.Add(SessionTTL)
}

func (h *Handler) loginForm(c *fiber.Ctx) error {
	h.init()
	next := safeNext(c.Query("next"))
	if _, ok := h.session(c); ok {
		return c.Redirect(next, fiber.StatusSeeOther)
	}
	return h.render(c, fiber.StatusOK, "login", "login.title", loginData{Next: next})
}

type loginData struct {
	Next  string
	Error string
}

func (h *Handler) login(c *fiber.Ctx) error {
	h.init()
	next := safeNext(c.FormValue("next"))
	ip := c.IP()
	if h.throttled(ip) {
		return h.render(c, fiber.StatusTooManyRequests, "login", "login.title", loginData{Next: next, Error: "login.throttled"})
	}
	if !h.tokenOK(c.FormValue("token")) {
		h.recordFail(ip)
		h.Log.Warn("web: failed login", "ip", ip)
		return h.render(c, fiber.StatusUnauthorized, "login", "login.title", loginData{Next: next, Error: "login.failed"})
	}
	value, _, exp := h.newSession()
	h.setSessionCookie(c, value, exp)
	h.Log.Info("web: operator signed in", "ip", ip)
	return c.Redirect(next, fiber.StatusSeeOther)
}

func (h *Handler) logout(c *fiber.Ctx) error {
	if sid, ok := c.Locals("crm.sid").(string); ok {
		h.revoke(sid)
	}
	h.clearSessionCookie(c)
	return c.Redirect("/login", fiber.StatusSeeOther)
}

// safeNext keeps post-login redirects on this site.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/batches"
	}
	if strings.HasPrefix(next, "/login") || strings.HasPrefix(next, "/logout") {
		return "/batches"
	}
	return strings.Clone(next)
}

func safeMethod(m string) bool {
	return m == fiber.MethodGet || m == fiber.MethodHead || m == fiber.MethodOptions
}

func wantsHTML(c *fiber.Ctx) bool {
	return strings.Contains(c.Get(fiber.HeaderAccept), "text/html") || c.Get("Sec-Fetch-Mode") == "navigate"
}

// sameOrigin rejects cookie-authenticated writes that a browser marked cross-site.
func sameOrigin(c *fiber.Ctx) bool {
	if s := c.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return false
	}
	if o := c.Get(fiber.HeaderOrigin); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || u.Host != string(c.Request().Host()) {
			return false
		}
	} else if o == "null" {
		return false
	}
	return true
}
