// Package redisconn is the one way a process connects to Redis. Every Redis user of the
// product (asynq's client, server, scheduler and inspector, asynqmon, the concurrency
// semaphores) gets its client from a Conn, so a password, an ACL user, TLS or Sentinel
// configured once in CRM_REDIS_URL applies to all of them, and a failed connection is
// explained the same way everywhere, without the secret.
//
// Accepted forms:
//
//	redis://[user:password@]host:port[/db]
//	rediss://[user:password@]host:port[/db]            TLS; CRM_REDIS_TLS_CA for a private CA
//	redis-sentinel://[[user]:password@]host1:port,host2:port[/db]?master=NAME
//
// The legacy CRM_REDIS_ADDR/CRM_REDIS_DB pair becomes a plain redis:// connection.
package redisconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Names of the settings a Conn comes from; messages name them.
const (
	EnvURL   = "CRM_REDIS_URL"
	EnvTLSCA = "CRM_REDIS_TLS_CA"
	EnvAddr  = "CRM_REDIS_ADDR"
)

// dialTimeout bounds one connection attempt and dialAttempts the attempts per new
// connection (go-redis tries 5 times by default, and through Sentinel that multiplies
// with the sentinel lookups): an unreachable or silent server is reported well within
// the 20 s an operator waits for a verdict, and commands still retry (MaxRetries).
const (
	dialTimeout  = 5 * time.Second
	dialAttempts = 2
)

// Conn describes one Redis deployment. It satisfies asynq.RedisConnOpt; each
// MakeRedisClient call returns a new client with the same settings.
type Conn struct {
	source   string // EnvURL or EnvAddr
	redacted string // the URL with every secret masked
	single   *redis.Options
	failover *redis.FailoverOptions
}

var _ asynq.RedisConnOpt = (*Conn)(nil)

// FromAddr is the legacy form: a plain connection to host:port, database db.
func FromAddr(addr string, db int) *Conn {
	return &Conn{source: EnvAddr, redacted: fmt.Sprintf("redis://%s/%d", addr, db),
		single: &redis.Options{Network: "tcp", Addr: addr, DB: db, DialTimeout: dialTimeout, DialerRetries: dialAttempts}}
}

// Parse reads CRM_REDIS_URL (rawURL) and, for rediss://, the PEM file of a private CA
// (caFile, may be empty). Errors name the variable and never contain the password.
//
// redis:// and rediss:// go through go-redis's redis.ParseURL, which keeps the ACL user
// (asynq.ParseRedisURI drops it). redis-sentinel:// goes through asynq.ParseRedisURI,
// which reads the sentinel list, master name and sentinel password but drops the
// database, the ACL user and the password of the master itself; those are added here.
// Neither reads a CA file.
func Parse(rawURL, caFile string) (*Conn, error) {
	u, err := url.Parse(strings.TrimSpace(rawURL))
	if err != nil {
		// *url.Error repeats the whole URL, password included: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s: not a URL: %v", EnvURL, err)
	}
	c := &Conn{source: EnvURL, redacted: redact(u)}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s (%s)", EnvURL, fmt.Sprintf(format, args...), c.redacted)
	}
	if u.Host == "" {
		return nil, fail("no host")
	}
	if caFile != "" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("%s: set, but %s does not use rediss:// (%s)", EnvTLSCA, EnvURL, c.redacted)
	}
	switch u.Scheme {
	case "redis", "rediss":
		o, err := redis.ParseURL(u.String())
		if err != nil {
			return nil, fail("%v", err)
		}
		if o.DialTimeout == 0 {
			o.DialTimeout = dialTimeout
		}
		if o.DialerRetries == 0 {
			o.DialerRetries = dialAttempts
		}
		if u.Scheme == "rediss" && caFile != "" {
			pool, err := loadCA(caFile)
			if err != nil {
				return nil, err
			}
			o.TLSConfig.RootCAs = pool
		}
		c.single = o
	case "redis-sentinel":
		if strings.Contains(u.Host, ",,") || strings.HasPrefix(u.Host, ",") || strings.HasSuffix(u.Host, ",") {
			return nil, fail("empty sentinel address")
		}
		for _, a := range strings.Split(u.Host, ",") {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return nil, fail("sentinel address %q is not host:port", a)
			}
		}
		q := u.Query()
		for k := range q {
			if k != "master" && k != "sentinel_username" && k != "sentinel_password" {
				return nil, fail("unknown parameter %q (known: master, sentinel_username, sentinel_password)", k)
			}
		}
		if q.Get("master") == "" {
			return nil, fail("redis-sentinel:// needs ?master=NAME")
		}
		opt, err := asynq.ParseRedisURI(u.String())
		if err != nil {
			return nil, fail("%v", err)
		}
		fo, ok := opt.(asynq.RedisFailoverClientOpt)
		if !ok {
			return nil, fail("unexpected sentinel form %T", opt)
		}
		db, err := pathDB(u.Path)
		if err != nil {
			return nil, fail("%v", err)
		}
		password, _ := u.User.Password()
		o := &redis.FailoverOptions{
			MasterName: fo.MasterName, SentinelAddrs: fo.SentinelAddrs,
			// One password for sentinels and data nodes, the usual Sentinel setup (the
			// sentinels hold the master's password anyway); the ACL user is for the data
			// nodes only. Sentinels with credentials of their own take them from the query.
			SentinelPassword: fo.SentinelPassword,
			Username:         u.User.Username(),
			Password:         password,
			DB:               db,
			DialTimeout:      dialTimeout,
			DialerRetries:    dialAttempts,
		}
		if q.Has("sentinel_username") {
			o.SentinelUsername = q.Get("sentinel_username")
		}
		if q.Has("sentinel_password") {
			o.SentinelPassword = q.Get("sentinel_password")
		}
		c.failover = o
	default:
		return nil, fail("unsupported scheme %q (use redis://, rediss:// or redis-sentinel://)", u.Scheme)
	}
	return c, nil
}

