package web

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
)

//go:embed templates/*.html
var templateFS embed.FS

var (
	tmplOnce sync.Once
	pages    map[string]*template.Template
)

var funcs = template.FuncMap{
	"ts": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return "–"
			}
			return v.UTC().Format("2006-01-02 15:04:05")
		case *time.Time:
			if v == nil || v.IsZero() {
				return "–"
			}
			return v.UTC().Format("2006-01-02 15:04:05")
		}
		return ""
	},
	"pretty": func(v any) string {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	},
	"join": strings.Join,
	"floats": func(fs []float64) string {
		parts := make([]string, len(fs))
		for i, f := range fs {
			parts[i] = strconv.FormatFloat(f, 'g', -1, 64)
		}
		return strings.Join(parts, ", ")
	},
	"add":  func(a, b int) int { return a + b },
	"list": func(s ...string) []string { return s },
	"deref": func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	},
}

func parseTemplates() {
	tmplOnce.Do(func() {
		pages = map[string]*template.Template{}
		names, err := templateFS.ReadDir("templates")
		if err != nil {
			panic(err)
		}
		for _, n := range names {
			name := strings.TrimSuffix(n.Name(), ".html")
			if name == "layout" {
				continue
			}
			pages[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+n.Name()))
		}
	})
}

// view is what every template receives as its root.
type view struct {
	Lang    string
	Title   string
	CSRF    string
	Nonce   string
	Refresh int
	Authed  bool
	Flash   string
	Data    any

	path  string
	query url.Values
}

// T translates key; an unknown key renders as its last dotted segment (e.g. a new status).
func (v *view) T(key string) string { return translate(v.Lang, key) }

// Tf translates key and formats it with args.
func (v *view) Tf(key string, args ...any) string {
	return fmt.Sprintf(translate(v.Lang, key), args...)
}

// Ago renders how long ago t was.
func (v *view) Ago(t any) string {
	var tt time.Time
	switch x := t.(type) {
	case time.Time:
		tt = x
	case *time.Time:
		if x == nil {
			return "–"
		}
		tt = *x
	}
	if tt.IsZero() {
		return "–"
	}
	return v.Tf("time.ago", humanDuration(v.Lang, time.Since(tt)))
}

// Dur renders the duration between a and b (b nil = now).
func (v *view) Dur(a time.Time, b *time.Time) string {
	end := time.Now()
	if b != nil {
		end = *b
	}
	return humanDuration(v.Lang, end.Sub(a))
}

// Ms renders the milliseconds between a and b ("" when either is unknown).
func (v *view) Ms(a, b time.Time) string {
	if a.IsZero() || b.IsZero() {
		return ""
	}
	return v.Tf("unit.ms", b.Sub(a).Milliseconds())
}

// LangURL is the current page in language l.
func (v *view) LangURL(l string) string {
	q := url.Values{}
	for k, vs := range v.query {
		if k != "lang" && k != "done" && k != "n" {
			q[k] = vs
		}
	}
	q.Set("lang", l)
	return v.path + "?" + q.Encode()
}

// PageURL is the current page with page=n.
func (v *view) PageURL(n int) string {
	q := url.Values{}
	for k, vs := range v.query {
		if k != "lang" && k != "done" && k != "n" {
			q[k] = vs
		}
	}
	q.Set("page", strconv.Itoa(n))
	return v.path + "?" + q.Encode()
}

func humanDuration(lang string, d time.Duration) string {
	if d < 0 {
		d = 0
	}
	type unit struct {
		d      time.Duration
		en, zh string
	}
	units := []unit{{24 * time.Hour, "d", "天"}, {time.Hour, "h", "小时"}, {time.Minute, "m", "分钟"}, {time.Second, "s", "秒"}}
	var parts []string
	for _, u := range units {
		if d >= u.d || (u.d == time.Second && len(parts) == 0) {
			n := d / u.d
			d -= n * u.d
			if lang == "zh" {
				parts = append(parts, fmt.Sprintf("%d%s", n, u.zh))
			} else {
				parts = append(parts, fmt.Sprintf("%d%s", n, u.en))
			}
			if len(parts) == 2 {
				break
			}
		}
	}
	if lang == "zh" {
		return strings.Join(parts, "")
	}
	return strings.Join(parts, " ")
}

