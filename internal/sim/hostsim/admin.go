package hostsim

import (
	"net/http"
	"strings"
)

// serveAdmin runs fault injection, admin auth and the compliance gate, then
// dispatches /api/v1/admin/** routes.
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request, path string) {
	s.mu.Lock()
	unlocked := false
	defer func() {
		if !unlocked {
			s.mu.Unlock()
		}
	}()
	if s.opts.FaultRate > 0 && s.rng.Float64() < s.opts.FaultRate {
		internalErr(w)
		return
	}
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
