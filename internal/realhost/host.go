package realhost

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/testpg"
	"github.com/cn-relay-manager/cn-relay-manager/internal/testredis"
)

// Options tune one host run.
type Options struct {
	// Env adds or overrides host settings (KEY=VALUE), e.g. the outbound URL policy:
	// SECURITY_URL_ALLOWLIST_ENABLED=true.
	Env []string
	// StartTimeout bounds the wait for GET /health (first start runs the migrations;
	// default 3 minutes).
	StartTimeout time.Duration
}

// Host is a running real host.
type Host struct {
	URL           string // http://127.0.0.1:<port>, admin API and gateway alike
	Version       string
	AdminEmail    string
	AdminPassword string
	AdminAPIKey   string // bootstrapped: log in, accept compliance if asked, regenerate
	Database      string // the PostgreSQL database created for this run
	Compliance    bool   // the version asked for the compliance acknowledgement

	t       testing.TB
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
	hc      *http.Client
	once    sync.Once
}

// Start runs b on a free loopback port with a new database and a private redis-server and
// returns it bootstrapped. Everything is torn down when the test ends.
func Start(t testing.TB, b *Binary, o Options) *Host {
	t.Helper()
	if o.StartTimeout <= 0 {
		o.StartTimeout = 3 * time.Minute
	}
	dsn := testpg.Start(t) // dropped, connections and all, when the test ends
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("realhost: database DSN: %v", err)
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	pgHost, pgPort, _ := net.SplitHostPort(u.Host)
	pgPassword, _ := u.User.Password()
	if pgPassword == "" {
		// An empty password makes the host's DSN read "password= dbname=…", which lib/pq
		// parses as the password "dbname=…" and then connects to the database postgres.
		pgPassword = "unused-with-trust-auth"
	}
	rds := testredis.Start(t)
	rHost, rPort, _ := net.SplitHostPort(rds.Addr)
	dataDir := t.TempDir()
	h := &Host{Version: b.Version, AdminEmail: "crm-realhost-admin@example.com", AdminPassword: "Rh-" + secret.RandomToken(20),
		Database: dbName, t: t, logPath: filepath.Join(dataDir, "host.log"), exited: make(chan struct{}),
		hc: &http.Client{Timeout: 60 * time.Second}}

	port := freePort(t)
	h.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dataDir, "TZ=UTC",
		"AUTO_SETUP=true", "DATA_DIR=" + dataDir,
		"DATABASE_HOST=" + pgHost, "DATABASE_PORT=" + pgPort, "DATABASE_USER=" + u.User.Username(),
		"DATABASE_PASSWORD=" + pgPassword, "DATABASE_DBNAME=" + dbName, "DATABASE_SSLMODE=disable",
		"DATABASE_MAX_OPEN_CONNS=16", "DATABASE_MAX_IDLE_CONNS=4",
		"REDIS_HOST=" + rHost, "REDIS_PORT=" + rPort, "REDIS_DB=0", "REDIS_POOL_SIZE=32", "REDIS_MIN_IDLE_CONNS=2",
		"ADMIN_EMAIL=" + h.AdminEmail, "ADMIN_PASSWORD=" + h.AdminPassword,
		"JWT_SECRET=" + secret.RandomToken(48),
		"SERVER_HOST=127.0.0.1", "SERVER_PORT=" + strconv.Itoa(port), "SERVER_MODE=release",
		// No waiting on the network at start: the bundled price table is used.
		"PRICING_REMOTE_URL=http://127.0.0.1:1/prices.json", "PRICING_HASH_URL=http://127.0.0.1:1/prices.sha256",
		// 0.1.179 polls CN providers' balance endpoints with imported keys; not here.
		"GATEWAY_CN_PROVIDERS_BALANCE_CHECK_ENABLED=false",
	}
	env = append(env, o.Env...)
	logf, err := os.Create(h.logPath)
	if err != nil {
		t.Fatal(err)
	}
	h.cmd = exec.Command(b.Path)
	h.cmd.Dir = b.Dir // it reads ./resources/model-pricing at start
	h.cmd.Env = env
	h.cmd.Stdout, h.cmd.Stderr = logf, logf
	if err := h.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("realhost: start %s: %v", b.Path, err)
	}
	go func() {
		h.waitErr = h.cmd.Wait()
		logf.Close()
		close(h.exited)
	}()
	t.Cleanup(func() {
		h.Stop()
		if t.Failed() {
			t.Logf("realhost %s log (tail):\n%s", h.Version, h.LogTail(6000))
		}
	})
	if err := h.waitHealthy(o.StartTimeout); err != nil {
		t.Fatalf("realhost %s: %v\nlog tail:\n%s", b.Version, err, h.LogTail(6000))
	}
	if err := h.bootstrap(); err != nil {
		t.Fatalf("realhost %s: bootstrap: %v\nlog tail:\n%s", b.Version, err, h.LogTail(6000))
	}
	return h
}