// lang picks the page language: ?lang= (remembered in a cookie), the cookie, then
// Accept-Language; English when nothing matches.
func (h *Handler) lang(c *fiber.Ctx) string {
	if l := c.Query("lang"); l == "zh" || l == "en" {
		c.Cookie(&fiber.Cookie{Name: LangCookie, Value: l, Path: "/", MaxAge: 365 * 24 * 3600,
			HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode, Secure: h.SecureCookies})
		return l
	}
	if l := c.Cookies(LangCookie); l == "zh" || l == "en" {
		return l
	}
	return fromAcceptLanguage(c.Get(fiber.HeaderAcceptLanguage))
}

func fromAcceptLanguage(h string) string {
	type cand struct {
		lang string
		q    float64
		pos  int
	}
	var cs []cand
	for i, part := range strings.Split(h, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		tag = strings.ToLower(strings.TrimSpace(tag))
		q := 1.0
		if p, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(p, 64); err == nil {
				q = f
			}
		}
		switch {
		case tag == "zh" || strings.HasPrefix(tag, "zh-"):
			cs = append(cs, cand{"zh", q, i})
		case tag == "en" || strings.HasPrefix(tag, "en-"):
			cs = append(cs, cand{"en", q, i})
		}
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].q > cs[j].q })
	if len(cs) > 0 && cs[0].q > 0 {
		return cs[0].lang
	}
	return "en"
}

func nonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// render executes page with data inside the layout and writes it with safe headers.
func (h *Handler) render(c *fiber.Ctx, status int, page, titleKey string, data any) error {
	return h.renderView(c, status, page, &view{Title: titleKey, Data: data})
}

func (h *Handler) renderView(c *fiber.Ctx, status int, page string, v *view) error {
	parseTemplates()
	t, ok := pages[page]
	if !ok {
		return fmt.Errorf("web: no template %q", page)
	}
	v.Lang = h.lang(c)
	v.Nonce = nonce()
	v.path = strings.Clone(c.Path())
	v.query = url.Values{}
	c.Context().QueryArgs().VisitAll(func(k, val []byte) { v.query.Add(string(k), string(val)) })
	if sid, ok := h.session(c); ok {
		v.Authed = true
		v.CSRF = h.csrfToken(sid)
	} else if h.bearerOK(c) {
		v.Authed = true
	}
	if v.Title != "" {
		v.Title = v.T(v.Title)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		h.Log.Error("web: render failed", "page", page, "error", err)
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderReferrerPolicy, "same-origin")
	c.Set(fiber.HeaderContentSecurityPolicy, "default-src 'none'; style-src 'nonce-"+v.Nonce+"'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	c.Set(fiber.HeaderVary, "Cookie, Accept-Language")
	return c.Status(status).Send(buf.Bytes())
}

type errorData struct {
	Key    string
	Detail string
	Back   string
}

func (h *Handler) renderError(c *fiber.Ctx, status int, key, detail string) error {
	return h.render(c, status, "error", "err.title", errorData{Key: key, Detail: detail, Back: "/batches"})
}

// St renders a status badge.
func (v *view) St(s string) template.HTML { return badge("s-"+s, v.T("status."+s)) }

// Out renders an attempt outcome badge.
func (v *view) Out(o string) template.HTML { return badge("o-"+o, v.T("outcome."+o)) }

// Res renders a ledger state badge.
func (v *view) Res(s string) template.HTML { return badge("s-"+s, v.T("res."+s)) }

// Fail renders a failure class with its label.
func (v *view) Fail(class string) template.HTML {
	if class == "" {
		return ""
	}
	return template.HTML(`<span class="b fail" title="` + template.HTMLEscapeString(v.T("failure."+class)) + `">` +
		template.HTMLEscapeString(class) + `</span> <span class="small">` + template.HTMLEscapeString(v.T("failure."+class)) + `</span>`)
}

func badge(class, label string) template.HTML {
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return -1
	}, strings.ToLower(class))
	return template.HTML(`<span class="b ` + clean + `">` + template.HTMLEscapeString(label) + `</span>`)
}

// With returns a copy of the view whose Data is d, for partial templates.
func (v *view) With(d any) *view {
	c := *v
	c.Data = d
	return &c
}
