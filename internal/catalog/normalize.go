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

// Protocols of a pasted base URL.
const (
	ProtocolOpenAI    = "openai"
	ProtocolAnthropic = "anthropic"
)

// Normalized is a cleaned-up base URL: the OpenAI-compatible base the product stores, probes
// and gives the host, and the Anthropic-compatible base of the same region and plan.
type Normalized struct {
	// BaseURL is the OpenAI-compatible base, scheme://host[:port]/path without a trailing
	// slash. A pasted Anthropic base is mapped to the OpenAI base of the same surface.
	BaseURL string
	// AnthropicBase is the Anthropic-compatible base of the same surface (the pasted one
	// when an Anthropic base was pasted); "" when the provider documents none or the host
	// is unknown.
	AnthropicBase string
	Host          string // lower-case hostname, without port
	Stripped      string // the pasted endpoint suffix that was removed, e.g. "/chat/completions"
	// Protocol is the protocol of the pasted URL: "anthropic" when it was an
	// Anthropic-compatible base or the Messages endpoint, else "openai".
	Protocol string
	// ProviderID is the provider the host belongs to, "" for unknown hosts.
	ProviderID string
	// Surface is the catalog surface (region and plan) the URL names; "" for unknown hosts
	// and for paths the catalog does not document.
	Surface string
	Region  string // region of the surface, "" when not known
	// PlanName is the surface's plan ("coding", "token", "agent", "step_plan"); "" is
	// pay-as-you-go or not known.
	PlanName string
	// Plan is true when the URL names a subscription surface (coding/token/agent plan),
	// whose keys do not work on the pay-as-you-go endpoints and vice versa.
	Plan bool
	// Notes say what was changed beyond trimming, for the operator. They never quote the
	// query string, fragment or credentials of the input.
	Notes []string
}

// Errors returned by NormalizeURL; they never contain the URL itself, so a pasted secret
// (user:pass@ or ?key=...) cannot leak through them. ErrLegacyHost and ErrUnknownSurface
// are wrapped with a reason built from catalog data only.
var (
	ErrEmptyURL       = errors.New("base URL is empty")
	ErrBadScheme      = errors.New("base URL scheme must be http or https")
	ErrNoHost         = errors.New("base URL has no host")
	ErrCredentialsURL = errors.New("base URL must not contain credentials (user:password@); put the key in the API key field")
	ErrUnparsableURL  = errors.New("base URL cannot be parsed")
	ErrLegacyHost     = errors.New("base URL points at a retired API")
	// ErrAnthropicOnly: an Anthropic-compatible base of a host the catalog does not know
	// says nothing about where that host serves the OpenAI-compatible API.
	ErrAnthropicOnly = errors.New("base URL is an Anthropic-compatible (Messages API) address of a host the catalogue does not know, " +
		"so its OpenAI-compatible base cannot be derived; paste the base that serves /chat/completions")
	// ErrUnknownSurface: the host is known but the path does not say which of its
	// documented bases is meant.
	ErrUnknownSurface = errors.New("base URL is not a documented base of this provider")
)

// openAISuffixes are OpenAI operations a user may paste together with the base, longest
// first so that "/v1/chat/completions" loses "/chat/completions" and keeps "/v1".
var openAISuffixes = []string{
	"/text/chatcompletion_v2", // MiniMax legacy native endpoint
	"/chat/completions",
	"/completions",
	"/responses",
	"/embeddings",
	"/models",
}

// anthropicSuffixes are the Anthropic Messages endpoint as pasted: the SDK appends
// "/v1/messages" to the Anthropic base.
var anthropicSuffixes = []string{"/v1/messages", "/messages"}

// Fixed notes (they never quote the input).
const (
	noteQuery      = "dropped the query string"
	noteFragment   = "dropped the fragment"
	noteHTTPS      = "switched to https: the provider serves its API over https only"
	noteFixedPath  = "replaced a wrong-but-common path with the documented one"
	noteMapped     = "mapped the pasted Anthropic-compatible base to the OpenAI-compatible base of the same region and plan"
	noteKeptAnthro = "the catalogue documents no Anthropic path for this provider; the pasted one is kept as given"
)

