package catalog

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"strings"
	"unicode"
)

// Normalized is a cleaned-up base URL.
type Normalized struct {
	BaseURL  string // scheme://host[:port]/path without trailing slash
	Host     string // lower-case hostname, without port
	Stripped string // the pasted endpoint suffix that was removed, e.g. "/chat/completions"
	// Protocol is "anthropic" when the path is an Anthropic-compatible base, else "openai".
	Protocol string
	// ProviderID is the provider the host belongs to, "" for unknown hosts.
	ProviderID string
	// Plan is true when the path names a subscription surface (coding/token/agent plan),
	// whose keys do not work on the pay-as-you-go endpoints and vice versa.
	Plan bool
}

// Errors returned by NormalizeURL; they never contain the URL itself, so a pasted secret
// (user:pass@ or ?key=...) cannot leak through them.
var (
	ErrEmptyURL       = errors.New("base URL is empty")
	ErrBadScheme      = errors.New("base URL scheme must be http or https")
	ErrNoHost         = errors.New("base URL has no host")
	ErrCredentialsURL = errors.New("base URL must not contain credentials (user:password@); put the key in the API key field")
	ErrQueryInURL     = errors.New("base URL must not contain a query string")
	ErrFragmentInURL  = errors.New("base URL must not contain a fragment (#...)")
	ErrUnparsableURL  = errors.New("base URL cannot be parsed")
	ErrLegacyHost     = errors.New("base URL points at a retired API")
)

// Suffixes a user may paste together with the base, longest first so that
// "/v1/chat/completions" loses "/chat/completions" and keeps "/v1".
var openAISuffixes = []string{
	"/text/chatcompletion_v2", // MiniMax legacy native endpoint
	"/chat/completions",
	"/completions",
	"/responses",
	"/embeddings",
	"/models",
	"/messages",
}

// NormalizeURL cleans a user-supplied base URL following providers.md §12.4: trims spaces
// and quotes, adds https:// when no scheme is given, rejects other schemes, credentials,
// queries and fragments, lower-cases the host, collapses slashes, strips pasted endpoint
// suffixes, fixes known wrong paths and, for a known host with an empty path, appends the
// provider's default path. Unknown hosts keep the user's path: blindly adding /v1 breaks
// relays that do not use it.
func (c *Catalog) NormalizeURL(raw string) (Normalized, error) {
	s := strings.TrimSpace(raw)
	s = strings.Trim(s, "\"'` ")
	s = strings.TrimSpace(s)
	if s == "" {
		return Normalized{}, ErrEmptyURL
	}
	if !strings.Contains(s, "://") {
		if i := strings.Index(s, ":"); i > 0 && !strings.ContainsAny(s[:i], "./@") && !isPort(s[i+1:]) {
			// "ftp:host" or "mailto:x" style: a scheme without slashes.
			return Normalized{}, ErrBadScheme
		}
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Error quotes the URL; return a fixed message instead.
		return Normalized{}, ErrUnparsableURL
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return Normalized{}, ErrBadScheme
	}
	if u.User != nil {
		return Normalized{}, ErrCredentialsURL
	}
	if u.RawQuery != "" || u.ForceQuery {
		return Normalized{}, ErrQueryInURL
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return Normalized{}, ErrFragmentInURL
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return Normalized{}, ErrNoHost
	}
	if !validHost(host) {
		return Normalized{}, ErrUnparsableURL
	}
	hostPort := strings.ToLower(u.Host)

	// The escaped form keeps %2F, %00 and friends encoded, so the result still parses.
	p := cleanPath(u.EscapedPath())
	n := Normalized{Host: host, Protocol: "openai"}
	prov := c.providerForHost(host)
	if prov != nil {
		if reason, ok := prov.LegacyHosts[host]; ok {
			return Normalized{}, fmt.Errorf("%w: %s", ErrLegacyHost, reason)
		}
		if prov.ID != OpenAICompatible {
			n.ProviderID = prov.ID
		}
	}
	if isAnthropicPath(p) {
		n.Protocol = "anthropic"
	}
	p, n.Stripped = stripSuffix(p, n.Protocol == "anthropic")
	if n.Protocol == "anthropic" && strings.HasSuffix(p, "/v1") {
		// Anthropic SDKs append /v1/messages themselves.
		n.Stripped = "/v1" + n.Stripped
		p = strings.TrimSuffix(p, "/v1")
	}
	if prov != nil && n.Protocol == "openai" {
		p = prov.fixPath(host, p)
	}
	n.Plan = isPlanPath(host, p)
	n.BaseURL = scheme + "://" + hostPort + p
	return n, nil
}

