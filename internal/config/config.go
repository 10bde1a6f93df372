// Package config turns environment variables (prefix CRM_) and command-line flags into one
// validated, typed configuration. Flags override the environment; a bad value stops the
// process at start with a message that names the variable.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/redisconn"
)

// Config is the whole process configuration.
type Config struct {
	ListenAddr  string // CRM_LISTEN_ADDR
	DatabaseURL string // CRM_DATABASE_URL: sqlite file path / "sqlite:PATH" / "file:PATH"
	RedisURL    string // CRM_REDIS_URL: redis://, rediss:// or redis-sentinel:// (secret: holds the password)
	RedisTLSCA  string // CRM_REDIS_TLS_CA: PEM file of a private CA for rediss://
	RedisAddr   string // CRM_REDIS_ADDR: legacy host:port form; both empty = embedded in-process Redis (all-in-one)
	RedisDB     int    // CRM_REDIS_DB: database of the legacy form
	APIToken    string // CRM_API_TOKEN: bearer token for the API
	MasterKey   string // CRM_MASTER_KEY: secrets at rest
	DataDir     string // CRM_DATA_DIR: where the default SQLite file and generated key live

	WorkerConcurrency int           // CRM_WORKER_CONCURRENCY
	WindowDeadline    time.Duration // CRM_WINDOW_DEADLINE: confirmation window length
	WindowSchedule    []time.Duration
	SweepInterval     time.Duration // CRM_SWEEP_INTERVAL: recovery sweep period
	ReconcileCron     string        // CRM_RECONCILE_CRON: periodic reconcile spec, empty = off
	VerifyCron        string        // CRM_VERIFY_CRON: scheduled re-verification of imported accounts, empty = off

	ManagedUserEmail string  // CRM_MANAGED_USER_EMAIL: selector for the managed end user
	TopUpAmount      float64 // CRM_TOPUP_AMOUNT: self_service balance top-up
	ValidityDays     int     // CRM_SUBSCRIPTION_DAYS: subscription validity

	// AllowPrivateUpstreams lets upstream probes reach private and loopback addresses
	// (CRM_ALLOW_PRIVATE_UPSTREAMS); link-local and metadata addresses stay denied.
	AllowPrivateUpstreams bool

	HostTimeout         time.Duration // CRM_HOST_TIMEOUT: per-request timeout of host calls
	MetricsAddr         string        // CRM_METRICS_ADDR: worker-only /metrics listener (empty = none)
	PprofAddr           string        // CRM_PPROF_ADDR: loopback listener for /debug/pprof (empty = none)
	HostConcurrency     int           // CRM_HOST_CONCURRENCY: steps against one host at once, all workers
	UpstreamConcurrency int           // CRM_UPSTREAM_CONCURRENCY: probes of one upstream host at once, all workers
}

// Defaults returns the embedded defaults.
func Defaults() Config {
	return Config{
		ListenAddr:          "127.0.0.1:8080",
		DataDir:             "./data",
		WorkerConcurrency:   10,
		WindowDeadline:      5 * time.Minute,
		WindowSchedule:      []time.Duration{2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, 60 * time.Second},
		SweepInterval:       30 * time.Second,
		ReconcileCron:       "",
		ManagedUserEmail:    "crm-managed@relay-manager.local",
		TopUpAmount:         10,
		ValidityDays:        30,
		HostConcurrency:     16,
		HostTimeout:         30 * time.Second,
		UpstreamConcurrency: 8,
	}
}

