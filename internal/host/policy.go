package host

import (
	"net"
	"net/url"
	"strings"
)

// OutboundPolicyAdvice tells an operator which host setting keeps the host from calling
// baseURL, and how to change it. sub2api checks account base URLs against its outbound URL
// policy, security.url_allowlist: an allowlist of upstream hosts (upstream_hosts), whether
// private and loopback addresses are allowed (allow_private_hosts) and whether plain http is
// (allow_insecure_http); environment SECURITY_URL_ALLOWLIST_*. With an empty or unparsable
// baseURL every setting is named.
func OutboundPolicyAdvice(baseURL string) string {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil || u.Hostname() == "" {
		return "the host's outbound URL policy refuses the upstream base URL; a host administrator must allow it: " +
			"add the upstream host to the upstream host allowlist (security.url_allowlist.upstream_hosts, env SECURITY_URL_ALLOWLIST_UPSTREAM_HOSTS), " +
			"and for private or loopback addresses allow private hosts (security.url_allowlist.allow_private_hosts, SECURITY_URL_ALLOWLIST_ALLOW_PRIVATE_HOSTS=true), " +
			"and for plain http allow insecure http (security.url_allowlist.allow_insecure_http, SECURITY_URL_ALLOWLIST_ALLOW_INSECURE_HTTP=true)"
	}
	name := u.Hostname()
	steps := []string{"add " + name + " to the upstream host allowlist (security.url_allowlist.upstream_hosts, env SECURITY_URL_ALLOWLIST_UPSTREAM_HOSTS)"}
	if privateHost(name) {
		steps = append(steps, "allow private hosts, since "+name+" is a private or loopback address (security.url_allowlist.allow_private_hosts, SECURITY_URL_ALLOWLIST_ALLOW_PRIVATE_HOSTS=true)")
	}
	if strings.EqualFold(u.Scheme, "http") {
		steps = append(steps, "allow insecure http for this plain-http URL, or use its https address (security.url_allowlist.allow_insecure_http, SECURITY_URL_ALLOWLIST_ALLOW_INSECURE_HTTP=true)")
	}
	return "the host's outbound URL policy refuses " + u.Scheme + "://" + u.Host + "; a host administrator must " + strings.Join(steps, ", and ")
}

// privateHost reports whether name is a loopback, private or link-local address (or
// localhost). Names are not resolved: the host decides on what it resolves, this is advice.
func privateHost(name string) bool {
	if strings.EqualFold(name, "localhost") || strings.HasSuffix(strings.ToLower(name), ".localhost") {
		return true
	}
	ip := net.ParseIP(name)
	return ip != nil && (ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified())
}