func pathDB(p string) (int, error) {
	p = strings.Trim(p, "/")
	if p == "" {
		return 0, nil
	}
	db, err := strconv.Atoi(p)
	if err != nil || db < 0 {
		return 0, fmt.Errorf("database %q is not a number", p)
	}
	return db, nil
}

func loadCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvTLSCA, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: %s holds no PEM certificate", EnvTLSCA, path)
	}
	return pool, nil
}

// redact returns the URL with the password masked, and every query value but the master
// name: a query may hold a sentinel password, or a password misspelt as an unknown
// parameter.
func redact(u *url.URL) string {
	r := *u
	if q := r.Query(); len(q) > 0 {
		for k := range q {
			if k != "master" {
				q.Set(k, "xxxxx")
			}
		}
		r.RawQuery = q.Encode()
	}
	return r.Redacted()
}

// String is the URL with its secrets masked, for logs and messages.
func (c *Conn) String() string { return c.redacted }

// Source names the setting this connection came from (CRM_REDIS_URL or CRM_REDIS_ADDR).
func (c *Conn) Source() string { return c.source }

// Sentinel reports whether the connection goes through Sentinel.
func (c *Conn) Sentinel() bool { return c.failover != nil }

// MakeRedisClient returns a new go-redis client (a redis.UniversalClient); it makes Conn an
// asynq.RedisConnOpt.
func (c *Conn) MakeRedisClient() interface{} { return c.Client() }

// Client returns a new client; the caller closes it.
func (c *Conn) Client() redis.UniversalClient {
	if c.failover != nil {
		o := *c.failover
		o.SentinelAddrs = append([]string(nil), o.SentinelAddrs...)
		if o.TLSConfig != nil {
			o.TLSConfig = o.TLSConfig.Clone()
		}
		return redis.NewFailoverClient(&o)
	}
	o := *c.single
	if o.TLSConfig != nil {
		o.TLSConfig = o.TLSConfig.Clone()
	}
	return redis.NewClient(&o)
}

// ProbeClient returns a client for health checks: it does not retry a failed command, so
// a check reports the first failure, with its cause, well inside a readiness timeout.
func (c *Conn) ProbeClient() redis.UniversalClient {
	if c.failover != nil {
		o := *c.failover
		o.SentinelAddrs = append([]string(nil), o.SentinelAddrs...)
		o.MaxRetries, o.PoolSize = -1, 2
		return redis.NewFailoverClient(&o)
	}
	o := *c.single
	o.MaxRetries, o.PoolSize = -1, 2
	return redis.NewClient(&o)
}

