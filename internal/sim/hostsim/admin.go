package hostsim

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"
)

// Admin fault kinds drawn by adminFault.
const (
	faultNone = iota
	faultError
	faultTimeout
	faultDrop
)

// adminFault draws the fault injected into one admin request (Options.FaultRate,
// TimeoutRate, DropRate: one number per request, so the kinds are exclusive).
func (s *Server) adminFault() int {
	o := s.opts
	if o.FaultRate <= 0 && o.TimeoutRate <= 0 && o.DropRate <= 0 {
		return faultNone
	}
	s.mu.Lock()
	x := s.rng.Float64()
	s.mu.Unlock()
	switch {
	case x < o.FaultRate:
		return faultError
	case x < o.FaultRate+o.TimeoutRate:
		return faultTimeout
	case x < o.FaultRate+o.TimeoutRate+o.DropRate:
		return faultDrop
	}
	return faultNone
}

// serveAdmin runs fault injection, then the admin request itself.
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request, path string) {
	f := s.adminFault()
	switch f {
	case faultNone:
		s.dispatchAdmin(w, r, path)
		return
	case faultError:
		internalErr(w)
		return
	}
	if s.opts.LoseAnswers {
		// The host acts on the request; only its answer is lost.
		s.dispatchAdmin(httptest.NewRecorder(), r, path)
	}
	if f == faultTimeout {
		s.hang(r)
	}
	dropConn(w)
}

// hang holds a request without answering until the client gives up or
// Options.TimeoutHang has passed.
func (s *Server) hang(r *http.Request) {
	// Read the body to its end so that the server notices the client closing the
	// connection (that ends the request's context).
	_, _ = io.Copy(io.Discard, r.Body)
	if s.opts.TimeoutHang <= 0 {
		<-r.Context().Done()
		return
	}
	t := time.NewTimer(s.opts.TimeoutHang)
	defer t.Stop()
	select {
	case <-r.Context().Done():
	case <-t.C:
	}
}

// dispatchAdmin runs admin auth and the compliance gate, then dispatches
// /api/v1/admin/** routes.
func (s *Server) dispatchAdmin(w http.ResponseWriter, r *http.Request, path string) {
	s.mu.Lock()
	unlocked := false
	defer func() {
		if !unlocked {
			s.mu.Unlock()
		}
	}()
	isCompliance := path == "/api/v1/admin/compliance" || strings.HasPrefix(path, "/api/v1/admin/compliance/")
	if isCompliance && !s.prof.compliance {
		notFoundText(w)
		return
	}
	uid, authed := s.adminAuth(w, r)
	if !authed {
		return
	}
	if isCompliance {
		switch {
		case r.Method == http.MethodGet && path == "/api/v1/admin/compliance":
			ok(w, s.complianceStatus(uid, r))
		case r.Method == http.MethodPost && path == "/api/v1/admin/compliance/accept":
			s.handleComplianceAccept(w, r, uid)
		default:
			notFoundText(w)
		}
		return
	}
	if s.complianceLocked(w, uid) {
		return
	}
	rest := strings.TrimPrefix(path, "/api/v1/admin")
	if ids, m := route(rest, "/accounts/:id/test"); m && r.Method == http.MethodPost {
		// The test calls the upstream; never hold the lock across network I/O.
		unlocked = true
		s.mu.Unlock()
		s.handleAccountTest(w, r, ids[0])
		return
	}
	switch {
	case rest == "/system/version" && r.Method == http.MethodGet:
		ok(w, map[string]any{"version": s.prof.version})
	case strings.HasPrefix(rest, "/settings/admin-api-key"):
		s.handleAdminKey(w, r, path)
	case strings.HasPrefix(rest, "/groups"):
		s.serveGroups(w, r, rest)
	case strings.HasPrefix(rest, "/accounts"):
		s.serveAccounts(w, r, rest, uid)
	case strings.HasPrefix(rest, "/users"):
		s.serveUsers(w, r, rest, uid)
	case strings.HasPrefix(rest, "/subscriptions"):
		s.serveSubscriptions(w, r, rest, uid)
	default:
		notFoundText(w)
	}
}
