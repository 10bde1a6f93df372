package hostsim

import (
	"context"
	"math/rand"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	adminUserID    int64 = 1
	defaultGroupID int64 = 1
)

// Server is a simulated sub2api host. It is safe for concurrent use.
type Server struct {
	opts Options
	prof *profile

	mu         sync.Mutex
	adminKey   string // "" = deleted
	nextID     map[string]int64
	groups     map[int64]*group
	accounts   map[int64]*account
	users      map[int64]*user
	keys       map[int64]*apiKey
	subs       map[int64]*subscription
	tokens     map[string]int64 // JWT -> user id
	accepted   map[int64]bool   // compliance acceptance per admin user
	ackUA      map[int64]string // user agent recorded with a bootstrap acceptance
	idem       map[string]*idemEntry
	badKeys    map[string]time.Time // key value -> time of the premature (unknown) call
	keyWindows map[int64]*keyWindow // user id -> key creations in the current hour (0.2.11+)
	// subInserting: (user, group) pairs whose subscription insert is in flight.
	subInserting map[[2]int64]bool
	acctGen      int64 // bumps on every account change (ETag)
	rng          *rand.Rand
	down         bool
	hold         holdGate
	probes       sync.WaitGroup
	httpSrv      *http.Server
	listenAddr   string

	latency  atomic.Int64 // added to every request, in nanoseconds (Options.Latency, SetLatency)
	requests atomic.Int64 // every request received, for call-count tests
	admin    atomic.Int64 // admin API requests among them
}

// New builds a simulator; it panics on an unknown profile (a programming error).
func New(opts Options) *Server {
	p, err := loadProfile(opts.Profile)
	if err != nil {
		panic(err)
	}
	if opts.AdminAPIKey == "" {
		opts.AdminAPIKey = "admin-" + strings.Repeat("0", 64)
	}
	if opts.AdminEmail == "" {
		opts.AdminEmail = "admin@example.com"
	}
	if opts.AdminPassword == "" {
		opts.AdminPassword = "Admin-Pw-123!"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.UpstreamClient == nil {
		opts.UpstreamClient = &http.Client{Timeout: 30 * time.Second}
	}
	s := &Server{
		opts: opts, prof: p, adminKey: opts.AdminAPIKey,
		nextID:       map[string]int64{"group": 2, "account": 1, "user": 2, "key": 1, "sub": 1},
		groups:       map[int64]*group{},
		accounts:     map[int64]*account{},
		users:        map[int64]*user{},
		keys:         map[int64]*apiKey{},
		subs:         map[int64]*subscription{},
		tokens:       map[string]int64{},
		accepted:     map[int64]bool{},
		ackUA:        map[int64]string{},
		idem:         map[string]*idemEntry{},
		badKeys:      map[string]time.Time{},
		keyWindows:   map[int64]*keyWindow{},
		subInserting: map[[2]int64]bool{},
		rng:          rand.New(rand.NewSource(time.Now().UnixNano())),
	}
	s.latency.Store(int64(opts.Latency))
	now := opts.Now()
	// Every host ships a built-in anthropic "default" group (id 1) and the
	// first admin (id 1), which the admin API key acts as.
	s.groups[defaultGroupID] = &group{id: defaultGroupID, name: "default", desc: "Default group", platform: "anthropic",
		subType: "standard", rateMult: 1, status: "active", createdAt: now, updatedAt: now}
	s.users[adminUserID] = &user{id: adminUserID, email: opts.AdminEmail, username: "admin", password: opts.AdminPassword,
		role: "admin", status: "active", createdAt: now, updatedAt: now, lastActive: &now}
	if !(p.compliance && opts.ComplianceLocked) {
		// The recorded hosts' first admin had accepted in a browser at bootstrap.
		s.accepted[adminUserID] = true
		s.ackUA[adminUserID] = "Mozilla/5.0 (X11; Linux x86_64)"
	}
	return s
}

// Start builds a simulator and serves it on 127.0.0.1 with a free port.
func Start(opts Options) (*Server, error) {
	if _, err := loadProfile(opts.Profile); err != nil {
		return nil, err
	}
	s := New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.listenAddr = ln.Addr().String()
	s.httpSrv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.httpSrv.Serve(ln) }()
	return s, nil
}