// Check pings Redis through client (made by this Conn) and explains a failure.
func (c *Conn) Check(ctx context.Context, client redis.UniversalClient) error {
	if err := client.Ping(ctx).Err(); err != nil {
		return c.Explain(err)
	}
	return nil
}

// Error is a classified Redis connection failure. Its message names the setting, the
// cause and the masked URL; Public leaves the URL out.
type Error struct {
	Setting string // CRM_REDIS_URL or CRM_REDIS_ADDR
	Cause   string // what went wrong, in the operator's terms, with Redis's own words
	Target  string // the masked URL
	Err     error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s (%s)", e.Setting, e.Cause, e.Target) }

// Unwrap returns the underlying client error.
func (e *Error) Unwrap() error { return e.Err }

// Public is the message for anonymous readers such as /readyz: setting and cause only.
func (e *Error) Public() string { return e.Setting + ": " + e.Cause }

// Explain classifies err, returned by a client of this Conn, into an *Error. A nil err
// stays nil.
func (c *Conn) Explain(err error) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	return &Error{Setting: c.source, Cause: c.cause(err), Target: c.redacted, Err: err}
}

func (c *Conn) cause(err error) string {
	msg := c.scrub(err.Error())
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	var he x509.HostnameError
	var cie x509.CertificateInvalidError
	var rhe tls.RecordHeaderError
	sentinels := strings.Contains(msg, "all sentinels specified in configuration are unreachable")
	switch {
	case errors.As(err, &cve) || errors.As(err, &uae) || errors.As(err, &he) || errors.As(err, &cie) ||
		strings.Contains(msg, "x509:") || strings.Contains(msg, "failed to verify certificate"):
		hint := ""
		if c.source == EnvURL {
			hint = "; set " + EnvTLSCA + " to the PEM file of the CA that signed the server's certificate, and use the host name the certificate names"
		}
		return "TLS verification failed: " + msg + hint
	case errors.As(err, &rhe) || strings.Contains(msg, "tls:"):
		return "TLS handshake failed (is the server listening with TLS on this port?): " + msg
	case sentinels && errors.Is(err, redis.Nil):
		return fmt.Sprintf("the sentinels do not know a master named %q: check ?master=", c.failover.MasterName)
	case strings.Contains(msg, "WRONGPASS") || strings.Contains(msg, "invalid password") || strings.Contains(msg, "invalid username-password"):
		if sentinels {
			return "a sentinel refused the password (use ?sentinel_password= when the sentinels have their own): " + msg
		}
		return "authentication failed: wrong user or password, or the ACL user is disabled: " + msg
	case strings.Contains(msg, "NOAUTH"):
		if c.source == EnvAddr {
			return "the server requires authentication: use " + EnvURL + "=redis://user:password@host:port/db instead: " + msg
		}
		return "the server requires authentication: put user:password@ in the URL: " + msg
	case strings.Contains(msg, "without any password configured"):
		return "the URL gives a password but the server has none configured: " + msg
	case strings.Contains(msg, "NOPERM"):
		return "the ACL user lacks a permission the queue needs (give it ~* &* +@all or at least the commands in the message): " + msg
	case sentinels:
		return fmt.Sprintf("no sentinel reachable at %s: %s", strings.Join(c.failover.SentinelAddrs, ","), msg)
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return "no answer in time (server down, firewalled, or TLS expected where the server speaks plain Redis?): " + msg
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "the server closed the connection (a TLS-only port? then use rediss://): " + msg
	default:
		var op *net.OpError
		if errors.As(err, &op) {
			return "cannot reach the server: " + msg
		}
		return "redis error: " + msg
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// scrub removes the passwords from a client message, in case a server or library ever
// echoes one back.
func (c *Conn) scrub(msg string) string {
	msg = strings.ReplaceAll(msg, "\n", "; ") // errors.Join: one line per message
	for _, s := range c.secrets() {
		if len(s) >= 3 {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	return msg
}

func (c *Conn) secrets() []string {
	if c.failover != nil {
		return []string{c.failover.Password, c.failover.SentinelPassword}
	}
	return []string{c.single.Password}
}