// Load reads the environment (through getenv) and then args as flags. The returned
// FlagSet is parsed; its remaining arguments are available through fs.Args().
func Load(name string, args []string, getenv func(string) string) (Config, *flag.FlagSet, error) {
	c := Defaults()
	var errs []error
	env := func(key string, apply func(string) error) {
		if v := strings.TrimSpace(getenv(key)); v != "" {
			if err := apply(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
			}
		}
	}
	str := func(dst *string) func(string) error { return func(v string) error { *dst = v; return nil } }
	env("CRM_LISTEN_ADDR", str(&c.ListenAddr))
	env("CRM_DATABASE_URL", str(&c.DatabaseURL))
	env("CRM_REDIS_URL", str(&c.RedisURL))
	env("CRM_REDIS_TLS_CA", str(&c.RedisTLSCA))
	env("CRM_REDIS_ADDR", str(&c.RedisAddr))
	env("CRM_REDIS_DB", intVar(&c.RedisDB, 0, 15))
	env("CRM_API_TOKEN", str(&c.APIToken))
	env("CRM_MASTER_KEY", str(&c.MasterKey))
	env("CRM_DATA_DIR", str(&c.DataDir))
	env("CRM_WORKER_CONCURRENCY", intVar(&c.WorkerConcurrency, 1, 1000))
	env("CRM_WINDOW_DEADLINE", durVar(&c.WindowDeadline))
	env("CRM_WINDOW_SCHEDULE", scheduleVar(&c.WindowSchedule))
	env("CRM_SWEEP_INTERVAL", durVar(&c.SweepInterval))
	env("CRM_RECONCILE_CRON", str(&c.ReconcileCron))
	env("CRM_VERIFY_CRON", str(&c.VerifyCron))
	env("CRM_MANAGED_USER_EMAIL", str(&c.ManagedUserEmail))
	env("CRM_TOPUP_AMOUNT", floatVar(&c.TopUpAmount))
	env("CRM_SUBSCRIPTION_DAYS", intVar(&c.ValidityDays, 1, 36500))
	env("CRM_ALLOW_PRIVATE_UPSTREAMS", boolVar(&c.AllowPrivateUpstreams))
	env("CRM_HOST_CONCURRENCY", intVar(&c.HostConcurrency, 0, 10000))
	env("CRM_METRICS_ADDR", str(&c.MetricsAddr))
	env("CRM_PPROF_ADDR", str(&c.PprofAddr))
	env("CRM_HOST_TIMEOUT", durVar(&c.HostTimeout))
	env("CRM_UPSTREAM_CONCURRENCY", intVar(&c.UpstreamConcurrency, 0, 10000))

	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&c.ListenAddr, "listen", c.ListenAddr, "HTTP listen address (CRM_LISTEN_ADDR)")
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "database URL or SQLite path (CRM_DATABASE_URL)")
	fs.Var(maskedURL{&c.RedisURL}, "redis-url", "Redis URL: redis://[user:password@]host:port/db, rediss://… or redis-sentinel://[:password@]host1:port,host2:port/db?master=NAME; empty (and no -redis-addr) runs an embedded in-memory Redis (CRM_REDIS_URL)")
	fs.StringVar(&c.RedisTLSCA, "redis-tls-ca", c.RedisTLSCA, "PEM file of the CA that signed the Redis server's certificate, for rediss:// (CRM_REDIS_TLS_CA)")
	fs.StringVar(&c.RedisAddr, "redis-addr", c.RedisAddr, "Redis host:port, the legacy form of -redis-url without password or TLS (CRM_REDIS_ADDR)")
	fs.IntVar(&c.RedisDB, "redis-db", c.RedisDB, "Redis database index (CRM_REDIS_DB)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for the default SQLite file and generated keys (CRM_DATA_DIR)")
	fs.IntVar(&c.WorkerConcurrency, "concurrency", c.WorkerConcurrency, "worker concurrency (CRM_WORKER_CONCURRENCY)")
	fs.DurationVar(&c.WindowDeadline, "window", c.WindowDeadline, "confirmation window length (CRM_WINDOW_DEADLINE)")
	if err := fs.Parse(args); err != nil {
		return c, fs, err
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = strings.TrimRight(c.DataDir, "/") + "/cn-relay-manager.db"
	}
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	return c, fs, errors.Join(errs...)
}