// URL is the base URL after Start ("" for a server built with New).
func (s *Server) URL() string {
	if s.listenAddr == "" {
		return ""
	}
	return "http://" + s.listenAddr
}

// Close stops the listener started by Start and waits for background probes.
func (s *Server) Close() {
	if s.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.httpSrv.Shutdown(ctx)
	}
	s.probes.Wait()
}

// SetDown makes every request end in a dropped connection while true.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

func (s *Server) now() time.Time { return s.opts.Now() }

// SetLatency changes the delay added to every request (Options.Latency) from now on.
func (s *Server) SetLatency(d time.Duration) { s.latency.Store(int64(d)) }

// Requests returns how many requests the host received since it started (or since
// ResetRequests): all of them, and the admin API ones (/api/v1/admin/...) among them.
func (s *Server) Requests() (all, admin int64) { return s.requests.Load(), s.admin.Load() }

// ResetRequests sets the request counters back to zero.
func (s *Server) ResetRequests() {
	s.requests.Store(0)
	s.admin.Store(0)
}

func (s *Server) newID(kind string) int64 {
	id := s.nextID[kind]
	s.nextID[kind]++
	return id
}

func (s *Server) bumpAccounts() { s.acctGen++ }

// ServeHTTP routes a request like the host does.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if strings.HasPrefix(r.URL.Path, "/api/v1/admin/") {
		s.admin.Add(1)
	}
	if !s.waitHold(r) {
		return
	}
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down {
		dropConn(w)
		return
	}
	if d := time.Duration(s.latency.Load()); d > 0 {
		time.Sleep(d)
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	if strings.HasPrefix(path, "/api/v1/admin/") || path == "/api/v1/admin" {
		s.serveAdmin(w, r, path)
		return
	}
	switch {
	case r.Method == http.MethodGet && path == "/health":
		writeJSON(w, 200, map[string]any{"status": "ok"})
	case r.Method == http.MethodGet && path == "/setup/status":
		writeJSON(w, 200, map[string]any{"code": 0, "data": map[string]any{"needs_setup": false, "step": "completed"}})
	case r.Method == http.MethodGet && path == "/api/v1/settings/public":
		s.handleSettingsPublic(w)
	case r.Method == http.MethodPost && path == "/api/v1/auth/login":
		s.handleLogin(w, r)
	case path == "/api/v1/keys" || strings.HasPrefix(path, "/api/v1/keys/"):
		s.serveKeys(w, r, path)
	case r.Method == http.MethodGet && path == "/v1/models":
		s.handleModels(w, r)
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/v1/models/") && s.prof.fork:
		writeJSON(w, 404, map[string]any{"error": map[string]any{"message": "Model detail is only supported on the Gemini /v1 surface", "type": "not_found_error"}, "type": "error"})
	case r.Method == http.MethodPost && path == "/v1/chat/completions":
		s.handleChat(w, r)
	default:
		notFoundText(w)
	}
}

// dropConn simulates a dead host: the connection is closed without a response.
func dropConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		// httptest.ResponseRecorder and HTTP/2 cannot hijack; abort the handler instead.
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

// route matches path against a pattern with ":id" segments and returns the ids.
func route(path, pattern string) ([]int64, bool) {
	ps := strings.Split(strings.Trim(path, "/"), "/")
	qs := strings.Split(strings.Trim(pattern, "/"), "/")
	if len(ps) != len(qs) {
		return nil, false
	}
	var ids []int64
	for i, q := range qs {
		if q == ":id" {
			n, err := strconv.ParseInt(ps[i], 10, 64)
			if err != nil {
				return nil, false
			}
			ids = append(ids, n)
			continue
		}
		if q != ps[i] {
			return nil, false
		}
	}
	return ids, true
}