// Stop ends the host process (idempotent); the database and redis-server go with the test.
func (h *Host) Stop() {
	h.once.Do(func() {
		if h.cmd.Process == nil {
			return
		}
		_ = h.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.exited:
		case <-time.After(15 * time.Second):
			_ = h.cmd.Process.Kill()
			<-h.exited
		}
	})
}

// LogTail returns the last n bytes of the host's output.
func (h *Host) LogTail(n int) string {
	b, _ := os.ReadFile(h.logPath)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func (h *Host) waitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-h.exited:
			return fmt.Errorf("the host exited before it was healthy: %v", h.waitErr)
		default:
		}
		resp, err := h.hc.Get(h.URL + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET /health not 200 after %s (last error %v)", timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// bootstrap gets an admin API key the way an operator does: log in as the first admin,
// accept the compliance text when the version requires it, regenerate the key.
func (h *Host) bootstrap() error {
	jwt, err := h.Login(h.AdminEmail, h.AdminPassword)
	if err != nil {
		return err
	}
	auth := map[string]string{"Authorization": "Bearer " + jwt}
	st, body, err := h.Do(http.MethodGet, "/api/v1/admin/compliance", auth, nil)
	if err != nil {
		return err
	}
	if st == http.StatusOK {
		var env struct {
			Data struct {
				Required    bool   `json:"required"`
				AckPhraseEN string `json:"ack_phrase_en"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &env); err != nil {
			return fmt.Errorf("compliance status: %w: %s", err, body)
		}
		if env.Data.Required {
			h.Compliance = true
			st, body, err := h.Do(http.MethodPost, "/api/v1/admin/compliance/accept", auth,
				map[string]any{"phrase": env.Data.AckPhraseEN, "language": "en"})
			if err != nil || st != http.StatusOK {
				return fmt.Errorf("accept compliance: %d %v %s", st, err, body)
			}
		}
	} else if st != http.StatusNotFound {
		return fmt.Errorf("compliance status: %d %s", st, body)
	}
	st, body, err = h.Do(http.MethodPost, "/api/v1/admin/settings/admin-api-key/regenerate", auth, nil)
	if err != nil || st != http.StatusOK {
		return fmt.Errorf("regenerate admin API key: %d %v %s", st, err, body)
	}
	var key struct {
		Data struct {
			Key string `json:"key"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &key); err != nil || key.Data.Key == "" {
		return fmt.Errorf("regenerate admin API key: no key in %d answer", st)
	}
	h.AdminAPIKey = key.Data.Key
	var ver struct {
		Data struct {
			Version string `json:"version"`
		} `json:"data"`
	}
	if err := h.Admin(http.MethodGet, "/api/v1/admin/system/version", nil, &ver); err != nil {
		return err
	}
	if ver.Data.Version != h.Version {
		return fmt.Errorf("the host reports version %q, the archive says %q", ver.Data.Version, h.Version)
	}
	return nil
}

// Login returns a user's JWT.
func (h *Host) Login(email, password string) (string, error) {
	st, body, err := h.Do(http.MethodPost, "/api/v1/auth/login", nil, map[string]any{"email": email, "password": password})
	if err != nil {
		return "", err
	}
	var env struct {
		Data struct {
			AccessToken string `json:"access_token"`
		} `json:"data"`
	}
	if st != http.StatusOK || json.Unmarshal(body, &env) != nil || env.Data.AccessToken == "" {
		return "", fmt.Errorf("log in as %s: %d %s", email, st, truncate(body))
	}
	return env.Data.AccessToken, nil
}

// Do sends one request with a plain HTTP client and returns the status and body.
func (h *Host) Do(method, path string, headers map[string]string, body any) (int, []byte, error) {
	resp, b, err := h.DoRaw(context.Background(), method, path, headers, body)
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, b, nil
}

// DoRaw is Do with the response (headers) and a context.
func (h *Host) DoRaw(ctx context.Context, method, path string, headers map[string]string, body any) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.URL+path, rd)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept-Language", "en")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// Admin sends an admin API call with the admin API key and decodes the whole envelope into
// out (when non-nil); any status but 200 is an error.
func (h *Host) Admin(method, path string, body, out any) error {
	st, b, err := h.Do(method, path, map[string]string{"x-api-key": h.AdminAPIKey}, body)
	if err != nil {
		return err
	}
	if st != http.StatusOK {
		return fmt.Errorf("%s %s: %d %s", method, path, st, truncate(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return nil
}

func truncate(b []byte) string {
	if len(b) > 400 {
		return string(b[:400]) + "…"
	}
	return string(b)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