// Validate checks cross-field rules and values set by flags.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		errs = append(errs, fmt.Errorf("CRM_LISTEN_ADDR: %q is not host:port", c.ListenAddr))
	}
	if c.RedisAddr != "" {
		if _, _, err := net.SplitHostPort(c.RedisAddr); err != nil {
			errs = append(errs, fmt.Errorf("CRM_REDIS_ADDR: %q is not host:port", c.RedisAddr))
		}
	}
	switch {
	case c.RedisURL != "" && (c.RedisAddr != "" || c.RedisDB != 0):
		errs = append(errs, errors.New("CRM_REDIS_URL: set together with CRM_REDIS_ADDR/CRM_REDIS_DB; use one form (the URL carries the database as /db)"))
	case c.RedisURL != "":
		if _, err := redisconn.Parse(c.RedisURL, c.RedisTLSCA); err != nil {
			errs = append(errs, err)
		}
	case c.RedisTLSCA != "":
		errs = append(errs, errors.New("CRM_REDIS_TLS_CA: set without CRM_REDIS_URL (TLS needs rediss://)"))
	}
	if c.WorkerConcurrency < 1 {
		errs = append(errs, errors.New("CRM_WORKER_CONCURRENCY: must be at least 1"))
	}
	if c.WindowDeadline < time.Second {
		errs = append(errs, errors.New("CRM_WINDOW_DEADLINE: must be at least 1s"))
	}
	if len(c.WindowSchedule) == 0 {
		errs = append(errs, errors.New("CRM_WINDOW_SCHEDULE: needs at least one delay"))
	}
	if c.APIToken != "" && len(c.APIToken) < 16 {
		errs = append(errs, errors.New("CRM_API_TOKEN: must be at least 16 characters"))
	}
	if !strings.Contains(c.ManagedUserEmail, "@") {
		errs = append(errs, fmt.Errorf("CRM_MANAGED_USER_EMAIL: %q is not an e-mail address", c.ManagedUserEmail))
	}
	if c.TopUpAmount <= 0 {
		errs = append(errs, errors.New("CRM_TOPUP_AMOUNT: must be greater than 0"))
	}
	if c.VerifyCron != "" {
		if err := checkVerifyCron(c.VerifyCron); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Embedded reports whether the queue runs on an in-process Redis.
func (c Config) Embedded() bool { return c.RedisAddr == "" && c.RedisURL == "" }

// Redis returns the connection every Redis user of the process shares: from
// CRM_REDIS_URL, or from the legacy CRM_REDIS_ADDR/CRM_REDIS_DB. Nil when Embedded.
func (c Config) Redis() (*redisconn.Conn, error) {
	switch {
	case c.RedisURL != "":
		return redisconn.Parse(c.RedisURL, c.RedisTLSCA)
	case c.RedisAddr != "":
		return redisconn.FromAddr(c.RedisAddr, c.RedisDB), nil
	}
	return nil, nil
}

// maskedURL is the -redis-url flag: its value is shown (in -help defaults) with the
// password masked.
type maskedURL struct{ p *string }

func (m maskedURL) String() string {
	if m.p == nil || *m.p == "" {
		return ""
	}
	if c, err := redisconn.Parse(*m.p, ""); err == nil {
		return c.String()
	}
	return "(set, not shown)"
}

func (m maskedURL) Set(v string) error { *m.p = strings.TrimSpace(v); return nil }

func intVar(dst *int, lo, hi int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", v)
		}
		if n < lo || n > hi {
			return fmt.Errorf("%d is outside %d..%d", n, lo, hi)
		}
		*dst = n
		return nil
	}
}

func boolVar(dst *bool) func(string) error {
	return func(v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		*dst = b
		return nil
	}
}

func floatVar(dst *float64) func(string) error {
	return func(v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", v)
		}
		*dst = f
		return nil
	}
}

func durVar(dst *time.Duration) func(string) error {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%q is not a duration like 90s or 5m", v)
		}
		*dst = d
		return nil
	}
}

// ParseSchedule parses "2s,5s,10s" into delays; every delay must be positive.
func ParseSchedule(v string) ([]time.Duration, error) {
	var out []time.Duration
	for _, part := range strings.Split(v, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%q is not a positive duration", part)
		}
		out = append(out, d)
	}
	return out, nil
}

func scheduleVar(dst *[]time.Duration) func(string) error {
	return func(v string) error {
		s, err := ParseSchedule(v)
		if err != nil {
			return err
		}
		*dst = s
		return nil
	}
}

// Getenv is os.Getenv, named for callers that pass it to Load.
var Getenv = os.Getenv
