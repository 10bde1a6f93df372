package host

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// fixtureRoot holds the recorded host exchanges (real responses of running hosts, secrets
// replaced; see testdata/sub2api/README.md). The simulator's conformance test replays the
// same files.
const fixtureRoot = "testdata/sub2api"

// Test secrets: distinctive values so that a leak is easy to spot.
const (
	testAdminKey    = "admin-5ecret5ecret5ecret5ecret5ecret5ecret5ecret5ecret5ecret5ecret"
	testUserToken   = "eyJhbGciOiJIUzI1NiJ9.user-token-5ecret-value.sig-5ecret-value"
	testGatewayKey  = "sk-gateway-5ecret-0123456789abcdef0123456789abcdef"
	testUpstreamKey = "sk-upstream-5ecret-0123456789abcdef"
)

var versions = []string{"0.1.129", "0.1.179", "fork-0.1.321"}

type fixtureFile struct {
	name    string
	dir     string
	Request struct {
		Method  string            `json:"method"`
		Path    string            `json:"path"`
		Headers map[string]string `json:"headers"`
		Body    json.RawMessage   `json:"body"`
	} `json:"request"`
	Response struct {
		Status   int                        `json:"status"`
		Headers  map[string]json.RawMessage `json:"headers"`
		Body     json.RawMessage            `json:"body"`
		BodyFile string                     `json:"body_file"`
	} `json:"response"`
}

// fixtureDir returns the directory of one host version; a missing directory fails the test
// (the fixtures are part of the contract, never optional).
func fixtureDir(t *testing.T, version string) string {
	t.Helper()
	dir := filepath.Join(fixtureRoot, version)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Fatalf("fixture directory %s missing (%v): the host fixtures must be present", dir, err)
	}
	return dir
}

func loadFixture(t *testing.T, version, name string) *fixtureFile {
	t.Helper()
	dir := fixtureDir(t, version)
	b, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if err != nil {
		t.Fatalf("fixture %s/%s: %v", version, name, err)
	}
	fx := &fixtureFile{name: name, dir: dir}
	if err := json.Unmarshal(b, fx); err != nil {
		t.Fatalf("fixture %s/%s: %v", version, name, err)
	}
	return fx
}

// responseBody returns the recorded response body bytes.
func (fx *fixtureFile) responseBody(t *testing.T) []byte {
	t.Helper()
	if fx.Response.BodyFile != "" {
		b, err := os.ReadFile(filepath.Join(fx.dir, fx.Response.BodyFile))
		if err != nil {
			t.Fatalf("fixture %s body file: %v", fx.name, err)
		}
		return b
	}
	raw := fx.Response.Body
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatalf("fixture %s body: %v", fx.name, err)
		}
		return []byte(s)
	}
	return raw
}

func (fx *fixtureFile) write(t *testing.T, w http.ResponseWriter) {
	for k, raw := range fx.Response.Headers {
		var one string
		if json.Unmarshal(raw, &one) == nil {
			w.Header().Set(k, one)
			continue
		}
		var many []string
		if json.Unmarshal(raw, &many) == nil {
			for _, v := range many {
				w.Header().Add(k, v)
			}
		}
	}
	w.WriteHeader(fx.Response.Status)
	_, _ = w.Write(fx.responseBody(t))
}

// seenRequest is what the replay server received.
type seenRequest struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   []byte
}

// replay serves fixtures by method and path (query ignored), in registration order per
// route; the last fixture of a route keeps answering. Every request must carry
// Accept-Language: en.
type replay struct {
	*httptest.Server
	t      *testing.T
	mu     sync.Mutex
	routes map[string][]*fixtureFile
	served map[*fixtureFile]bool
	seen   []seenRequest
}

func routeKey(method, path string) string {
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	return method + " " + path
}

func newReplay(t *testing.T, version string, names ...string) *replay {
	t.Helper()
	rp := &replay{t: t, routes: map[string][]*fixtureFile{}, served: map[*fixtureFile]bool{}}
	for _, n := range names {
		rp.add(loadFixture(t, version, n))
	}
	rp.Server = httptest.NewServer(http.HandlerFunc(rp.serve))
	t.Cleanup(rp.Close)
	return rp
}