// NormalizeURL cleans a pasted base URL and maps it onto the provider's documented bases.
// In order: trim spaces and quotes; add https:// when no scheme is given (other schemes
// are refused); refuse credentials; drop a query string and a fragment; lower-case the
// host; collapse duplicate slashes and drop trailing ones; strip pasted operations
// (/chat/completions, /v1/messages, ...). For a known host the path then decides the
// surface: an empty path means the host's default surface, a documented OpenAI path, an
// Anthropic path (mapped to the OpenAI base of the same region and plan, the Anthropic
// base kept beside it) or a known wrong-but-common path each name one surface; any other
// path is refused with the host's documented bases, except an Anthropic path on a host
// whose only surface documents none (it is kept beside that surface's OpenAI base). Unknown
// hosts keep the user's path (adding /v1 blindly breaks relays that do not use it), and an
// Anthropic base of an unknown host is refused: its OpenAI base cannot be derived.
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
	n := Normalized{Protocol: ProtocolOpenAI}
	if u.RawQuery != "" || u.ForceQuery {
		n.Notes = append(n.Notes, noteQuery)
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		n.Notes = append(n.Notes, noteFragment)
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return Normalized{}, ErrNoHost
	}
	if !validHost(host) {
		return Normalized{}, ErrUnparsableURL
	}
	n.Host = host
	hostPort := strings.ToLower(u.Host)

	// The escaped form keeps %2F, %00 and friends encoded, so the result still parses.
	p := cleanPath(u.EscapedPath())
	prov := c.providerForHost(host)
	if prov != nil {
		// Documented paths are lower-case; a shouted paste still names them.
		p = strings.ToLower(p)
	}
	p = n.stripOperation(p)
	if prov == nil {
		if n.Protocol == ProtocolAnthropic || hasAnthropicSegment(p) {
			return Normalized{}, ErrAnthropicOnly
		}
		n.Plan = isPlanPath(host, p)
		n.BaseURL = scheme + "://" + hostPort + p
		return n, nil
	}
	if reason, ok := prov.LegacyHosts[host]; ok {
		return Normalized{}, fmt.Errorf("%w: %s", ErrLegacyHost, reason)
	}
	n.ProviderID = prov.ID
	if scheme != "https" {
		n.Notes = append(n.Notes, noteHTTPS)
	}
	root := "https://" + knownHostPort(u)
	if err := n.placeOnSurface(prov, root, p); err != nil {
		return Normalized{}, err
	}
	return n, nil
}

// WithoutQuery returns the pasted base URL trimmed and cut before its query string or
// fragment. NormalizeURL drops both; this is the form to keep of what the operator pasted,
// since a query may carry a secret (?key=...).
func WithoutQuery(raw string) string {
	s := strings.TrimSpace(raw)
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	return s
}

// stripOperation removes pasted operation suffixes (repeatedly: "…/v1/models/models" was
// pasted twice) and records the protocol they imply. An Anthropic base may also carry the
// "/v1" the SDK appends ("…/anthropic/v1").
func (n *Normalized) stripOperation(p string) string {
	var stripped []string
	for found := true; found; {
		found = false
		for _, s := range anthropicSuffixes {
			if strings.HasSuffix(p, s) {
				p, found, n.Protocol = strings.TrimSuffix(p, s), true, ProtocolAnthropic
				stripped = append([]string{s}, stripped...)
				break
			}
		}
		if found {
			continue
		}
		for _, s := range openAISuffixes {
			if strings.HasSuffix(p, s) {
				p, found = strings.TrimSuffix(p, s), true
				stripped = append([]string{s}, stripped...)
				break
			}
		}
	}
	if hasAnthropicSegment(p) {
		n.Protocol = ProtocolAnthropic
		if q, ok := strings.CutSuffix(p, "/v1"); ok {
			p = q
			stripped = append([]string{"/v1"}, stripped...)
		}
	}
	n.Stripped = strings.Join(stripped, "")
	return p
}