// validHost accepts DNS names (including IDN letters) and IP literals; url.Parse lets
// through hosts such as "%" that would not survive a round trip.
func validHost(h string) bool {
	if strings.Contains(h, ":") {
		ip, _, _ := strings.Cut(h, "%") // IPv6 zone
		return net.ParseIP(ip) != nil
	}
	for _, r := range h {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '.' || r == '_') {
			return false
		}
	}
	return true
}

func isPort(s string) bool {
	if s == "" {
		return false
	}
	end := strings.IndexAny(s, "/?#")
	if end < 0 {
		end = len(s)
	}
	if end == 0 {
		return false
	}
	for _, r := range s[:end] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// cleanPath collapses duplicate slashes and drops trailing ones; "" stands for the root.
func cleanPath(p string) string {
	if p == "" || p == "/" {
		return ""
	}
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	p = strings.TrimRight(p, "/")
	if p != "" && !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	// path.Clean would also resolve "..", which a base URL should not contain anyway;
	// use it only when dot segments are present so ordinary paths stay byte-identical.
	if strings.Contains(p, "/.") {
		p = path.Clean(p)
		if p == "/" || p == "." {
			return ""
		}
	}
	return p
}

func stripSuffix(p string, anthropic bool) (string, string) {
	if anthropic && strings.HasSuffix(p, "/v1/messages") {
		return strings.TrimSuffix(p, "/v1/messages"), "/v1/messages"
	}
	for _, s := range openAISuffixes {
		if strings.HasSuffix(p, s) {
			return strings.TrimSuffix(p, s), s
		}
	}
	return p, ""
}

// isAnthropicPath implements §12.4 step 6: "/anthropic" anywhere, or Ark's
// "/api/compatible", "/api/coding", "/api/plan" without a "/v3" segment.
func isAnthropicPath(p string) bool {
	if strings.Contains(p, "/anthropic") {
		return true
	}
	q := p
	for _, s := range []string{"/v1/messages", "/messages", "/v1"} {
		if strings.HasSuffix(q, s) {
			q = strings.TrimSuffix(q, s)
			break
		}
	}
	return q == "/api/compatible" || q == "/api/coding" || q == "/api/plan"
}

// isPlanPath implements §12.4 step 7.
func isPlanPath(host, p string) bool {
	for _, m := range []string{"/coding", "/step_plan", "/plan/", "/tokenplan"} {
		if strings.Contains(p+"/", m) {
			return true
		}
	}
	return strings.HasPrefix(host, "token-plan.") || strings.HasPrefix(host, "token-plan-") ||
		strings.HasPrefix(host, "coding.") || strings.HasPrefix(host, "coding-intl.")
}

// fixPath applies known path corrections and the default path for an empty path.
func (p *Provider) fixPath(host, pth string) string {
	def, override := p.HostPaths[host]
	if !override {
		def = p.DefaultPath
		if fixed, ok := p.PathFixes[pth]; ok {
			return fixed
		}
	}
	if pth == "" {
		return def
	}
	return pth
}

// providerForHost returns the provider whose host patterns match host, or nil.
func (c *Catalog) providerForHost(host string) *Provider {
	for i := range c.providers {
		p := &c.providers[i]
		for _, h := range p.Hosts {
			if hostMatch(h, host) {
				return p
			}
		}
		for h := range p.LegacyHosts {
			if h == host {
				return p
			}
		}
	}
	return nil
}

// hostMatch matches a lower-case hostname against a pattern where "*" stands for any
// run of characters (including dots: "*.maas.aliyuncs.com" covers "{ws}.{region}").
func hostMatch(pattern, host string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == host
	}
	ok, err := path.Match(pattern, host)
	return err == nil && ok
}