// add queues fx on its route; a route whose only fixture was already served is replaced.
func (rp *replay) add(fx *fixtureFile) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	k := routeKey(fx.Request.Method, fx.Request.Path)
	if q := rp.routes[k]; len(q) == 1 && rp.served[q[0]] {
		rp.routes[k] = nil
	}
	rp.routes[k] = append(rp.routes[k], fx)
}

func (rp *replay) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rp.mu.Lock()
	rp.seen = append(rp.seen, seenRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	k := routeKey(r.Method, r.URL.Path)
	q := rp.routes[k]
	var fx *fixtureFile
	if len(q) > 0 {
		fx = q[0]
		rp.served[fx] = true
		if len(q) > 1 {
			rp.routes[k] = q[1:]
		}
	}
	rp.mu.Unlock()
	if got := r.Header.Get("Accept-Language"); got != "en" {
		rp.t.Errorf("%s %s: Accept-Language = %q, want en", r.Method, r.URL.Path, got)
	}
	if len(body) > 0 && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		rp.t.Errorf("%s %s: body without Content-Type application/json", r.Method, r.URL.Path)
	}
	if fx == nil {
		rp.t.Errorf("no fixture for %s", k)
		http.Error(w, "no fixture", 599)
		return
	}
	fx.write(rp.t, w)
}

func (rp *replay) last() seenRequest {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if len(rp.seen) == 0 {
		rp.t.Fatalf("no request reached the replay server")
	}
	return rp.seen[len(rp.seen)-1]
}

func (rp *replay) all() []seenRequest {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return append([]seenRequest(nil), rp.seen...)
}

// adminClient returns a client with the admin API key pointed at the replay server.
func (rp *replay) adminClient() *Client {
	return New(Config{AdminURL: rp.URL + "/", AdminAPIKey: testAdminKey})
}

// jsonEqual compares two JSON documents semantically.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("jsonEqual: %v in %s", err, a)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("jsonEqual: %v in %s", err, b)
	}
	return reflect.DeepEqual(x, y)
}

// assertSentAsRecorded checks that the client sent the recorded method, path and body,
// with the recorded Idempotency-Key/Accept headers and the right auth header kind.
func assertSentAsRecorded(t *testing.T, fx *fixtureFile, got seenRequest) {
	t.Helper()
	wantPath := fx.Request.Path
	if i := strings.IndexByte(wantPath, '?'); i >= 0 {
		wantPath = wantPath[:i]
	}
	if got.Method != fx.Request.Method || got.Path != wantPath {
		t.Errorf("%s: sent %s %s, recorded %s %s", fx.name, got.Method, got.Path, fx.Request.Method, wantPath)
	}
	if b := fx.Request.Body; len(b) > 0 && string(b) != "null" {
		if !jsonEqual(t, b, got.Body) {
			t.Errorf("%s: body\n sent     %s\n recorded %s", fx.name, got.Body, b)
		}
	}
	for _, h := range []string{"Idempotency-Key", "Accept"} {
		if want, ok := fx.Request.Headers[h]; ok && got.Header.Get(h) != want {
			t.Errorf("%s: header %s = %q, recorded %q", fx.name, h, got.Header.Get(h), want)
		}
	}
	if _, ok := fx.Request.Headers["x-api-key"]; ok && got.Header.Get("x-api-key") != testAdminKey {
		t.Errorf("%s: admin key not sent as x-api-key", fx.name)
	}
	// Admin routes accept either the admin key or an admin JWT; user and gateway routes need
	// the Bearer credential and must never get the admin key.
	if a, ok := fx.Request.Headers["Authorization"]; ok && strings.HasPrefix(a, "Bearer ") && !strings.HasPrefix(wantPath, "/api/v1/admin/") {
		if !strings.HasPrefix(got.Header.Get("Authorization"), "Bearer ") || got.Header.Get("x-api-key") != "" {
			t.Errorf("%s: want Bearer auth only, got Authorization=%q x-api-key=%q", fx.name,
				got.Header.Get("Authorization"), got.Header.Get("x-api-key"))
		}
	}
}

// mustHostError asserts err is an *Error with status and code.
func mustHostError(t *testing.T, err error, status int, code string) *Error {
	t.Helper()
	he, ok := AsError(err)
	if !ok {
		t.Fatalf("want *Error %d %s, got %v", status, code, err)
	}
	if he.Status != status || he.Code != code {
		t.Fatalf("want %d %q, got %d %q (%v)", status, code, he.Status, he.Code, he)
	}
	return he
}