// placeOnSurface decides which surface of a known provider the path names and fills in
// both bases. root is "https://host[:port]".
func (n *Normalized) placeOnSurface(prov *Provider, root, p string) error {
	cands := prov.surfacesFor(n.Host)
	if len(cands) == 0 {
		return ErrUnparsableURL // a host pattern without surface: the catalog is broken
	}
	set := func(s *Surface, openAIPath string) {
		n.Surface, n.Region, n.PlanName, n.Plan = s.ID, s.Region, s.Plan, s.Plan != ""
		n.BaseURL = root + openAIPath
		if s.HasAnthropic() {
			n.AnthropicBase = root + s.anthropicPath()
		}
	}
	// An empty path is the host's default surface (for a pasted Messages endpoint at the
	// root, the surface whose Anthropic base is the root).
	if p == "" {
		s := cands[0]
		if n.Protocol == ProtocolAnthropic {
			for _, c := range cands {
				if c.Anthropic == "/" {
					s = c
					break
				}
			}
		}
		set(s, s.OpenAI)
		return nil
	}
	for _, s := range cands {
		if p == s.OpenAI || contains(s.OpenAIAlso, p) {
			n.Protocol = ProtocolOpenAI
			set(s, p)
			return nil
		}
	}
	anthropicAt := func(q string) *Surface {
		for _, s := range cands {
			if s.HasAnthropic() && s.Anthropic != "/" && q == s.anthropicPath() {
				return s
			}
		}
		return nil
	}
	s := anthropicAt(p)
	if s == nil {
		if q, ok := strings.CutSuffix(p, "/v1"); ok {
			if s = anthropicAt(q); s != nil {
				n.Stripped = "/v1" + n.Stripped
			}
		}
	}
	if s != nil {
		n.Protocol = ProtocolAnthropic
		set(s, s.OpenAI)
		n.Notes = append(n.Notes, noteMapped)
		for _, o := range cands {
			if o != s && o.OpenAI != s.OpenAI && o.Anthropic == s.Anthropic {
				n.Notes = append(n.Notes, fmt.Sprintf("this Anthropic base also serves the %s surface; for a %s key paste %s instead",
					o.ID, planWords(o.Plan), root+o.OpenAI))
			}
		}
		return nil
	}
	for _, s := range cands {
		if contains(s.Fixes, p) {
			n.Protocol = ProtocolOpenAI
			set(s, s.OpenAI)
			n.Notes = append(n.Notes, noteFixedPath)
			return nil
		}
	}
	if n.Protocol == ProtocolAnthropic || hasAnthropicSegment(p) {
		if len(cands) == 1 && !cands[0].HasAnthropic() {
			n.Protocol = ProtocolAnthropic
			set(cands[0], cands[0].OpenAI)
			n.AnthropicBase = root + p
			n.Notes = append(n.Notes, noteKeptAnthro)
			return nil
		}
	}
	// Any other path on a known host is a typo, a native endpoint or a base this provider
	// does not document: keeping it would store a base that fails later, far from here.
	return fmt.Errorf("%w: %s", ErrUnknownSurface, documentedBases(prov, cands, root))
}

// documentedBases lists a host's documented bases for a refusal the operator can act on.
func documentedBases(prov *Provider, cands []*Surface, root string) string {
	var parts []string
	for _, s := range cands {
		part := fmt.Sprintf("%s: OpenAI %s", planWords(s.Plan), root+s.OpenAI)
		if s.HasAnthropic() {
			part += ", Anthropic " + root + s.anthropicPath()
		}
		parts = append(parts, part)
	}
	return fmt.Sprintf("the path does not say which base of %s is meant; the documented ones on this host are: %s", prov.Name, strings.Join(parts, "; "))
}

func planWords(plan string) string {
	if plan == "" {
		return "pay-as-you-go"
	}
	return plan + " plan"
}

// knownHostPort is the host[:port] for a known provider, which is always reached over
// https: the default ports (80 from an http:// paste, 443) are dropped.
func knownHostPort(u *url.URL) string {
	h := strings.ToLower(u.Hostname())
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	if p := u.Port(); p != "" && p != "443" && p != "80" {
		return h + ":" + p
	}
	return h
}

// hasAnthropicSegment reports a path segment "anthropic" ("/anthropic", "/apps/anthropic",
// "/api/anthropic", "/anthropic/coding"), the mark of an Anthropic-compatible base.
func hasAnthropicSegment(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg == "anthropic" {
			return true
		}
	}
	return false
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

// isPlanPath flags subscription surfaces of hosts or paths the catalog does not document:
// the path contains /coding, /step_plan, /plan/ or /tokenplan, or the host starts with
// token-plan., token-plan-, coding. or coding-intl.
func isPlanPath(host, p string) bool {
	for _, m := range []string{"/coding", "/step_plan", "/plan/", "/tokenplan"} {
		if strings.Contains(p+"/", m) {
			return true
		}
	}
	return strings.HasPrefix(host, "token-plan.") || strings.HasPrefix(host, "token-plan-") ||
		strings.HasPrefix(host, "coding.") || strings.HasPrefix(host, "coding-intl.")
}

// providerForHost returns the provider one of whose surfaces (or retired hosts) matches
// host, or nil.
func (c *Catalog) providerForHost(host string) *Provider {
	for i := range c.providers {
		p := &c.providers[i]
		for _, h := range p.Hosts {
			if hostMatch(h, host) {
				return p
			}
		}
		if _, ok := p.LegacyHosts[host]; ok {
			return p
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
