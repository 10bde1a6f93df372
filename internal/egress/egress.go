// Package egress decides which network addresses the control plane may call on behalf of
// a pasted upstream URL, so that a submitted base URL cannot turn it into an SSRF probe of
// cloud metadata services or the operator's private network. The check runs on the
// address actually dialled, after DNS resolution, so DNS rebinding cannot bypass it.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// ErrDenied is wrapped by every refusal.
var ErrDenied = errors.New("egress denied")

// Policy says which destinations are allowed. The zero value allows only public
// addresses.
type Policy struct {
	// AllowPrivate allows RFC 1918 / ULA / CGNAT and loopback destinations (relays on the
	// operator's network, the simulators in tests and the demo). Link-local and metadata
	// addresses are denied regardless.
	AllowPrivate bool
}

var (
	alwaysDenied = mustPrefixes(
		"0.0.0.0/8",          // "this network"
		"169.254.0.0/16",     // link-local, incl. 169.254.169.254 (AWS, GCP, Azure, Tencent metadata)
		"100.100.100.200/32", // Alibaba Cloud metadata
		"192.0.0.0/24",       // IETF protocol assignments (incl. Oracle's 192.0.0.192 metadata)
		"224.0.0.0/4",        // multicast
		"240.0.0.0/4",        // reserved, broadcast
		"::/128", "fe80::/10", "ff00::/8",
		"fd00:ec2::254/128", // AWS IPv6 metadata
	)
	private = mustPrefixes(
		"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "198.18.0.0/15",
		"127.0.0.0/8", "::1/128", "fc00::/7",
	)
)

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func in(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// CheckAddr refuses a denied destination address.
func (p Policy) CheckAddr(a netip.Addr) error {
	a = a.Unmap()
	switch {
	case !a.IsValid():
		return fmt.Errorf("%w: invalid address", ErrDenied)
	case in(alwaysDenied, a):
		return fmt.Errorf("%w: %s is a link-local, metadata or reserved address", ErrDenied, a)
	case in(private, a) && !p.AllowPrivate:
		return fmt.Errorf("%w: %s is a private or loopback address (set CRM_ALLOW_PRIVATE_UPSTREAMS=true to allow relays on your network)", ErrDenied, a)
	}
	return nil
}

// CheckURL refuses a URL whose host is a denied IP literal. Host names are checked when
// they are dialled (they may resolve differently later).
func (p Policy) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrDenied, err)
	}
	h := u.Hostname()
	if h == "localhost" || len(h) > len(".localhost") && h[len(h)-len(".localhost"):] == ".localhost" {
		if !p.AllowPrivate {
			return fmt.Errorf("%w: %s is a loopback name", ErrDenied, h)
		}
		return nil
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return p.CheckAddr(a)
	}
	return nil
}

// control runs on every connection attempt with the resolved address.
func (p Policy) control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrDenied, err)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrDenied, err)
	}
	return p.CheckAddr(a)
}

// Transport returns an HTTP transport that refuses denied destinations at connect time.
// Proxies from the environment are not used: a proxy would hide the real destination.
func (p Policy) Transport() *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: p.control}
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          200,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// Client returns an HTTP client using Transport that does not follow redirects to other
// hosts blindly: every redirect target is dialled through the same guard.
func (p Policy) Client(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: p.Transport(),
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return fmt.Errorf("%w: too many redirects", ErrDenied)
			}
			return p.CheckURL(req.URL.String())
		}}
}
