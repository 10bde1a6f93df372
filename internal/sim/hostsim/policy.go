package hostsim

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// forkInvalidBaseURL is the fork's message for an account base URL its outbound policy
// refuses (400 ACCOUNT_INVALID_BASE_URL).
const forkInvalidBaseURL = "base_url is invalid or not allowed by the current outbound policy"

// policyRefusal returns why the host's outbound policy forbids calling base, in the words
// of sub2api's URL validator ("invalid url scheme: http", "host is not allowed: …"), or ""
// when there is no policy or it allows base. allowHTTP says whether plain http may pass.
// Caller holds s.mu or reads only immutable options.
func (s *Server) policyRefusal(base string, allowHTTP bool) string {
	p := s.opts.OutboundPolicy
	if p == nil {
		return ""
	}
	u, err := url.Parse(strings.TrimSpace(base))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "invalid url: " + strings.TrimSpace(base)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && (!allowHTTP || scheme != "http") {
		return "invalid url scheme: " + u.Scheme
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return "invalid host"
	}
	if !p.AllowPrivateHosts && blockedHost(host) {
		return "host is not allowed: " + host
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return "invalid port: " + port
		}
	}
	if len(p.UpstreamHosts) == 0 {
		return "allowlist is not configured"
	}
	for _, e := range p.UpstreamHosts {
		e = strings.ToLower(strings.TrimSpace(e))
		if h, _, err := net.SplitHostPort(e); err == nil {
			e = h
		}
		if suffix, wild := strings.CutPrefix(e, "*."); wild && (host == suffix || strings.HasSuffix(host, "."+suffix)) || host == e {
			return ""
		}
	}
	return "host is not allowed: " + host
}

// forwardRefusal is the policy check of 0.1.129/0.1.179 when they test or forward: https
// only, whatever AllowInsecureHTTP says.
func (s *Server) forwardRefusal(base string) string {
	if s.prof.fork {
		return "" // the fork refused the account when it was saved
	}
	return s.policyRefusal(base, false)
}

// accountRefusal is the fork's check when an account is saved; "" on the other versions.
func (s *Server) accountRefusal(base string) string {
	if !s.prof.fork || s.opts.OutboundPolicy == nil {
		return ""
	}
	return s.policyRefusal(base, s.opts.OutboundPolicy.AllowInsecureHTTP)
}

func blockedHost(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified())
}

// testRefusalError is the account-test error event text of a refused base URL.
func testRefusalError(why string) string { return fmt.Sprintf("Invalid base URL: %s", why) }
